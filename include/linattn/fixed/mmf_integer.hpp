// Integer-only inference of the MatMul-free LM (HGRNBit; SPEC §5.3–5.5, §6): the fixed-point
// semantics a hardware core can match exactly (examples/hw does, bit for bit), and an
// integer-only inference mode of the library. Arithmetic rules: fixed/arith.hpp.
//
// One BitLinear with input v [n] (int32), the RMSNorm weight a [n] in front of it (the block's
// attn/mlp norm, MLGRU's g_norm, the final norm; 1.0 where there is none) and its own norm
// weight b [n], both Q12:
//
//   u_j   = sat32(round_shift(v_j · a_j, 12))          t_j = u_j · b_j         (int64, exact)
//   r     = isqrt(Σ_j u_j²)                            M   = max_j |t_j|
//   x_q,j = act_code(t_j, M)  = round_half_away(127 t_j / M)                   (int8)
//   acc   = W_q · x_q                                  (int32, exact; 2-bit packed weights)
//   m     = ⌊mantissa · M · 2^16 / r⌋                  (0 when r = 0; m < 2^48)
//   y     = sat32(round_shift(acc · m, shift))         (Q16)
//
// Why this equals the float BitLinear up to rounding: RMSNorm makes x̂ = RMSNorm(v⊙a)⊙b
// invariant to the scale of v, so the codes round(127 x̂/max|x̂|) = round(127 t/M) need no
// square root, and the dequantisation γ·max|x̂|/127 = γ·√n·M / (127·2^12·√Σu²) needs one per
// token: (mantissa, shift) hold γ·√n·2^4/127 (make_requant). The RMSNorm ε (1e-6) is dropped:
// it only matters for a token whose mean square is below ~1e-6. Two stacked norms (the block's
// pre-norm, then BitLinear's own) fold the same way: the pre-norm's rstd cancels, its weight stays.
//
// One layer for one token, x [d] the residual stream (Q16), h [d] the MLGRU state (Q16):
//   i, f, g  = BitLinear_{i,f,g}(x; a = attn_norm)     (g kept as its raw int32 acc: its scale
//                                                        cancels in the RMSNorm that follows)
//   fs   = sigmoid_q15(f);   fl = lb + round_shift((2^15 − lb)·fs, 15)         (Q15)
//   ii   = sat32(round_shift(silu_q16(i) · (2^15 − fl), 15))
//   h    = sat32(round_shift(fl · h, 15) + ii)
//   z    = sat32(round_shift(acc_g · silu_q16(h), 8))  (any scale: o_proj normalises it)
//   x   += BitLinear_o(z; a = g_norm)                  (saturating)
//   gate, up = BitLinear_gate(x; a = mlp_norm)          one multiplier for both halves
//   z    = sat32(round_shift(silu_q16(gate) · up, 16))
//   x   += BitLinear_down(z; a = 1)
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/fixed/arith.hpp"
#include "linattn/lm/causal_lm.hpp"
#include "linattn/nn/bitlinear.hpp"
#include "linattn/nn/glu.hpp"
#include "linattn/nn/mlgru.hpp"
#include "linattn/ops/ternary.hpp"

