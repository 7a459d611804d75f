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
  Linear q_proj, k_proj, v_proj;      // [H·K, D], [Hkv·K, D], [Hkv·V, D]
  Linear g_proj;                      // [H·V, D], when use_output_gate
  Linear gk_proj0, gk_proj1;          // [r, D], [Hkv·K, r] with bias
  Linear o_proj;                      // [D, H·V]
  std::vector<float> g_norm;          // [V]; empty: no affine weight (elementwise_affine = false)
  std::optional<ShortConvolution> q_conv, k_conv, v_conv;  // use_short_conv
};

class GLAAttention {
 public:
  struct State {
    gla::State<float> recurrent;               // [1, H, K, V]
    Array<float, 2> q_conv, k_conv, v_conv;    // [C, W] each, when the layer convolves
    bool operator==(const State&) const = default;
  };

  GLAAttention() = default;
  GLAAttention(const GLAAttentionConfig& c, GLAAttentionWeights w) : c_(c), w_(std::move(w)) {
    constexpr const char* where = "linattn::nn::GLAAttention";
    const auto need = [&](bool ok, const std::string& what) { linattn::detail::require(ok, where, what); };
    need(c_.num_heads > 0 && c_.num_kv_heads > 0 && c_.num_heads % c_.num_kv_heads == 0,
         "num_heads must be a positive multiple of num_kv_heads");
    const index_t D = c_.hidden_size, H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    const auto shape = [&](const Linear& l, index_t out, index_t in, const char* name) {
      need(l.out_features() == out && l.in_features() == in,
           std::string(name) + " is [" + std::to_string(l.out_features()) + ", " + std::to_string(l.in_features()) +
               "], expected [" + std::to_string(out) + ", " + std::to_string(in) + "]");
    };
    shape(w_.q_proj, H * K, D, "q_proj");
    shape(w_.k_proj, Hkv * K, D, "k_proj");
    shape(w_.v_proj, Hkv * V, D, "v_proj");
    if (c_.use_output_gate) shape(w_.g_proj, H * V, D, "g_proj");
    shape(w_.gk_proj0, w_.gk_proj0.out_features(), D, "gk_proj.0");
    shape(w_.gk_proj1, Hkv * K, w_.gk_proj0.out_features(), "gk_proj.1");
    shape(w_.o_proj, D, H * V, "o_proj");
    need(w_.g_norm.empty() || static_cast<index_t>(w_.g_norm.size()) == V, "g_norm weight must have head_v_dim elements");
    need(w_.q_conv.has_value() == w_.k_conv.has_value() && w_.k_conv.has_value() == w_.v_conv.has_value(),
         "q, k and v convolutions come together");
    if (w_.q_conv) {
      need(w_.q_conv->channels() == H * K && w_.k_conv->channels() == Hkv * K && w_.v_conv->channels() == Hkv * V,
           "convolution channels must match the q, k, v projections");
    }
    if (w_.g_norm.empty()) w_.g_norm.assign(static_cast<std::size_t>(V), 1.0f);
  }

  const GLAAttentionConfig& config() const { return c_; }
  std::size_t weight_bytes() const {
    return w_.q_proj.weight_bytes() + w_.k_proj.weight_bytes() + w_.v_proj.weight_bytes() + w_.g_proj.weight_bytes() +
           w_.gk_proj0.weight_bytes() + w_.gk_proj1.weight_bytes() + w_.o_proj.weight_bytes();
  }

  State initial_state() const {
    State s;
    s.recurrent = gla::State<float>(1, c_.num_heads, c_.head_k_dim, c_.head_v_dim);
    if (w_.q_conv) {
      s.q_conv = w_.q_conv->initial_cache();
      s.k_conv = w_.k_conv->initial_cache();
      s.v_conv = w_.v_conv->initial_cache();
    }
    return s;
  }

