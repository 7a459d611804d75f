// GatedSlotAttention, the token mixer of fla's GSA model (SPEC §5.2):
//
//   q = φ(conv(x·Wqᵀ))  k = φ(conv(x·Wkᵀ))  v = silu(conv(x·Wvᵀ))     (φ: swish, relu, t2r or none)
//   f = logsigmoid(x·Wfᵀ) / 8,  s = 1 − e^f                          ([Hkv·M])
//   o = GSA(q, k, v, s, g = f, scale 1)                              (kv heads shared by G query heads)
//   out = RMSNorm_D(silu(flatten(o)); w, eps = 1e-5) · Woᵀ           (eps fixed, not norm_eps: SPEC §8.7)
//
//   x, out [T, D] for one sequence (forward) or [N, D] for one token of N sequences (step).
#pragma once

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
#include "linattn/nn/short_conv.hpp"
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
  Linear q_proj, k_proj, v_proj;  // [H·K, D], [Hkv·K, D], [Hkv·V, D]
  Linear f_proj;                  // [Hkv·M, D]
  Linear o_proj;                  // [D, H·V]
  Linear t2r;                     // [K, K], feature_map = t2r only
  std::vector<float> g_norm;      // [D]; empty: no affine weight
  std::optional<ShortConvolution> q_conv, k_conv, v_conv;
};

class GSAAttention {
 public:
  struct State {
    gsa::State<float> recurrent;             // [1, Hkv, K, M], [1, Hkv, M, V]
    Array<float, 2> q_conv, k_conv, v_conv;  // [C, W] each, when the layer convolves
    bool operator==(const State&) const = default;
  };

  GSAAttention() = default;
  GSAAttention(const GSAAttentionConfig& c, GSAAttentionWeights w) : c_(c), w_(std::move(w)) {
    constexpr const char* where = "linattn::nn::GSAAttention";
    const auto need = [&](bool ok, const std::string& what) { linattn::detail::require(ok, where, what); };
    need(c_.num_heads > 0 && c_.num_kv_heads > 0 && c_.num_heads % c_.num_kv_heads == 0,
         "num_heads must be a positive multiple of num_kv_heads");
    need(c_.num_slots > 0, "num_slots must be positive");
    const index_t D = c_.hidden_size, H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    need(H * V == D, "the value dim H·V = " + std::to_string(H * V) + " must equal hidden_size " + std::to_string(D) +
                         " (the output norm weight is [hidden_size], SPEC §8.12)");
    const auto shape = [&](const Linear& l, index_t out, index_t in, const char* name) {
      need(l.out_features() == out && l.in_features() == in,
           std::string(name) + " is [" + std::to_string(l.out_features()) + ", " + std::to_string(l.in_features()) +
               "], expected [" + std::to_string(out) + ", " + std::to_string(in) + "]");
    };
    shape(w_.q_proj, H * K, D, "q_proj");
    shape(w_.k_proj, Hkv * K, D, "k_proj");
    shape(w_.v_proj, Hkv * V, D, "v_proj");
    shape(w_.f_proj, Hkv * c_.num_slots, D, "f_proj");
    shape(w_.o_proj, D, H * V, "o_proj");
    if (c_.feature_map == GSAFeatureMap::t2r) shape(w_.t2r, K, K, "feature_map.layer");
    need(w_.g_norm.empty() || static_cast<index_t>(w_.g_norm.size()) == D, "g_norm weight must have hidden_size elements");
    need(w_.q_conv.has_value() == w_.k_conv.has_value() && w_.k_conv.has_value() == w_.v_conv.has_value(),
         "q, k and v convolutions come together");
    if (w_.q_conv)
      need(w_.q_conv->channels() == H * K && w_.k_conv->channels() == Hkv * K && w_.v_conv->channels() == Hkv * V,
           "convolution channels must match the q, k, v projections");
    if (w_.g_norm.empty()) w_.g_norm.assign(static_cast<std::size_t>(D), 1.0f);
  }

  const GSAAttentionConfig& config() const { return c_; }
  std::size_t weight_bytes() const {
    return w_.q_proj.weight_bytes() + w_.k_proj.weight_bytes() + w_.v_proj.weight_bytes() + w_.f_proj.weight_bytes() +
           w_.o_proj.weight_bytes() + w_.t2r.weight_bytes();
  }