namespace linattn::fixed {

// Shift of z = acc_g · silu(h) into int32 (o_proj's input). Any shift is exact up to rounding
// since o_proj normalises z; 8 keeps 2^8 steps for |acc_g·silu(h)| ~ 1 and saturates only when
// |acc_g · silu(h)| ≥ 2^23 (|acc_g| ≤ 127·d, so |h| ≳ 64 at d = 1024).
inline constexpr int kZShift = 8;

// Dequantisation constant of one BitLinear: y = round_shift(acc · m, shift) with
// m = ⌊mantissa · M · 2^16 / r⌋ per token; mantissa ∈ [2^15, 2^16).
struct Requant {
  std::uint32_t mantissa = 0;
  int shift = 1;
  friend bool operator==(const Requant&, const Requant&) = default;
};

inline constexpr int kMultiplierFrac = 16;  // the 2^16 in m = ⌊mantissa·M·2^16 / r⌋
inline constexpr int kMaxShift = 120;

// (mantissa, shift) ≈ C·2^(shift−16), C = γ·√n·2^(16−12)/127 (see the header comment).
inline Requant make_requant(float gamma, index_t n, const char* where) {
  linattn::detail::require(std::isfinite(gamma) && gamma > 0.0f && n > 0, where, "gamma must be finite and > 0");
  const double c = static_cast<double>(gamma) * std::sqrt(static_cast<double>(n)) * 16.0 / 127.0;
  int e = 15 - static_cast<int>(std::floor(std::log2(c)));
  double mant = std::round(std::ldexp(c, e));
  if (mant >= 65536.0) {
    mant = std::round(std::ldexp(c, --e));
  }
  Requant q{static_cast<std::uint32_t>(mant), kMultiplierFrac + e};
  linattn::detail::require(q.shift >= 1 && q.shift <= kMaxShift, where,
                           "the dequantisation scale " + std::to_string(c) + " (gamma " + std::to_string(gamma) +
                               ") is outside the integer path's range");
  return q;
}

// Norm weights → Q12 int16; |w| must be below 8.
inline std::vector<std::int16_t> to_q12(std::span<const float> w, const char* where, const std::string& name) {
  std::vector<std::int16_t> q(w.size());
  for (std::size_t j = 0; j < w.size(); ++j) {
    const double v = std::round(static_cast<double>(w[j]) * kOne12);
    if (!std::isfinite(v) || std::fabs(v) > 32767.0)
      linattn::detail::fail(where, name + "[" + std::to_string(j) + "] = " + std::to_string(w[j]) +
                                       " is outside the Q3.12 range (-8, 8) of the integer path");
    q[j] = static_cast<std::int16_t>(v);
  }
  return q;
}

// Float → Q16 (the residual stream's format); |v| must be below 2^15.
inline std::int32_t to_q16(float v, const char* where) {
  const double r = std::round(static_cast<double>(v) * (1 << kActFrac));
  if (!std::isfinite(r) || std::fabs(r) > 2147483647.0)
    linattn::detail::fail(where, "value " + std::to_string(v) + " is outside the Q15.16 range of the integer path");
  return static_cast<std::int32_t>(r);
}

inline float from_q16(std::int32_t v) { return static_cast<float>(v) / static_cast<float>(1 << kActFrac); }

inline std::int32_t norm_product(std::int32_t v, std::int16_t a) {
  return sat32(round_shift(int128(v) * a, kNormFrac));
}

inline std::uint64_t multiplier(const Requant& q, std::int64_t max_abs, std::uint64_t root) {
  if (root == 0) return 0;
  return static_cast<std::uint64_t>((uint128(q.mantissa) * static_cast<uint128>(max_abs) << kMultiplierFrac) / root);
}

inline std::int32_t requantize(std::int32_t acc, std::uint64_t m, int shift) {
  return sat32(round_shift(int128(acc) * static_cast<int128>(m), shift));
}

// A BitLinear input quantised for up to three projections that share the pre-norm (i, f, g).
struct QuantizedInput {
  std::uint64_t root = 0;                       // r = isqrt(Σ u²)
  std::vector<std::int64_t> max_abs;            // [K] M_k
  std::vector<std::vector<std::int8_t>> codes;  // [K][n]
};

inline QuantizedInput quantize_input(std::span<const std::int32_t> v, std::span<const std::int16_t> a,
                                     std::span<const std::span<const std::int16_t>> b) {
  const std::size_t n = v.size(), K = b.size();
  QuantizedInput q;
  q.max_abs.assign(K, 0);
  q.codes.assign(K, std::vector<std::int8_t>(n));
  std::vector<std::int32_t> u(n);
  uint128 ss = 0;
  for (std::size_t j = 0; j < n; ++j) {
    u[j] = a.empty() ? v[j] : norm_product(v[j], a[j]);
    ss += static_cast<uint128>(int128(u[j]) * u[j]);
    for (std::size_t k = 0; k < K; ++k) {
      const std::int64_t t = std::int64_t(u[j]) * b[k][j];
      q.max_abs[k] = std::max(q.max_abs[k], t < 0 ? -t : t);
    }
  }
  q.root = isqrt(ss);
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t j = 0; j < n; ++j) q.codes[k][j] = act_code(std::int64_t(u[j]) * b[k][j], q.max_abs[k]);
  return q;
}

// acc [rows] = W_q · codes, exact (the library's integer kernel).
inline std::vector<std::int32_t> ternary_matvec(const ternary::PackedWeights& w, std::span<const std::int8_t> codes) {
  std::vector<std::int32_t> acc(static_cast<std::size_t>(w.rows()));
  ternary::Options opt;
  opt.threads = Threads{1};
  ternary::matmul(w, TensorView<const std::int8_t, 2>(codes.data(), {1, w.cols()}),
                  TensorView<std::int32_t, 2>(acc.data(), {1, w.rows()}), opt);
  return acc;
}

