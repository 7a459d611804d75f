// The quantisers of MatMul-free LM's BitLinear (SPEC §5.5), with upstream's quirks named:
//
//   x̂   = x · rsqrt(mean(x²) + ε) ⊙ w_n                  rms_norm            (ε: kFusedBitLinearEps)
//   s_x = 127 / max(max_j |x̂_j|, 1e-5)                   per token           (kActivationAbsMaxFloor)
//   x_q = clamp(round(x̂ · s_x), −128, 127)               int8                (Rounding::half_away_from_zero)
//   γ   = max(mean |W|, 1e-5)                             per tensor          (kWeightAbsMeanFloor)
//   W_q = clamp(round(W · (1/γ)), −1, 1)                  ternary             (Rounding::half_to_even)
//
// Everything is fp32 as upstream, except two sums accumulated in double (the sum of squares of
// an RMSNorm row, the sum of |W| of γ) and rounded to float once: the result is then the
// correctly rounded mean whatever the summation order, and upstream's own fp32 sums differ from
// it only in the last bits (SPEC §5.5: "last-bit differences are expected").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include "linattn/core/check.hpp"
#include "linattn/core/norm.hpp"
#include "linattn/core/tensor.hpp"

namespace linattn::ternary {

// SPEC §5.5 and §8 item 7: the fused BitLinear (mmfreelm FusedBitLinear → layer_norm_linear_quant_fn,
// what every HGRNBit projection is) normalises with ε = 1e-6, whatever its module attribute
// norm.eps says; norm.eps = 1e-8 only reaches the unfused mmfreelm.ops.bitnet.BitLinear.
inline constexpr float kFusedBitLinearEps = 1e-6f;
inline constexpr float kUnfusedBitLinearEps = 1e-8f;
// SPEC §5.5, §8 item 7: the floors that keep the scales finite for an all-zero token / tensor.
inline constexpr float kActivationAbsMaxFloor = 1e-5f;  // s_x = 127 / max(max|x̂|, 1e-5)
inline constexpr float kWeightAbsMeanFloor = 1e-5f;     // γ = max(mean|W|, 1e-5)
// int8 activation range (SPEC §8 item 13: −128 is reachable only through the clamp; in practice
// codes lie in [−127, 127]).
inline constexpr float kActivationLevels = 127.0f;

// SPEC §5.5, §8 item 13: the two rounding modes of upstream.
enum class Rounding : std::uint8_t {
  half_away_from_zero,  // activations of the fused Triton kernel (tl.math.round)
  half_to_even,         // weights (torch.round), and the activations of the unfused BitLinear
};

// round(v) with ties away from zero (2.5 → 3, −2.5 → −3), independent of the FP rounding mode.
inline float round_half_away_from_zero(float v) {
  const float t = std::trunc(v);
  return std::fabs(v - t) >= 0.5f ? t + std::copysign(1.0f, v) : t;  // v − t is exact
}

// round(v) with ties to even (0.5 → 0, 1.5 → 2, 2.5 → 2), independent of the FP rounding mode.
inline float round_half_to_even(float v) {
  const float t = std::trunc(v);
  const float d = std::fabs(v - t);
  const bool odd = std::fmod(t, 2.0f) != 0.0f;
  return (d > 0.5f || (d == 0.5f && odd)) ? t + std::copysign(1.0f, v) : t;
}

inline float round_with(Rounding r, float v) {
  return r == Rounding::half_to_even ? round_half_to_even(v) : round_half_away_from_zero(v);
}

namespace detail {

inline void require_finite(bool finite, const char* where, const char* what) {
  if (!finite) linattn::detail::fail(where, std::string(what) + " contains a non-finite value");
}

// One token: codes[j] = clamp(round(x̂[j] · s), −128, 127) with s = 127 / max(max|x̂|, 1e-5).
// Returns s. Throws on a NaN or infinity (a code from one would be undefined).
//
// Written so that GCC vectorises both passes at -O3 (measured, Zen 5, in = 5632: 0.6 us, against
// 8 us for std::trunc/std::clamp code): max|x̂| as an unsigned max over the bit patterns with the
// sign cleared (for non-negative floats the integer order is the float order, and NaN/inf
// patterns compare above every finite one), and the rounding through an int truncation, since
// |x̂·s| <= 127 (1 + 2^-23) always: t = trunc(v), f = v − t exactly, then ±1 by the tie rule.
// The same results as round_half_away_from_zero / round_half_to_even (tested).
inline float quantize_activation_row(const float* x, index_t n, std::int8_t* codes, Rounding rounding,
                                     const char* where) {
  std::uint32_t mbits = 0;
  for (index_t j = 0; j < n; ++j) {
    std::uint32_t b;
    std::memcpy(&b, x + j, sizeof b);
    b &= 0x7FFFFFFFu;
    mbits = b > mbits ? b : mbits;
  }
  require_finite(mbits < 0x7F800000u, where, "x");
  float m;
  std::memcpy(&m, &mbits, sizeof m);
  const float s = kActivationLevels / std::max(m, kActivationAbsMaxFloor);
  const bool even = rounding == Rounding::half_to_even;
  for (index_t j = 0; j < n; ++j) {
    const float v = x[j] * s;
    const std::int32_t t = static_cast<std::int32_t>(v);
    const float f = v - static_cast<float>(t);  // exact
    // Half away: a tie (|f| = 0.5) moves away from zero. Half even: only when t is odd.
    const bool tie_moves = !even || (t & 1) != 0;
    const std::int32_t up = (f > 0.5f) | ((f == 0.5f) & tie_moves);
    const std::int32_t down = (f < -0.5f) | ((f == -0.5f) & tie_moves);
    const std::int32_t r = t + up - down;
    codes[j] = static_cast<std::int8_t>(r < -128 ? -128 : (r > 127 ? 127 : r));
  }
  return s;
}

}  // namespace detail

// BitLinear's RMSNorm is the library's RMSNorm (core/norm.hpp).
using linattn::rms_norm;

// Per-token absmax int8 quantisation (SPEC §5.5): x̂ [N, D] → codes [N, D], scale [N] = s_x.
// Rounding defaults to the fused path's half away from zero.
inline void quantize_activations(TensorView<const float, 2> x, TensorView<std::int8_t, 2> codes, std::span<float> scale,
                                 Rounding rounding = Rounding::half_away_from_zero) {
  constexpr const char* where = "linattn::ternary::quantize_activations";
  linattn::detail::check_shape(where, "x", x, {-1, -1});
  const index_t N = x.size(0), D = x.size(1);
  linattn::detail::check_shape(where, "codes", codes, {N, D});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "codes", codes);
  linattn::detail::require(static_cast<index_t>(scale.size()) == N, where,
                           "scale has " + std::to_string(scale.size()) + " elements, expected " + std::to_string(N));
  for (index_t n = 0; n < N; ++n)
    scale[static_cast<std::size_t>(n)] = detail::quantize_activation_row(x.ptr(n), D, codes.ptr(n), rounding, where);
}

