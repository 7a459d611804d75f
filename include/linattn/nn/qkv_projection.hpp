// The query, key and value projections shared by GLA and GSA (SPEC §5.1–5.2 step 1): three dense
// projections of the block input, each optionally followed by its own causal ShortConvolution
// (SiLU). The convolutions carry a cache per sequence, part of the layer's state.
//
//   x [R, D] → q [R, Hq·K], k [R, Hkv·K], v [R, Hkv·V]
//
// R rows are either T tokens of one sequence (forward) or one token of each of R sequences (step).
#pragma once

#include <optional>
#include <span>
#include <string>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/nn/linear.hpp"
#include "linattn/nn/short_conv.hpp"

namespace linattn::nn {

struct QKVProjection {
  Linear q_proj, k_proj, v_proj;
  std::optional<ShortConvolution> q_conv, k_conv, v_conv;  // use_short_conv: all three or none

  // The convolution caches of one sequence ([C, W] each; empty without convolutions).
  struct Cache {
    Array<float, 2> q, k, v;
    bool operator==(const Cache&) const = default;
  };

  struct Outputs {
    Array<float, 2> q, k, v;
  };

  void check(const char* where, index_t D, index_t q_out, index_t k_out, index_t v_out) const {
    q_proj.expect_shape(where, "q_proj", q_out, D);
    k_proj.expect_shape(where, "k_proj", k_out, D);
    v_proj.expect_shape(where, "v_proj", v_out, D);
    linattn::detail::require(q_conv.has_value() == k_conv.has_value() && k_conv.has_value() == v_conv.has_value(), where,
                             "q, k and v convolutions come together");
    if (q_conv)
      linattn::detail::require(q_conv->channels() == q_out && k_conv->channels() == k_out && v_conv->channels() == v_out,
                               where, "convolution channels must match the q, k, v projections");
  }

  std::size_t weight_bytes() const { return q_proj.weight_bytes() + k_proj.weight_bytes() + v_proj.weight_bytes(); }

  Cache initial_cache() const {
    if (!q_conv) return {};
    return {q_conv->initial_cache(), k_conv->initial_cache(), v_conv->initial_cache()};
  }

  // caches: one (the rows are one sequence) or one per row (one token of each sequence).
  Outputs forward(TensorView<const float, 2> x, std::span<Cache* const> caches, Threads threads) const {
    const index_t R = x.size(0);
    Outputs o{Array<float, 2>(Shape<2>{R, q_proj.out_features()}), Array<float, 2>(Shape<2>{R, k_proj.out_features()}),
              Array<float, 2>(Shape<2>{R, v_proj.out_features()})};
    q_proj.forward(x, o.q.view(), threads);
    k_proj.forward(x, o.k.view(), threads);
    v_proj.forward(x, o.v.view(), threads);
    if (!q_conv) return o;
    const bool one_sequence = caches.size() == 1;
    linattn::detail::require(one_sequence || static_cast<index_t>(caches.size()) == R, "linattn::nn::QKVProjection",
                             "one cache, or one per row of x");
    for (index_t n = 0; n < (one_sequence ? 1 : R); ++n) {
      const index_t r0 = one_sequence ? 0 : n, rows = one_sequence ? R : 1;
      const auto rows_of = [&](Array<float, 2>& a) { return TensorView<float, 2>(a.view().ptr(r0), {rows, a.size(1)}); };
      Cache& c = *caches[static_cast<std::size_t>(n)];
      q_conv->forward(rows_of(o.q), rows_of(o.q), c.q);
      k_conv->forward(rows_of(o.k), rows_of(o.k), c.k);
      v_conv->forward(rows_of(o.v), rows_of(o.v), c.v);
    }
    return o;
  }
};

}  // namespace linattn::nn