// Everything one layer's hardware needs: packed weights, Q12 norm weights, Q15 lower bound,
// dequantisation constants.
struct IntegerLayerParams {
  index_t d = 0, inter = 0;
  ternary::PackedWeights w_i, w_f, w_g, w_o, w_gate, w_down;  // 2-bit, [out, in]
  std::vector<std::int16_t> attn_norm, i_norm, f_norm, g_proj_norm, g_norm, o_norm, mlp_norm, gate_norm,
      down_norm;                          // Q12 [d] (down_norm [I])
  std::vector<std::int32_t> lower_bound;  // Q15 [d] (0 for layer 0)
  Requant rq_i, rq_f, rq_o, rq_gate, rq_down;
};

// Intermediates of one token through one layer (for debugging a hardware mismatch).
struct IntegerLayerTrace {
  QuantizedInput attn_in, o_in, gate_in, down_in;
  std::uint64_t m_i = 0, m_f = 0, m_o = 0, m_gate = 0, m_down = 0;
  std::vector<std::int32_t> z_attn, x_mid, z_mlp;  // [d], [d], [I]
};

class IntegerLayer {
 public:
  IntegerLayer() = default;

  // From the library's BitLinear layers (quantised weights + fp32 norm weights) and the block's
  // norms. lower_bound [d] or empty (layer 0).
  IntegerLayer(const nn::BitLinear& i, const nn::BitLinear& f, const nn::BitLinear& g, const nn::BitLinear& o,
               const nn::BitLinear& gate, const nn::BitLinear& down, std::span<const float> attn_norm,
               std::span<const float> mlp_norm, std::span<const float> g_norm, std::span<const float> lower_bound) {
    constexpr const char* where = "linattn::fixed::IntegerLayer";
    const index_t d = i.in_features(), I = down.in_features();
    auto require_shape = [&](const nn::BitLinear& p, index_t out, index_t in, const char* name) {
      linattn::detail::require(p.out_features() == out && p.in_features() == in, where,
                               std::string(name) + " is " + std::to_string(p.out_features()) + "x" +
                                   std::to_string(p.in_features()) + ", expected " + std::to_string(out) + "x" +
                                   std::to_string(in) + " (expand_ratio 1)");
    };
    require_shape(i, d, d, "i_proj");
    require_shape(f, d, d, "f_proj");
    require_shape(g, d, d, "g_proj");
    require_shape(o, d, d, "o_proj");
    require_shape(gate, 2 * I, d, "gate_proj");
    require_shape(down, d, I, "down_proj");
    auto vec = [&](std::span<const float> w, index_t n, const char* name) {
      linattn::detail::require(static_cast<index_t>(w.size()) == n, where,
                               std::string(name) + " has " + std::to_string(w.size()) + " elements, expected " +
                                   std::to_string(n));
      return to_q12(w, where, name);
    };
    p_.d = d;
    p_.inter = I;
    p_.w_i = i.weight().repacked(ternary::Packing::bits2);
    p_.w_f = f.weight().repacked(ternary::Packing::bits2);
    p_.w_g = g.weight().repacked(ternary::Packing::bits2);
    p_.w_o = o.weight().repacked(ternary::Packing::bits2);
    p_.w_gate = gate.weight().repacked(ternary::Packing::bits2);
    p_.w_down = down.weight().repacked(ternary::Packing::bits2);
    p_.attn_norm = vec(attn_norm, d, "attn_norm");
    p_.mlp_norm = vec(mlp_norm, d, "mlp_norm");
    p_.g_norm = vec(g_norm, d, "g_norm");
    p_.i_norm = vec(i.norm_weight(), d, "i_proj.norm");
    p_.f_norm = vec(f.norm_weight(), d, "f_proj.norm");
    p_.g_proj_norm = vec(g.norm_weight(), d, "g_proj.norm");
    p_.o_norm = vec(o.norm_weight(), d, "o_proj.norm");
    p_.gate_norm = vec(gate.norm_weight(), d, "gate_proj.norm");
    p_.down_norm = vec(down.norm_weight(), I, "down_proj.norm");
    p_.lower_bound.assign(static_cast<std::size_t>(d), 0);
    if (!lower_bound.empty()) {
      linattn::detail::require(static_cast<index_t>(lower_bound.size()) == d, where,
                               "lower_bound has " + std::to_string(lower_bound.size()) + " elements, expected " +
                                   std::to_string(d) + " or none");
      for (index_t j = 0; j < d; ++j) {
        const float lb = lower_bound[static_cast<std::size_t>(j)];
        linattn::detail::require(lb >= 0.0f && lb <= 1.0f, where, "lower bounds must lie in [0, 1]");
        p_.lower_bound[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(std::lround(lb * kOne15));
      }
    }
    p_.rq_i = make_requant(i.weight().gamma(), d, where);
    p_.rq_f = make_requant(f.weight().gamma(), d, where);
    p_.rq_o = make_requant(o.weight().gamma(), d, where);
    p_.rq_gate = make_requant(gate.weight().gamma(), d, where);
    p_.rq_down = make_requant(down.weight().gamma(), I, where);
  }

  index_t hidden_size() const { return p_.d; }
  index_t intermediate_size() const { return p_.inter; }
  const IntegerLayerParams& params() const { return p_; }

  // One token: x [d] (Q16 residual stream) and h [d] (Q16 MLGRU state) updated in place.
  void step(std::span<std::int32_t> x, std::span<std::int32_t> h, IntegerLayerTrace* trace = nullptr) const {
    constexpr const char* where = "linattn::fixed::IntegerLayer::step";
    const std::size_t d = static_cast<std::size_t>(p_.d), I = static_cast<std::size_t>(p_.inter);
    linattn::detail::require(d > 0, where, "the layer is empty (default-constructed)");
    linattn::detail::require(x.size() == d && h.size() == d, where,
                             "x and h must have " + std::to_string(d) + " elements, got " + std::to_string(x.size()) +
                                 " and " + std::to_string(h.size()));
    IntegerLayerTrace local;
    IntegerLayerTrace& t = trace ? *trace : local;

    // MLGRU
    const std::array<std::span<const std::int16_t>, 3> b_attn = {p_.f_norm, p_.i_norm, p_.g_proj_norm};
    t.attn_in = quantize_input(x, p_.attn_norm, b_attn);
    const auto acc_f = ternary_matvec(p_.w_f, t.attn_in.codes[0]);
    const auto acc_i = ternary_matvec(p_.w_i, t.attn_in.codes[1]);
    const auto acc_g = ternary_matvec(p_.w_g, t.attn_in.codes[2]);
    t.m_f = multiplier(p_.rq_f, t.attn_in.max_abs[0], t.attn_in.root);
    t.m_i = multiplier(p_.rq_i, t.attn_in.max_abs[1], t.attn_in.root);
    t.z_attn.assign(d, 0);
    for (std::size_t j = 0; j < d; ++j) {
      const std::int32_t f = requantize(acc_f[j], t.m_f, p_.rq_f.shift);
      const std::int32_t i = requantize(acc_i[j], t.m_i, p_.rq_i.shift);
      const std::int32_t lb = p_.lower_bound[j];
      const std::int32_t fl = lb + static_cast<std::int32_t>(round_shift(int128(kOne15 - lb) * sigmoid_q15(f), kGateFrac));
      const std::int32_t ii = sat32(round_shift(int128(silu_q16(i)) * (kOne15 - fl), kGateFrac));
      h[j] = sat32(round_shift(int128(fl) * h[j], kGateFrac) + ii);
      t.z_attn[j] = sat32(round_shift(int128(acc_g[j]) * silu_q16(h[j]), kZShift));
    }
    const std::array<std::span<const std::int16_t>, 1> b_o = {p_.o_norm};
    t.o_in = quantize_input(t.z_attn, p_.g_norm, b_o);
    const auto acc_o = ternary_matvec(p_.w_o, t.o_in.codes[0]);
    t.m_o = multiplier(p_.rq_o, t.o_in.max_abs[0], t.o_in.root);
    for (std::size_t j = 0; j < d; ++j) x[j] = sat32(int128(x[j]) + requantize(acc_o[j], t.m_o, p_.rq_o.shift));
    t.x_mid.assign(x.begin(), x.end());

    // GLU
    const std::array<std::span<const std::int16_t>, 1> b_gate = {p_.gate_norm};
    t.gate_in = quantize_input(x, p_.mlp_norm, b_gate);
    const auto acc_u = ternary_matvec(p_.w_gate, t.gate_in.codes[0]);
    t.m_gate = multiplier(p_.rq_gate, t.gate_in.max_abs[0], t.gate_in.root);
    t.z_mlp.assign(I, 0);
    for (std::size_t j = 0; j < I; ++j) {
      const std::int32_t gate = requantize(acc_u[j], t.m_gate, p_.rq_gate.shift);
      const std::int32_t up = requantize(acc_u[I + j], t.m_gate, p_.rq_gate.shift);
      t.z_mlp[j] = sat32(round_shift(int128(silu_q16(gate)) * up, kActFrac));
    }
    const std::array<std::span<const std::int16_t>, 1> b_down = {p_.down_norm};
    t.down_in = quantize_input(t.z_mlp, {}, b_down);
    const auto acc_d = ternary_matvec(p_.w_down, t.down_in.codes[0]);
    t.m_down = multiplier(p_.rq_down, t.down_in.max_abs[0], t.down_in.root);
    for (std::size_t j = 0; j < d; ++j) x[j] = sat32(int128(x[j]) + requantize(acc_d[j], t.m_down, p_.rq_down.shift));
  }

 private:
  IntegerLayerParams p_;
};

// A whole HGRNBit LM in integer arithmetic: embedding lookup (float → Q16), the layers, the final
// RMSNorm folded into lm_head's BitLinear (as a pre-norm), logits in Q16.
class IntegerModel {
 public:
  using State = std::vector<std::vector<std::int32_t>>;  // [L][d] MLGRU states

