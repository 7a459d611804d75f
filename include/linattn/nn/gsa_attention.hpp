// GatedSlotAttention, the token mixer of fla's GSA model (SPEC §5.2):
//
//   q = φ(conv(x·Wqᵀ))  k = φ(conv(x·Wkᵀ))  v = silu(conv(x·Wvᵀ))     (φ: swish, relu, t2r or none)
//   f = logsigmoid(x·Wfᵀ) / 8,  s = 1 − e^f                          ([Hkv·M])
//   o = GSA(q, k, v, s, g = f, scale 1)                              (kv heads shared by G query heads)
//   out = RMSNorm_D(silu(flatten(o)); w, eps = 1e-5) · Woᵀ           (eps fixed, not norm_eps: SPEC §8.7)
//
//   x, out [T, D] for one sequence (forward) or [N, D] for one token of N sequences (step).
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
#include "linattn/ops/gsa.hpp"

namespace linattn::nn {

// The output norm's epsilon: fla's fused helper default, whatever the config's norm_eps says.
inline constexpr float kGSAOutputNormEps = 1e-5f;

enum class GSAFeatureMap { none, swish, relu, t2r };

struct GSAAttentionConfig {
  index_t hidden_size = 0;
  index_t num_heads = 0;
  index_t num_kv_heads = 0;
  index_t head_k_dim = 0;
  index_t head_v_dim = 0;
  index_t num_slots = 64;
  GSAFeatureMap feature_map = GSAFeatureMap::swish;
  float gate_logit_normalizer = 8.0f;
};

struct GSAAttentionWeights {
  QKVProjection qkv;              // [H·K, D], [Hkv·K, D], [Hkv·V, D] (+ convolutions)
  Linear f_proj;                  // [Hkv·M, D]
  Linear o_proj;                  // [D, H·V]
  Linear t2r;                     // [K, K], feature_map = t2r only
  std::vector<float> g_norm;      // [D]; empty: no affine weight
};

class GSAAttention {
 public:
  struct State {
    gsa::State<float> recurrent;  // [1, Hkv, K, M], [1, Hkv, M, V]
    QKVProjection::Cache conv;    // when the layer convolves
    bool operator==(const State&) const = default;
  };

  GSAAttention() = default;
  GSAAttention(const GSAAttentionConfig& c, GSAAttentionWeights w) : c_(c), w_(std::move(w)) {
    constexpr const char* where = "linattn::nn::GSAAttention";
    const auto need = [&](bool ok, const std::string& what) { linattn::detail::require(ok, where, what); };
    need(c_.num_heads > 0 && c_.num_kv_heads > 0 && c_.num_heads % c_.num_kv_heads == 0,
         "num_heads must be a positive multiple of num_kv_heads");
    need(c_.num_slots > 0, "num_slots must be positive");
    need(std::isfinite(c_.gate_logit_normalizer) && c_.gate_logit_normalizer > 0.0f,
         "gate_logit_normalizer must be finite and > 0, got " + std::to_string(c_.gate_logit_normalizer));
    const index_t D = c_.hidden_size, H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    // Checked: the sizes may come from a config file, and a wrapped product could match a weight.
    const index_t HK = checked_mul(H, K, "num_heads x head_k_dim"), HV = checked_mul(H, V, "num_heads x head_v_dim"),
                  KVK = checked_mul(Hkv, K, "num_kv_heads x head_k_dim"), KVV = checked_mul(Hkv, V, "num_kv_heads x head_v_dim");
    need(HV == D, "the value dim H·V = " + std::to_string(HV) + " must equal hidden_size " + std::to_string(D) +
                      " (the output norm weight is [hidden_size], SPEC §8.12)");
    w_.qkv.check(where, D, HK, KVK, KVV);
    w_.f_proj.expect_shape(where, "f_proj", checked_mul(Hkv, c_.num_slots, "num_kv_heads x num_slots"), D);
    w_.o_proj.expect_shape(where, "o_proj", D, HV);
    if (c_.feature_map == GSAFeatureMap::t2r) w_.t2r.expect_shape(where, "feature_map.layer", K, K);
    need(w_.g_norm.empty() || static_cast<index_t>(w_.g_norm.size()) == D, "g_norm weight must have hidden_size elements");
    if (w_.g_norm.empty()) w_.g_norm.assign(static_cast<std::size_t>(D), 1.0f);
  }

  const GSAAttentionConfig& config() const { return c_; }
  std::size_t weight_bytes() const {
    return w_.qkv.weight_bytes() + w_.f_proj.weight_bytes() + w_.o_proj.weight_bytes() + w_.t2r.weight_bytes();
  }