// γ = max(mean |W|, 1e-5) over the whole tensor (SPEC §5.5; upstream's weight_scale is 1/γ). The
// sum of |W| accumulates in double and the mean is rounded to float once. Throws on an empty or
// non-finite W.
inline float absmean_gamma(TensorView<const float, 2> w) {
  constexpr const char* where = "linattn::ternary::absmean_gamma";
  linattn::detail::check_shape(where, "weight", w, {-1, -1});
  linattn::detail::require(w.size(0) > 0 && w.size(1) > 0, where,
                           "weight has shape " + shape_string(w.shape()) + "; it needs at least one element");
  // One partial sum per double lane of a 512-bit vector: a single running sum is a chain of
  // dependent adds (the mean is rounded to float once, so the order does not reach it).
  constexpr index_t kLanes = 8;
  double part[kLanes] = {};
  const index_t n = w.size(1), full = n / kLanes * kLanes;
  for (index_t r = 0; r < w.size(0); ++r) {
    const float* row = &w(r, 0);
    const index_t stride = w.stride(1);
    for (index_t c = 0; c < full; c += kLanes)
#pragma GCC unroll 8
      for (index_t l = 0; l < kLanes; ++l) part[l] += std::fabs(static_cast<double>(row[(c + l) * stride]));
    for (index_t c = full; c < n; ++c) part[0] += std::fabs(static_cast<double>(row[c * stride]));
  }
  double sum = 0.0;
  for (const double p : part) sum += p;
  const float mean = static_cast<float>(sum / static_cast<double>(w.numel()));
  detail::require_finite(std::isfinite(mean), where, "weight");
  return std::max(mean, kWeightAbsMeanFloor);
}

// W_q = clamp(round_half_to_even(W · s), −1, 1) with s = 1/γ rounded to fp32 first: upstream
// multiplies by its fp32 weight_scale = 1/γ rather than dividing by γ, which can differ in the
// last bit exactly at a tie (SPEC §5.5 writes W/γ; the golden files use W·weight_scale).
inline void ternarize(TensorView<const float, 2> w, float gamma, TensorView<std::int8_t, 2> codes,
                      Rounding rounding = Rounding::half_to_even) {
  constexpr const char* where = "linattn::ternary::ternarize";
  linattn::detail::check_shape(where, "weight", w, {-1, -1});
  linattn::detail::check_shape(where, "codes", codes, {w.size(0), w.size(1)});
  linattn::detail::require(std::isfinite(gamma) && gamma > 0.0f, where, "gamma must be finite and > 0");
  const float s = 1.0f / gamma;
  const index_t n = w.size(1), ws = w.stride(1), cs = codes.stride(1);
  if (n == 0) return;
  bool finite = true;
  for (index_t r = 0; r < w.size(0) && finite; ++r) {
    const float* wr = &w(r, 0);
    if (ws == 1) {
      finite = linattn::detail::first_non_finite(std::span<const float>(wr, static_cast<std::size_t>(n))) < 0;
    } else {
      for (index_t c = 0; c < n; ++c) finite &= std::isfinite(wr[c * ws]);
    }
  }
  detail::require_finite(finite, where, "weight");
  // clamp(round(v), −1, 1) is the sign of v beyond the tie ±0.5, and at the tie 0 (half to even)
  // or ±1 (half away from zero). Two compares against a threshold t that GCC vectorises: 0.5
  // itself for half to even, the float just below it for half away (v > t ⇔ v ≥ 0.5). The
  // scalar rounding took most of a model's load before (8 s for the 370M model, Zen 5).
  const float t = rounding == Rounding::half_to_even ? 0.5f : std::nextafter(0.5f, 0.0f);
  for (index_t r = 0; r < w.size(0); ++r) {
    const float* wr = &w(r, 0);
    std::int8_t* cr = &codes(r, 0);
    for (index_t c = 0; c < n; ++c) {
      const float v = wr[c * ws] * s;
      cr[c * cs] = static_cast<std::int8_t>(static_cast<int>(v > t) - static_cast<int>(v < -t));
    }
  }
}

}  // namespace linattn::ternary
