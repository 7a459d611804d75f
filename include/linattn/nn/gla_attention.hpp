// GatedLinearAttention, the token mixer of fla's GLA model (SPEC §5.1):
//
//   q = φ(conv(x·Wqᵀ))  k = φ(conv(x·Wkᵀ))  v = conv(x·Wvᵀ)        (conv, φ optional)
//   gk = max(logsigmoid((x·W_gk0ᵀ)·W_gk1ᵀ + b) / 16, clamp_min)     (low rank 16, from x)
//   o = GLA(q, k, v, gk, scale K^-1/2)                               (k, v, gk repeated for GQA)
//   o_h = RMSNorm_V(o_h)·w ⊙ silu(g_h),  g = x·Wgᵀ                   (output gate; else RMSNorm only)
//   out = concat_h(o_h)·Woᵀ
//
//   x, out [T, D] for one sequence (forward) or [N, D] for one token of N sequences (step).
//
// The recurrent state is kept K-major [1, H, K, V] (fla's layer caches the transpose, SPEC §8.4).
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/norm.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/nn/activation.hpp"
#include "linattn/nn/linear.hpp"
#include "linattn/nn/options.hpp"
#include "linattn/nn/qkv_projection.hpp"
#include "linattn/ops/gla.hpp"

namespace linattn::nn {

struct GLAAttentionConfig {
  index_t hidden_size = 0;
  index_t num_heads = 0;
  index_t num_kv_heads = 0;  // = num_heads without GQA
  index_t head_k_dim = 0;
  index_t head_v_dim = 0;
  bool use_output_gate = true;
  std::optional<float> clamp_min;
  Activation feature_map = Activation::identity;
  float norm_eps = 1e-6f;
  float gate_logit_normalizer = 16.0f;  // fixed in the model (SPEC §8.2)
};

struct GLAAttentionWeights {
  QKVProjection qkv;                  // [H·K, D], [Hkv·K, D], [Hkv·V, D] (+ convolutions)
  Linear g_proj;                      // [H·V, D], when use_output_gate
  Linear gk_proj0, gk_proj1;          // [r, D], [Hkv·K, r] with bias
  Linear o_proj;                      // [D, H·V]
  std::vector<float> g_norm;          // [V]; empty: no affine weight (elementwise_affine = false)
};

class GLAAttention {
 public:
  struct State {
    gla::State<float> recurrent;  // [1, H, K, V]
    QKVProjection::Cache conv;    // when the layer convolves
    bool operator==(const State&) const = default;
  };

  GLAAttention() = default;
  GLAAttention(const GLAAttentionConfig& c, GLAAttentionWeights w) : c_(c), w_(std::move(w)) {
    constexpr const char* where = "linattn::nn::GLAAttention";
    linattn::detail::require(c_.num_heads > 0 && c_.num_kv_heads > 0 && c_.num_heads % c_.num_kv_heads == 0, where,
                             "num_heads must be a positive multiple of num_kv_heads");
    const index_t D = c_.hidden_size, H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    // Checked: the sizes may come from a config file, and a wrapped product could match a weight.
    const index_t HK = checked_mul(H, K, "num_heads x head_k_dim"), HV = checked_mul(H, V, "num_heads x head_v_dim"),
                  KVK = checked_mul(Hkv, K, "num_kv_heads x head_k_dim"), KVV = checked_mul(Hkv, V, "num_kv_heads x head_v_dim");
    w_.qkv.check(where, D, HK, KVK, KVV);
    if (c_.use_output_gate) w_.g_proj.expect_shape(where, "g_proj", HV, D);
    w_.gk_proj0.expect_shape(where, "gk_proj.0", w_.gk_proj0.out_features(), D);
    w_.gk_proj1.expect_shape(where, "gk_proj.1", KVK, w_.gk_proj0.out_features());
    w_.o_proj.expect_shape(where, "o_proj", D, HV);
    linattn::detail::require(w_.g_norm.empty() || static_cast<index_t>(w_.g_norm.size()) == V, where,
                             "g_norm weight must have head_v_dim elements");
    // A log-gate above 0 would grow the state without bound; −inf or NaN would poison it.
    linattn::detail::require(!c_.clamp_min || (std::isfinite(*c_.clamp_min) && *c_.clamp_min <= 0.0f), where,
                             "clamp_min must be finite and <= 0, got " + std::to_string(c_.clamp_min.value_or(0.0f)));
    linattn::detail::require(std::isfinite(c_.gate_logit_normalizer) && c_.gate_logit_normalizer > 0.0f, where,
                             "gate_logit_normalizer must be finite and > 0, got " + std::to_string(c_.gate_logit_normalizer));
    linattn::detail::require(std::isfinite(c_.norm_eps) && c_.norm_eps >= 0.0f, where,
                             "norm_eps must be finite and >= 0, got " + std::to_string(c_.norm_eps));
    if (w_.g_norm.empty()) w_.g_norm.assign(static_cast<std::size_t>(V), 1.0f);
  }