  State initial_state() const {
    return {gsa::State<float>(1, c_.num_kv_heads, c_.head_k_dim, c_.num_slots, c_.head_v_dim), w_.qkv.initial_cache()};
  }

  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, State& state, const RunOptions& run = {}) const {
    const index_t T = x.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim,
                  M = c_.num_slots;
    QKVProjection::Cache* cache = &state.conv;
    Inputs in = inputs(x, std::span<QKVProjection::Cache* const>(&cache, 1), run);
    Array<float, 2> o(Shape<2>{T, H * V});
    const TensorView<const float, 4> q4(in.q.data(), {1, T, H, K}), k4(in.k.data(), {1, T, Hkv, K}),
        v4(in.v.data(), {1, T, Hkv, V}), s4(in.s.data(), {1, T, Hkv, M}), g4(in.f.data(), {1, T, Hkv, M});
    const TensorView<float, 4> o4(o.data(), {1, T, H, V});
    gsa::Options opt;
    opt.scale = 1.0;  // the layer's scale (SPEC §8.3)
    opt.threads = run.threads;
    switch (run.form_for(T)) {
      case Form::chunk: gsa::chunk<float>(q4, k4, v4, s4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
      case Form::fused_chunk: gsa::fused_chunk<float>(q4, k4, v4, s4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
      case Form::recurrent: gsa::recurrent<float>(q4, k4, v4, s4, g4, o4, &state.recurrent, &state.recurrent, opt); break;
    }
    output(o, out, run);
  }

  void step(TensorView<const float, 2> x, TensorView<float, 2> out, std::span<State* const> states,
            const RunOptions& run = {}) const {
    const index_t N = x.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim,
                  M = c_.num_slots;
    linattn::detail::require(static_cast<index_t>(states.size()) == N, "linattn::nn::GSAAttention::step",
                             "one state per row of x required");
    std::vector<QKVProjection::Cache*> caches(states.size());
    for (std::size_t n = 0; n < states.size(); ++n) caches[n] = &states[n]->conv;
    Inputs in = inputs(x, caches, run);
    Array<float, 2> o(Shape<2>{N, H * V});
    // One sequence: its heads split over the threads; several: the sequences do.
    gsa::StepOptions opt;
    opt.scale = 1.0;
    opt.threads = N == 1 ? run.threads : Threads{1};
    linattn::detail::parallel_for(N, linattn::detail::step_threads(run.threads, N * Hkv * (K + V) * M), [&](index_t n) {
      const TensorView<const float, 3> q3(in.q.view().ptr(n), {1, H, K}), k3(in.k.view().ptr(n), {1, Hkv, K}),
          v3(in.v.view().ptr(n), {1, Hkv, V}), s3(in.s.view().ptr(n), {1, Hkv, M}), g3(in.f.view().ptr(n), {1, Hkv, M});
      gsa::step<float>(q3, k3, v3, s3, g3, TensorView<float, 3>(o.view().ptr(n), {1, H, V}), states[n]->recurrent, opt);
    });
    output(o, out, run);
  }

 private:
  struct Inputs {
    Array<float, 2> q, k, v;  // after feature map / silu
    Array<float, 2> f, s;     // log decay f and slot write s = 1 − e^f, [R, Hkv·M]
  };

  // activate() over the rows of a [R, C], split over the threads at prefill.
  static void activate_rows(Activation act, Array<float, 2>& a, Threads threads) {
    const index_t C = a.size(1);
    linattn::detail::parallel_rows(a.size(0), C, threads,
                                   [&](index_t r0, index_t r1) { activate(act, a.data() + r0 * C, (r1 - r0) * C); });
  }

  void feature_map(Array<float, 2>& a, const RunOptions& run) const {
    switch (c_.feature_map) {
      case GSAFeatureMap::none: return;
      case GSAFeatureMap::swish: activate_rows(Activation::silu, a, run.threads); return;
      case GSAFeatureMap::relu: activate_rows(Activation::relu, a, run.threads); return;
      case GSAFeatureMap::t2r: {  // relu(Linear_{K→K}) on every head
        const index_t K = c_.head_k_dim, rows = a.numel() / K;
        Array<float, 2> y(a.shape());
        w_.t2r.forward(TensorView<const float, 2>(a.data(), {rows, K}), TensorView<float, 2>(y.data(), {rows, K}),
                       run.threads);
        activate(Activation::relu, y.data(), y.numel());
        a = std::move(y);
        return;
      }
    }
  }

  // SPEC §5.2 steps 1–3 (GQA needs no repeat: the GSA op maps query head h to kv head h/G).
  Inputs inputs(TensorView<const float, 2> x, std::span<QKVProjection::Cache* const> caches, const RunOptions& run) const {
    QKVProjection::Outputs p = w_.qkv.forward(x, caches, run.threads);
    Inputs in{std::move(p.q), std::move(p.k), std::move(p.v), Array<float, 2>(Shape<2>{x.size(0), w_.f_proj.out_features()}),
              Array<float, 2>(Shape<2>{x.size(0), w_.f_proj.out_features()})};
    w_.f_proj.forward(x, in.f.view(), run.threads);
    feature_map(in.q, run);
    feature_map(in.k, run);
    activate_rows(Activation::silu, in.v, run.threads);
    float* f = in.f.data();
    float* s = in.s.data();
    const index_t F = in.f.size(1);
    linattn::detail::parallel_rows(in.f.size(0), 4 * F, run.threads, [&](index_t r0, index_t r1) {
      for (index_t j = r0 * F; j < r1 * F; ++j) {
        f[j] = logsigmoid(f[j]) / c_.gate_logit_normalizer;
        s[j] = -std::expm1(f[j]);  // 1 − e^f without cancellation for f near 0
      }
    });
    return in;
  }

  void output(Array<float, 2>& o, TensorView<float, 2> out, const RunOptions& run) const {
    activate_rows(Activation::silu, o, run.threads);
    rms_norm(o.cview(), w_.g_norm, kGSAOutputNormEps, o.view(), run.threads);
    w_.o_proj.forward(o.cview(), out, run.threads);
  }

  GSAAttentionConfig c_;
  GSAAttentionWeights w_;
};

}  // namespace linattn::nn
