// GatedMLP, the channel mixer of the GLA and GSA models (SPEC §5.0; fla `GatedMLP`):
//
//   y = down( silu(gate(x)) ⊙ up(x) )      x, y [N, D]   gate, up [I, D]   down [D, I]
//
// Legacy checkpoints fuse gate and up into one gate_proj [2I, D] (gate = rows [0, I)); the
// loader splits the rows, so both layouts run the same code.
#pragma once

#include <string>
#include <utility>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/nn/linear.hpp"
#include "linattn/nn/options.hpp"

namespace linattn::nn {

// intermediate_size when the config leaves it null: 256·⌈int(D·hidden_ratio·2/3)/256⌉ (SPEC §5.0).
// Throws std::invalid_argument when the result is not a positive size below 2^40 (the product is
// formed in double: converting an out-of-range double to an integer is undefined behaviour).
inline index_t default_intermediate_size(index_t hidden_size, double hidden_ratio) {
  const double base = static_cast<double>(hidden_size) * hidden_ratio * 2.0 / 3.0;
  linattn::detail::require(hidden_size > 0 && base >= 1.0 && base <= 0x1p40, "linattn::nn::default_intermediate_size",
                           "hidden_size " + std::to_string(hidden_size) + " x hidden_ratio " + std::to_string(hidden_ratio) +
                               " does not give a positive intermediate size below 2^40");
  const auto whole = static_cast<index_t>(base);
  return 256 * ((whole + 255) / 256);
}

class GatedMLP {
 public:
  GatedMLP() = default;
  GatedMLP(Linear gate_proj, Linear up_proj, Linear down_proj)
      : gate_(std::move(gate_proj)), up_(std::move(up_proj)), down_(std::move(down_proj)) {
    constexpr const char* where = "linattn::nn::GatedMLP";
    const index_t D = gate_.in_features(), I = gate_.out_features();
    up_.expect_shape(where, "up_proj", I, D);
    down_.expect_shape(where, "down_proj", D, I);
  }

  index_t hidden_size() const { return gate_.in_features(); }
  index_t intermediate_size() const { return gate_.out_features(); }
  std::size_t weight_bytes() const { return gate_.weight_bytes() + up_.weight_bytes() + down_.weight_bytes(); }

  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, const RunOptions& run = {}) const {
    const index_t N = x.size(0), I = intermediate_size();
    Array<float, 2> g(Shape<2>{N, I}), u(Shape<2>{N, I});
    gate_.forward(x, g.view(), run.threads);
    up_.forward(x, u.view(), run.threads);
    float* gp = g.data();
    const float* up = u.data();
    linattn::detail::parallel_rows(N, I, run.threads, [&](index_t r0, index_t r1) {
      linattn::detail::silu_inplace(gp + r0 * I, (r1 - r0) * I);
      for (index_t j = r0 * I; j < r1 * I; ++j) gp[j] *= up[j];
    });
    down_.forward(g.cview(), out, run.threads);
  }

 private:
  Linear gate_, up_, down_;
};

}  // namespace linattn::nn
