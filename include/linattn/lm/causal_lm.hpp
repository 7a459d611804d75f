// A causal language model assembled from the library's layers (SPEC §6): embeddings, L
// pre-norm blocks, final RMSNorm, head.
//
//   r = h;  a = mixer(RMSNorm(h)·w_attn);  r = a + r;  h = r + mlp(RMSNorm(r)·w_mlp)
//
// The block is generic over its token mixer (GLA, GSA, MLGRU), channel mixer (GatedMLP, GLU)
// and head (dense or BitLinear); the families of linattn/models/ choose them and load the
// weights. A Cache is the whole recurrent state of one sequence: a value, so copying it
// snapshots a conversation and assigning it back restores it.
//
// Concepts the parts satisfy (see nn/):
//   Mixer: State initial_state(); forward(x [T,D], out [T,D], State&, RunOptions) for one
//          sequence; step(x [N,D], out [N,D], span<State* const>, RunOptions) for one token of N.
//   Mlp:   forward(x [N,D], out [N,D], RunOptions).
//   Head:  out_features(); forward(x [N,D], logits [N,vocab], RunOptions).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/norm.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/float_tensor.hpp"
#include "linattn/nn/bitlinear.hpp"
#include "linattn/nn/linear.hpp"
#include "linattn/nn/options.hpp"

namespace linattn::lm {

using nn::RunOptions;

// lm_head as a dense projection (GLA, GSA; tied or not).
struct DenseHead {
  nn::Linear proj;
  index_t out_features() const { return proj.out_features(); }
  std::size_t weight_bytes() const { return proj.weight_bytes(); }
  void forward(TensorView<const float, 2> x, TensorView<float, 2> logits, const RunOptions& run) const {
    proj.forward(x, logits, run.threads);
  }
};

// lm_head as a BitLinear with its own RMSNorm (the MatMul-free LM, SPEC §6, §8.9).
struct BitLinearHead {
  nn::BitLinear proj;
  index_t out_features() const { return proj.out_features(); }
  std::size_t weight_bytes() const { return proj.weight_bytes(); }
  void forward(TensorView<const float, 2> x, TensorView<float, 2> logits, const RunOptions& run) const {
    proj.forward(x, logits, run.arithmetic, run.threads);
  }
};

template <class Mixer, class Mlp, class Head>
class CausalLM {
 public:
  using LayerState = typename Mixer::State;

  struct Block {
    std::vector<float> attn_norm, mlp_norm;  // [D] each
    Mixer attn;
    Mlp mlp;
  };

  // The recurrent state of one sequence: every layer's state and the number of tokens seen.
  struct Cache {
    std::vector<LayerState> layers;
    index_t tokens = 0;
    bool operator==(const Cache&) const = default;
  };

  CausalLM() = default;
  // embeddings [vocab, D]; final_norm [D].
  CausalLM(FloatTensor embeddings, std::vector<Block> blocks, std::vector<float> final_norm, Head head, float norm_eps)
      : embeddings_(std::move(embeddings)),
        blocks_(std::move(blocks)),
        final_norm_(std::move(final_norm)),
        head_(std::move(head)),
        eps_(norm_eps) {
    constexpr const char* where = "linattn::lm::CausalLM";
    linattn::detail::require(embeddings_.shape.size() == 2 && embeddings_.shape[0] > 0, where,
                             "embeddings must be a non-empty [vocab, hidden] matrix");
    linattn::detail::require(std::isfinite(norm_eps) && norm_eps >= 0.0f, where,
                             "norm_eps must be finite and >= 0, got " + std::to_string(norm_eps));
    const index_t D = hidden_size();
    linattn::detail::require(static_cast<index_t>(final_norm_.size()) == D, where, "final norm weight must be [hidden]");
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      linattn::detail::require(static_cast<index_t>(blocks_[i].attn_norm.size()) == D &&
                                   static_cast<index_t>(blocks_[i].mlp_norm.size()) == D,
                               where, "block " + std::to_string(i) + ": norm weights must be [hidden]");
  }