  // The integer form of a loaded MatMul-free LM (linattn/models/hgrn_bit.hpp loads one from
  // any HGRNBit checkpoint): its packed weights, norms and lower bounds, converted to the fixed-
  // point formats above; the embeddings stay shared float (looked up on the host).
  static IntegerModel from(const lm::CausalLM<nn::MLGRU, nn::GLU, lm::BitLinearHead>& model) {
    constexpr const char* where = "linattn::fixed::IntegerModel::from";
    IntegerModel m;
    m.embeddings_ = model.embeddings();
    for (const auto& b : model.blocks())
      m.layers_.emplace_back(b.attn.i_proj(), b.attn.f_proj(), b.attn.g_proj(), b.attn.o_proj(), b.mlp.gate_proj(),
                             b.mlp.down_proj(), b.attn_norm, b.mlp_norm, b.attn.g_norm(), b.attn.lower_bound());
    const nn::BitLinear& head = model.head().proj;
    m.lm_head_ = head.weight().repacked(ternary::Packing::bits2);
    m.final_norm_ = to_q12(model.final_norm(), where, "model.norm.weight");
    m.head_norm_ = to_q12(head.norm_weight(), where, "lm_head.norm.weight");
    m.rq_head_ = make_requant(head.weight().gamma(), model.hidden_size(), where);
    return m;
  }

