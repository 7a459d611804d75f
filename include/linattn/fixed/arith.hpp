// Integer arithmetic of the fixed-point MatMul-free LM path (fixed/mmf_integer.hpp), each rule
// defined once so that the RTL in examples/hw can match it bit for bit:
//
//   round_shift(v, s)  = ⌊v / 2^s + 1/2⌋        (round half up; arithmetic shift of v + 2^(s−1))
//   sat32(v)           = clamp(v, −2^31, 2^31 − 1)
//   isqrt(n)           = ⌊√n⌋                    (exact, bit by bit, as a restoring square root)
//   act_code(t, M)     = round_half_away(127·t / M), 0 when M = 0, computed exactly as
//                        sign(t)·⌊(254|t| + M) / 2M⌋ — in [−127, 127] because |t| ≤ M
//   sigmoid_q15(x)     σ(x / 2^16)·2^15 as a piecewise-linear function: knots every 1/8 on
//                        [−8, 8] (kSigmoidKnots), linear interpolation on the 13 fraction bits,
//                        0 below −8 and 32768 (1.0) from +8 on
//   silu_q16(x)        = sat32(round_shift(x · sigmoid_q15(x), 15))
//
// Formats: Q16 = int32 with 16 fraction bits (activations, residual stream, MLGRU state);
// Q15 = [0, 32768] for sigmoid outputs and lower bounds; Q12 = int16 norm weights.
#pragma once

#include <array>
#include <cstdint>

namespace linattn::fixed {

// GCC and Clang's 128-bit integers (used for sums of squares and one product); __extension__
// keeps -Wpedantic quiet.
__extension__ using int128 = __int128;
__extension__ using uint128 = unsigned __int128;

inline constexpr int kActFrac = 16;   // Q16: activations, residual, MLGRU state h
inline constexpr int kGateFrac = 15;  // Q15: sigmoid outputs, forget gates, lower bounds
inline constexpr int kNormFrac = 12;  // Q12: norm weights (int16, |w| < 8)
inline constexpr std::int32_t kOne15 = 1 << kGateFrac;
inline constexpr std::int32_t kOne12 = 1 << kNormFrac;

// ⌊v / 2^s + 1/2⌋ for s ≥ 1; v for s = 0.
constexpr int128 round_shift(int128 v, int s) {
  if (s <= 0) return v;
  return (v + (int128(1) << (s - 1))) >> s;  // >> of a negative int128 is arithmetic (C++20)
}

constexpr std::int32_t sat32(int128 v) {
  constexpr int128 lo = -(int128(1) << 31), hi = (int128(1) << 31) - 1;
  return static_cast<std::int32_t>(v < lo ? lo : (v > hi ? hi : v));
}

// ⌊√n⌋, exact, for n < 2^126: the digit-by-digit method the RTL's scalar unit runs (one result
// bit a step, most significant first).
constexpr std::uint64_t isqrt(uint128 n) {
  uint128 rem = n, root = 0;
  uint128 bit = uint128(1) << 124;  // the highest power of four the RTL's 80-bit input can need
  while (bit > n) bit >>= 2;
  while (bit != 0) {
    if (rem >= root + bit) {
      rem -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return static_cast<std::uint64_t>(root);
}

// round_half_away(127·t / M) for |t| ≤ M, exactly; 0 when M = 0.
constexpr std::int8_t act_code(std::int64_t t, std::int64_t max_abs) {
  if (max_abs == 0) return 0;
  const std::uint64_t mag = static_cast<std::uint64_t>(t < 0 ? -t : t);
  const std::uint64_t m = static_cast<std::uint64_t>(max_abs);
  const auto q = static_cast<std::int32_t>((254 * mag + m) / (2 * m));  // ≤ 127 since mag ≤ m
  return static_cast<std::int8_t>(t < 0 ? -q : q);
}

// σ at k/8 − 8, k = 0..128, in Q15: round(2^15 / (1 + e^{8 − k/8})). tests/fixed checks every
// entry against std::exp; examples/hw/rtl/sigmoid_knots.svh holds the same numbers.
inline constexpr std::array<std::int16_t, 129> kSigmoidKnots = {
    11,    12,    14,    16,    18,    21,    23,    26,    30,    34,    38,    43,    49,    56,    63,    72,
    81,    92,    104,   118,   133,   151,   171,   194,   219,   248,   281,   318,   360,   407,   461,   521,
    589,   666,   753,   851,   961,   1084,  1223,  1379,  1554,  1750,  1969,  2213,  2486,  2789,  3124,  3496,
    3906,  4357,  4851,  5391,  5978,  6613,  7297,  8031,  8813,  9641,  10513, 11424, 12371, 13348, 14347, 15361,
    16384, 17407, 18421, 19420, 20397, 21344, 22255, 23127, 23955, 24737, 25471, 26155, 26790, 27377, 27917, 28411,
    28862, 29272, 29644, 29979, 30282, 30555, 30799, 31018, 31214, 31389, 31545, 31684, 31807, 31917, 32015, 32102,
    32179, 32247, 32307, 32361, 32408, 32450, 32487, 32520, 32549, 32574, 32597, 32617, 32635, 32650, 32664, 32676,
    32687, 32696, 32705, 32712, 32719, 32725, 32730, 32734, 32738, 32742, 32745, 32747, 32750, 32752, 32754, 32756,
    32757};
inline constexpr int kSigmoidKnotShift = 13;  // knots every 2^13 in Q16 = 1/8
inline constexpr std::int32_t kSigmoidRange = 8 << kActFrac;

// σ(x) in Q15 for x in Q16. The interpolation error against σ is below 2^-14 (tested); the step
// to 1.0 at x = 8 is 11/32768 (σ(8) = 0.99966).
constexpr std::int32_t sigmoid_q15(std::int32_t x) {
  if (x >= kSigmoidRange) return kOne15;
  if (x < -kSigmoidRange) return 0;
  const std::int32_t off = x + kSigmoidRange;  // [0, 2^20)
  const std::int32_t k = off >> kSigmoidKnotShift, frac = off & ((1 << kSigmoidKnotShift) - 1);
  const std::int32_t y0 = kSigmoidKnots[static_cast<std::size_t>(k)];
  const std::int32_t y1 = kSigmoidKnots[static_cast<std::size_t>(k + 1)];
  return y0 + static_cast<std::int32_t>(round_shift(int128(y1 - y0) * frac, kSigmoidKnotShift));
}

constexpr std::int32_t silu_q16(std::int32_t x) { return sat32(round_shift(int128(x) * sigmoid_q15(x), kGateFrac)); }

}  // namespace linattn::fixed