  const GLAAttentionConfig& config() const { return c_; }
  std::size_t weight_bytes() const {
    return w_.qkv.weight_bytes() + w_.g_proj.weight_bytes() + w_.gk_proj0.weight_bytes() + w_.gk_proj1.weight_bytes() +
           w_.o_proj.weight_bytes();
  }

  State initial_state() const {
    return {gla::State<float>(1, c_.num_heads, c_.head_k_dim, c_.head_v_dim), w_.qkv.initial_cache()};
  }

  // One sequence of T tokens; `state` is read and advanced.
  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, State& state, const RunOptions& run = {}) const {
    const index_t T = x.size(0), H = c_.num_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    QKVProjection::Cache* cache = &state.conv;
    Inputs in = inputs(x, std::span<QKVProjection::Cache* const>(&cache, 1), run);
    Array<float, 2> o(Shape<2>{T, H * V});
    const TensorView<const float, 4> q4(in.q.data(), {1, T, H, K}), k4(in.k.data(), {1, T, H, K}),
        v4(in.v.data(), {1, T, H, V}), g4(in.gk.data(), {1, T, H, K});
    const TensorView<float, 4> o4(o.data(), {1, T, H, V});
    gla::Options opt;
    opt.threads = run.threads;
    switch (run.form_for(T)) {
      case Form::chunk: gla::chunk<float>(q4, k4, v4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
      case Form::fused_chunk: gla::fused_chunk<float>(q4, k4, v4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
      case Form::recurrent: gla::recurrent<float>(q4, k4, v4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
    }
    output(o, in.g, out, run);
  }

  // One token of each of N sequences: row n of x belongs to *states[n].
  void step(TensorView<const float, 2> x, TensorView<float, 2> out, std::span<State* const> states,
            const RunOptions& run = {}) const {
    const index_t N = x.size(0), H = c_.num_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    linattn::detail::require(static_cast<index_t>(states.size()) == N, "linattn::nn::GLAAttention::step",
                             "one state per row of x required");
    std::vector<QKVProjection::Cache*> caches(states.size());
    for (std::size_t n = 0; n < states.size(); ++n) caches[n] = &states[n]->conv;
    Inputs in = inputs(x, caches, run);
    Array<float, 2> o(Shape<2>{N, H * V});
    // One sequence: its heads split over the threads; several: the sequences do.
    gla::StepOptions opt;
    opt.threads = N == 1 ? run.threads : Threads{1};
    linattn::detail::parallel_for(N, linattn::detail::step_threads(run.threads, N * H * K * V), [&](index_t n) {
      const TensorView<const float, 3> q3(in.q.view().ptr(n), {1, H, K}), k3(in.k.view().ptr(n), {1, H, K}),
          v3(in.v.view().ptr(n), {1, H, V}), g3(in.gk.view().ptr(n), {1, H, K});
      gla::step<float>(q3, k3, v3, g3, TensorView<float, 3>(o.view().ptr(n), {1, H, V}), states[n]->recurrent, opt);
    });
    output(o, in.g, out, run);
  }

 private:
  // The recurrence's inputs, k, v and gk already repeated over the query heads (GQA), and the
  // output gate g.
  struct Inputs {
    Array<float, 2> q, k, v, gk;  // [R, H·K | H·V]
    Array<float, 2> g;            // [R, H·V] when use_output_gate
  };

  // SPEC §5.1 steps 1–5: projections (+ convolutions), gate, feature map, GQA repeat.
  Inputs inputs(TensorView<const float, 2> x, std::span<QKVProjection::Cache* const> caches, const RunOptions& run) const {
    const index_t R = x.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    QKVProjection::Outputs p = w_.qkv.forward(x, caches, run.threads);
    Array<float, 2> low(Shape<2>{R, w_.gk_proj0.out_features()}), gk(Shape<2>{R, w_.gk_proj1.out_features()});
    w_.gk_proj0.forward(x, low.view(), run.threads);
    w_.gk_proj1.forward(low.cview(), gk.view(), run.threads);
    Array<float, 2> g;
    if (c_.use_output_gate) {
      g = Array<float, 2>(Shape<2>{R, w_.g_proj.out_features()});
      w_.g_proj.forward(x, g.view(), run.threads);
    }
    const index_t gk_cols = gk.size(1), qk_cols = p.q.size(1), kk_cols = p.k.size(1);
    linattn::detail::parallel_rows(R, gk_cols + qk_cols + kk_cols, run.threads,
                                   [&](index_t r0, index_t r1) {
                                     for (float* e = gk.data() + r0 * gk_cols; e != gk.data() + r1 * gk_cols; ++e) {
                                       *e = logsigmoid(*e) / c_.gate_logit_normalizer;
                                       if (c_.clamp_min) *e = std::max(*e, *c_.clamp_min);
                                     }
                                     activate(c_.feature_map, p.q.data() + r0 * qk_cols, (r1 - r0) * qk_cols);
                                     activate(c_.feature_map, p.k.data() + r0 * kk_cols, (r1 - r0) * kk_cols);
                                   });
    if (H == Hkv) return {std::move(p.q), std::move(p.k), std::move(p.v), std::move(gk), std::move(g)};
    // The GLA op has one head count, so the kv heads are repeated: query head h reads kv head h/G.
    const index_t G = H / Hkv;
    const auto repeat = [&](const Array<float, 2>& src, index_t dim) {
      Array<float, 2> dst(Shape<2>{R, H * dim});
      for (index_t r = 0; r < R; ++r)
        for (index_t h = 0; h < H; ++h)
          std::copy_n(src.data() + r * Hkv * dim + (h / G) * dim, dim, dst.data() + r * H * dim + h * dim);
      return dst;
    };
    return {std::move(p.q), repeat(p.k, K), repeat(p.v, V), repeat(gk, K), std::move(g)};
  }

  // Per-head RMSNorm (and swish gate), then o_proj. g is consumed.
  void output(Array<float, 2>& o, Array<float, 2>& g, TensorView<float, 2> out, const RunOptions& run) const {
    const index_t R = o.size(0), H = c_.num_heads, V = c_.head_v_dim;
    const TensorView<float, 2> heads(o.data(), {R * H, V});
    rms_norm(heads, w_.g_norm, c_.norm_eps, heads, run.threads);
    if (c_.use_output_gate)
      linattn::detail::parallel_rows(R, H * V, run.threads, [&](index_t r0, index_t r1) {
        linattn::detail::silu_inplace(g.data() + r0 * H * V, (r1 - r0) * H * V);
        float* op = o.data();
        for (index_t j = r0 * H * V; j < r1 * H * V; ++j) op[j] *= g.data()[j];
      });
    w_.o_proj.forward(o.cview(), out, run.threads);
  }

  GLAAttentionConfig c_;
  GLAAttentionWeights w_;
};

}  // namespace linattn::nn