  // One sequence of T tokens; `state` is read and advanced.
  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, State& state, const RunOptions& run = {}) const {
    const index_t T = x.size(0), H = c_.num_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    Buffers b = project(x, run);
    if (w_.q_conv) {
      w_.q_conv->forward(b.q.cview(), b.q.view(), state.q_conv);
      w_.k_conv->forward(b.k.cview(), b.k.view(), state.k_conv);
      w_.v_conv->forward(b.v.cview(), b.v.view(), state.v_conv);
    }
    finish_inputs(b);
    Array<float, 2> o(Shape<2>{T, H * V});
    const TensorView<const float, 4> q4(b.q.data(), {1, T, H, K}), k4(b.kx.data(), {1, T, H, K}),
        v4(b.vx.data(), {1, T, H, V}), g4(b.gx.data(), {1, T, H, K});
    const TensorView<float, 4> o4(o.data(), {1, T, H, V});
    gla::Options opt;
    opt.threads = run.threads;
    if (run.use_chunk(T))
      gla::chunk<float>(q4, k4, v4, g4, o4, &state.recurrent, &state.recurrent, opt);
    else
      gla::recurrent<float>(q4, k4, v4, g4, o4, &state.recurrent, &state.recurrent, opt);
    output(o, b, out, run);
  }

  // One token of each of N sequences: row n of x belongs to *states[n].
  void step(TensorView<const float, 2> x, TensorView<float, 2> out, std::span<State* const> states,
            const RunOptions& run = {}) const {
    const index_t N = x.size(0), H = c_.num_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    linattn::detail::require(static_cast<index_t>(states.size()) == N, "linattn::nn::GLAAttention::step",
                             "one state per row of x required");
    Buffers b = project(x, run);
    if (w_.q_conv)
      for (index_t n = 0; n < N; ++n) {
        const auto row = [n](Array<float, 2>& a) { return TensorView<float, 2>(a.view().ptr(n), {1, a.size(1)}); };
        w_.q_conv->forward(row(b.q), row(b.q), states[n]->q_conv);
        w_.k_conv->forward(row(b.k), row(b.k), states[n]->k_conv);
        w_.v_conv->forward(row(b.v), row(b.v), states[n]->v_conv);
      }
    finish_inputs(b);
    Array<float, 2> o(Shape<2>{N, H * V});
    gla::StepOptions opt;
    opt.threads = run.threads;
    for (index_t n = 0; n < N; ++n) {
      const TensorView<const float, 3> q3(b.q.view().ptr(n), {1, H, K}), k3(b.kx.view().ptr(n), {1, H, K}),
          v3(b.vx.view().ptr(n), {1, H, V}), g3(b.gx.view().ptr(n), {1, H, K});
      gla::step<float>(q3, k3, v3, g3, TensorView<float, 3>(o.view().ptr(n), {1, H, V}), states[n]->recurrent, opt);
    }
    output(o, b, out, run);
  }

 private:
  struct Buffers {
    Array<float, 2> q, k, v, gk, g;  // projections [R, *]
    Array<float, 2> kx, vx, gx;      // k, v, gk repeated over the query heads [R, H·K | H·V]
  };

  Buffers project(TensorView<const float, 2> x, const RunOptions& run) const {
    const index_t R = x.size(0);
    const auto make = [R](const Linear& l) { return Array<float, 2>(Shape<2>{R, l.out_features()}); };
    Buffers b{make(w_.q_proj), make(w_.k_proj), make(w_.v_proj), make(w_.gk_proj1), {}, {}, {}, {}};
    w_.q_proj.forward(x, b.q.view(), run.threads);
    w_.k_proj.forward(x, b.k.view(), run.threads);
    w_.v_proj.forward(x, b.v.view(), run.threads);
    Array<float, 2> low = make(w_.gk_proj0);
    w_.gk_proj0.forward(x, low.view(), run.threads);
    w_.gk_proj1.forward(low.cview(), b.gk.view(), run.threads);
    if (c_.use_output_gate) {
      b.g = make(w_.g_proj);
      w_.g_proj.forward(x, b.g.view(), run.threads);
    }
    return b;
  }

  // Gate activation, feature map, GQA repeat (SPEC §5.1 steps 3–5).
  void finish_inputs(Buffers& b) const {
    const index_t R = b.q.size(0), H = c_.num_heads, Hkv = c_.num_kv_heads, K = c_.head_k_dim, V = c_.head_v_dim;
    for (float& g : b.gk.vector()) {
      g = logsigmoid(g) / c_.gate_logit_normalizer;
      if (c_.clamp_min) g = std::max(g, *c_.clamp_min);
    }
    activate(c_.feature_map, b.q.data(), b.q.numel());
    activate(c_.feature_map, b.k.data(), b.k.numel());
    if (H == Hkv) {
      b.kx = std::move(b.k);
      b.vx = std::move(b.v);
      b.gx = std::move(b.gk);
      return;
    }
    const index_t G = H / Hkv;
    const auto repeat = [&](const Array<float, 2>& src, index_t dim) {
      Array<float, 2> dst(Shape<2>{R, H * dim});
      for (index_t r = 0; r < R; ++r)
        for (index_t h = 0; h < H; ++h)
          std::copy_n(src.data() + r * Hkv * dim + (h / G) * dim, dim, dst.data() + r * H * dim + h * dim);
      return dst;
    };
    b.kx = repeat(b.k, K);
    b.vx = repeat(b.v, V);
    b.gx = repeat(b.gk, K);
  }

  // Per-head RMSNorm (and swish gate), then o_proj.
  void output(Array<float, 2>& o, const Buffers& b, TensorView<float, 2> out, const RunOptions& run) const {
    const index_t R = o.size(0), H = c_.num_heads, V = c_.head_v_dim;
    const TensorView<float, 2> heads(o.data(), {R * H, V});
    rms_norm(heads, w_.g_norm, c_.norm_eps, heads);
    if (c_.use_output_gate) {
      Array<float, 2> gate = b.g;
      linattn::detail::silu_inplace(gate.data(), gate.numel());
      float* op = o.data();
      for (index_t j = 0; j < R * H * V; ++j) op[j] *= gate.data()[j];
    }
    w_.o_proj.forward(o.cview(), out, run.threads);
  }

  GLAAttentionConfig c_;
  GLAAttentionWeights w_;
};

}  // namespace linattn::nn