  State initial_state() const {
    State s;
    s.recurrent = gsa::State<float>(1, c_.num_kv_heads, c_.head_k_dim, c_.num_slots, c_.head_v_dim);
    if (w_.q_conv) {
      s.q_conv = w_.q_conv->initial_cache();
      s.k_conv = w_.k_conv->initial_cache();
      s.v_conv = w_.v_conv->initial_cache();
    }
    return s;
  }

  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, State& state, const RunOptions& run = {}) const {
    const index_t T = x.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim,
                  M = c_.num_slots;
    Buffers b = project(x, run);
    if (w_.q_conv) {
      w_.q_conv->forward(b.q.cview(), b.q.view(), state.q_conv);
      w_.k_conv->forward(b.k.cview(), b.k.view(), state.k_conv);
      w_.v_conv->forward(b.v.cview(), b.v.view(), state.v_conv);
    }
    finish_inputs(b, run);
    Array<float, 2> o(Shape<2>{T, H * V});
    const TensorView<const float, 4> q4(b.q.data(), {1, T, H, K}), k4(b.k.data(), {1, T, Hkv, K}),
        v4(b.v.data(), {1, T, Hkv, V}), s4(b.s.data(), {1, T, Hkv, M}), g4(b.f.data(), {1, T, Hkv, M});
    const TensorView<float, 4> o4(o.data(), {1, T, H, V});
    gsa::Options opt;
    opt.scale = 1.0;  // the layer's scale (SPEC §8.3)
    opt.threads = run.threads;
    if (run.use_chunk(T))
      gsa::chunk<float>(q4, k4, v4, s4, g4, o4, &state.recurrent, &state.recurrent, opt);
    else
      gsa::recurrent<float>(q4, k4, v4, s4, g4, o4, &state.recurrent, &state.recurrent, opt);
    output(o, out, run);
  }

  void step(TensorView<const float, 2> x, TensorView<float, 2> out, std::span<State* const> states,
            const RunOptions& run = {}) const {
    const index_t N = x.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim,
                  M = c_.num_slots;
    linattn::detail::require(static_cast<index_t>(states.size()) == N, "linattn::nn::GSAAttention::step",
                             "one state per row of x required");
    Buffers b = project(x, run);
    if (w_.q_conv)
      for (index_t n = 0; n < N; ++n) {
        const auto row = [n](Array<float, 2>& a) { return TensorView<float, 2>(a.view().ptr(n), {1, a.size(1)}); };
        w_.q_conv->forward(row(b.q), row(b.q), states[n]->q_conv);
        w_.k_conv->forward(row(b.k), row(b.k), states[n]->k_conv);
        w_.v_conv->forward(row(b.v), row(b.v), states[n]->v_conv);
      }
    finish_inputs(b, run);
    Array<float, 2> o(Shape<2>{N, H * V});
    gsa::StepOptions opt;
    opt.scale = 1.0;
    opt.threads = run.threads;
    for (index_t n = 0; n < N; ++n) {
      const TensorView<const float, 3> q3(b.q.view().ptr(n), {1, H, K}), k3(b.k.view().ptr(n), {1, Hkv, K}),
          v3(b.v.view().ptr(n), {1, Hkv, V}), s3(b.s.view().ptr(n), {1, Hkv, M}), g3(b.f.view().ptr(n), {1, Hkv, M});
      gsa::step<float>(q3, k3, v3, s3, g3, TensorView<float, 3>(o.view().ptr(n), {1, H, V}), states[n]->recurrent, opt);
    }
    output(o, out, run);
  }

 private:
  struct Buffers {
    Array<float, 2> q, k, v, f, s;
  };

  Buffers project(TensorView<const float, 2> x, const RunOptions& run) const {
    const index_t R = x.size(0);
    const auto make = [R](const Linear& l) { return Array<float, 2>(Shape<2>{R, l.out_features()}); };
    Buffers b{make(w_.q_proj), make(w_.k_proj), make(w_.v_proj), make(w_.f_proj), make(w_.f_proj)};
    w_.q_proj.forward(x, b.q.view(), run.threads);
    w_.k_proj.forward(x, b.k.view(), run.threads);
    w_.v_proj.forward(x, b.v.view(), run.threads);
    w_.f_proj.forward(x, b.f.view(), run.threads);
    return b;
  }

  void feature_map(Array<float, 2>& a, const RunOptions& run) const {
    switch (c_.feature_map) {
      case GSAFeatureMap::none: return;
      case GSAFeatureMap::swish: activate(Activation::silu, a.data(), a.numel()); return;
      case GSAFeatureMap::relu: activate(Activation::relu, a.data(), a.numel()); return;
      case GSAFeatureMap::t2r: {  // relu(Linear_{K→K}) on every head
        const index_t K = c_.head_k_dim, rows = a.numel() / K;
        Array<float, 2> y(Shape<2>{rows, K});
        w_.t2r.forward(TensorView<const float, 2>(a.data(), {rows, K}), y.view(), run.threads);
        activate(Activation::relu, y.data(), y.numel());
        std::copy(y.vector().begin(), y.vector().end(), a.vector().begin());
        return;
      }
    }
  }

  void finish_inputs(Buffers& b, const RunOptions& run) const {
    feature_map(b.q, run);
    feature_map(b.k, run);
    activate(Activation::silu, b.v.data(), b.v.numel());
    float* f = b.f.data();
    float* s = b.s.data();
    for (index_t j = 0; j < b.f.numel(); ++j) {
      f[j] = logsigmoid(f[j]) / c_.gate_logit_normalizer;
      s[j] = -std::expm1(f[j]);  // 1 − e^f without cancellation for f near 0
    }
  }

  void output(Array<float, 2>& o, TensorView<float, 2> out, const RunOptions& run) const {
    activate(Activation::silu, o.data(), o.numel());
    rms_norm(o.cview(), w_.g_norm, kGSAOutputNormEps, o.view());
    w_.o_proj.forward(o.cview(), out, run.threads);
  }

  GSAAttentionConfig c_;
  GSAAttentionWeights w_;
};

}  // namespace linattn::nn