  index_t hidden_size() const { return embeddings_.size(1); }
  index_t vocab_size() const { return lm_head_.rows(); }
  index_t num_layers() const { return static_cast<index_t>(layers_.size()); }
  const std::vector<IntegerLayer>& layers() const { return layers_; }

  State initial_state() const {
    return State(layers_.size(), std::vector<std::int32_t>(static_cast<std::size_t>(hidden_size()), 0));
  }

  // Q16 embedding of one token [d].
  std::vector<std::int32_t> embed(std::int64_t token) const {
    constexpr const char* where = "linattn::fixed::IntegerModel::embed";
    linattn::detail::require(token >= 0 && token < embeddings_.size(0), where,
                             "token id " + std::to_string(token) + " outside [0, " +
                                 std::to_string(embeddings_.size(0)) + ")");
    const index_t d = hidden_size();
    std::vector<std::int32_t> x(static_cast<std::size_t>(d));
    for (index_t j = 0; j < d; ++j) x[static_cast<std::size_t>(j)] = to_q16(embeddings_.data[token * d + j], where);
    return x;
  }

  // Q16 logits [vocab] of the final residual stream x [d].
  std::vector<std::int32_t> head(std::span<const std::int32_t> x) const {
    const std::array<std::span<const std::int16_t>, 1> b = {head_norm_};
    const auto q = quantize_input(x, final_norm_, b);
    const auto acc = ternary_matvec(lm_head_, q.codes[0]);
    const std::uint64_t mult = multiplier(rq_head_, q.max_abs[0], q.root);
    std::vector<std::int32_t> logits(acc.size());
    for (std::size_t v = 0; v < acc.size(); ++v) logits[v] = requantize(acc[v], mult, rq_head_.shift);
    return logits;
  }

  // One token through every layer: Q16 logits [vocab]; the state advances.
  std::vector<std::int32_t> step(std::int64_t token, State& state) const {
    auto x = embed(token);
    for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l].step(x, state[l]);
    return head(x);
  }

 private:
  FloatTensor embeddings_;  // [vocab, d] the model's float embeddings, looked up on the host
  std::vector<IntegerLayer> layers_;
  ternary::PackedWeights lm_head_;  // [vocab, d]
  std::vector<std::int16_t> final_norm_, head_norm_;
  Requant rq_head_;
};

}  // namespace linattn::fixed