  index_t vocab_size() const { return head_.out_features(); }
  index_t hidden_size() const { return embeddings_.shape[1]; }
  index_t num_layers() const { return static_cast<index_t>(blocks_.size()); }
  float norm_eps() const { return eps_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const Head& head() const { return head_; }
  const FloatTensor& embeddings() const { return embeddings_; }
  std::span<const float> final_norm() const { return final_norm_; }

  Cache new_cache() const {
    Cache c;
    c.layers.reserve(blocks_.size());
    for (const auto& b : blocks_) c.layers.push_back(b.attn.initial_state());
    return c;
  }

  // h [T, D] ← embeddings[ids]. Ids outside the vocabulary are an error naming the id.
  void embed(std::span<const std::int64_t> ids, TensorView<float, 2> h) const {
    const index_t D = hidden_size(), rows = embeddings_.shape[0];
    linattn::detail::check_shape("linattn::lm::CausalLM::embed", "h", h, {static_cast<index_t>(ids.size()), D});
    for (std::size_t t = 0; t < ids.size(); ++t) {
      if (ids[t] < 0 || ids[t] >= rows)
        linattn::detail::fail("linattn::lm::CausalLM", "token id " + std::to_string(ids[t]) + " at position " +
                                                           std::to_string(t) + " is outside the vocabulary [0, " +
                                                           std::to_string(rows) + ")");
      std::copy_n(embeddings_.data + ids[t] * D, D, h.ptr(static_cast<index_t>(t)));
    }
  }

  // Block i over one sequence: h [T, D] is the residual stream, updated in place.
  void block_forward(index_t i, TensorView<float, 2> h, LayerState& state, const RunOptions& run = {}) const {
    const Block& b = blocks_.at(static_cast<std::size_t>(i));
    const index_t T = h.size(0), D = hidden_size();
    Array<float, 2> x(Shape<2>{T, D}), a(Shape<2>{T, D});
    rms_norm(h, b.attn_norm, eps_, x.view(), run.threads);
    b.attn.forward(x.cview(), a.view(), state, run);
    add_into(h, a, run.threads);
    rms_norm(h, b.mlp_norm, eps_, x.view(), run.threads);
    b.mlp.forward(x.cview(), a.view(), run);
    add_into(h, a, run.threads);
  }

  // Final norm and head: h [N, D] → logits [N, vocab].
  void logits(TensorView<const float, 2> h, TensorView<float, 2> out, const RunOptions& run = {}) const {
    Array<float, 2> x(Shape<2>{h.size(0), hidden_size()});
    rms_norm(h, final_norm_, eps_, x.view(), run.threads);
    head_.forward(x.cview(), out, run);
  }

  // One sequence: runs ids through the model from `cache` (advanced in place). logits is
  // [T, vocab] for every position, or [1, vocab] for the last one only (generation).
  void forward(std::span<const std::int64_t> ids, Cache& cache, TensorView<float, 2> logits,
               const RunOptions& run = {}) const {
    constexpr const char* where = "linattn::lm::CausalLM::forward";
    const index_t T = static_cast<index_t>(ids.size()), D = hidden_size();
    linattn::detail::require(T > 0, where, "no tokens");
    check_cache(where, cache);
    linattn::detail::require(logits.size(0) == T || logits.size(0) == 1, where,
                             "logits must have T = " + std::to_string(T) + " rows or 1 (last position)");
    linattn::detail::check_shape(where, "logits", logits, {logits.size(0), vocab_size()});
    // One hot worker team for the whole pass: its parallel calls never wait for a wake-up.
    const linattn::detail::TeamScope team(run.threads, T * macs_per_token());
    Array<float, 2> h(Shape<2>{T, D});
    embed(ids, h.view());
    for (index_t i = 0; i < num_layers(); ++i) block_forward(i, h.view(), cache.layers[static_cast<std::size_t>(i)], run);
    cache.tokens += T;
    const index_t first = T - logits.size(0);
    this->logits(TensorView<const float, 2>(h.view().ptr(first), {logits.size(0), D}), logits, run);
  }

  // One decode step for N sequences at once: ids[n] is the next token of the sequence whose
  // state is *caches[n]. The projections run batched over the N rows; the recurrences per
  // sequence. logits [N, vocab].
  void step(std::span<const std::int64_t> ids, std::span<Cache* const> caches, TensorView<float, 2> logits,
            const RunOptions& run = {}) const {
    constexpr const char* where = "linattn::lm::CausalLM::step";
    const index_t N = static_cast<index_t>(ids.size()), D = hidden_size();
    linattn::detail::require(N > 0 && caches.size() == ids.size(), where, "one cache per token required");
    linattn::detail::check_shape(where, "logits", logits, {N, vocab_size()});
    for (Cache* c : caches) check_cache(where, *c);
    const linattn::detail::TeamScope team(run.threads, N * macs_per_token());
    Array<float, 2> h(Shape<2>{N, D}), x(Shape<2>{N, D}), a(Shape<2>{N, D});
    embed(ids, h.view());
    std::vector<LayerState*> states(static_cast<std::size_t>(N));
    for (index_t i = 0; i < num_layers(); ++i) {
      const Block& b = blocks_[static_cast<std::size_t>(i)];
      for (index_t n = 0; n < N; ++n) states[static_cast<std::size_t>(n)] = &caches[n]->layers[static_cast<std::size_t>(i)];
      rms_norm(h.cview(), b.attn_norm, eps_, x.view(), run.threads);
      b.attn.step(x.cview(), a.view(), std::span<LayerState* const>(states), run);
      add_into(h.view(), a, run.threads);
      rms_norm(h.cview(), b.mlp_norm, eps_, x.view(), run.threads);
      b.mlp.forward(x.cview(), a.view(), run);
      add_into(h.view(), a, run.threads);
    }
    for (Cache* c : caches) ++c->tokens;
    this->logits(h.cview(), logits, run);
  }

 private:
  static void add_into(TensorView<float, 2> h, const Array<float, 2>& a, Threads threads) {
    linattn::detail::parallel_rows(h.size(0), a.size(1), threads, [&](index_t r0, index_t r1) {
      for (index_t t = r0; t < r1; ++t) {
        float* hr = h.ptr(t);
        const float* ar = a.data() + t * a.size(1);
        for (index_t j = 0; j < a.size(1); ++j) hr[j] += ar[j];
      }
    });
  }
  // Roughly the multiply-adds of one token (≈ 12·D² a block, D·vocab the head): how many
  // workers a pass keeps hot (TeamScope).
  index_t macs_per_token() const {
    const index_t D = hidden_size();
    return 12 * num_layers() * D * D + vocab_size() * D;
  }
  void check_cache(const char* where, const Cache& c) const {
    linattn::detail::require(c.layers.size() == blocks_.size(), where,
                             "the cache has " + std::to_string(c.layers.size()) + " layers, the model " +
                                 std::to_string(blocks_.size()) + " (use new_cache())");
  }

  FloatTensor embeddings_;
  std::vector<Block> blocks_;
  std::vector<float> final_norm_;
  Head head_;
  float eps_ = 1e-6f;
};

}  // namespace linattn::lm
