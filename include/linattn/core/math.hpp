// Scalar traits and element-wise math shared by every kernel.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "linattn/core/tensor.hpp"

namespace linattn {

// States and accumulations run in at least float (SPEC §1: fla keeps states in fp32).
template <class T>
struct accumulator {
  static_assert(std::is_floating_point_v<T>,
                "linattn kernels are defined for floating-point scalars (float, double)");
  using type = std::conditional_t<(sizeof(T) < sizeof(float)), float, T>;
};
template <class T>
using acc_t = typename accumulator<T>::type;

namespace detail {

// exp(x) over an array, written as straight-line arithmetic so the compiler vectorises it
// (std::exp does not vectorise without -ffast-math, and the gates need one exp per
// element per token: scalar expf cost more than the whole state update in the recurrent form).
// Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, then a Taylor polynomial: degree 7 for
// float (truncation 1.2e-7 relative, about 1 ulp), degree 12 for double (5e-16).
// Results below the smallest normal flush to 0 (gates that small are hard resets; SPEC §2
// calls underflow to 0 harmless), above the largest finite give +inf, NaN propagates.
template <class F>
constexpr F inv_factorial(int d) {
  double f = 1;
  for (int i = 2; i <= d; ++i) f *= i;
  return static_cast<F>(1.0 / f);
}

template <class F>
inline void exp_inplace(F* x, index_t n) {
  static_assert(std::is_same_v<F, float> || std::is_same_v<F, double>);
  using I = std::conditional_t<std::is_same_v<F, float>, std::int32_t, std::int64_t>;
  constexpr bool is_float = std::is_same_v<F, float>;
  constexpr F log2e = F(1.4426950408889634);
  constexpr F ln2_hi = is_float ? F(0.693145751953125) : F(0.6931471803691238);
  constexpr F ln2_lo = is_float ? F(1.428606765330187e-06) : F(1.9082149292705877e-10);
  constexpr F lo = is_float ? F(-87.33) : F(-708.39);
  constexpr F hi = is_float ? F(88.72283) : F(709.782712893384);  // log(max finite)
  constexpr int mant = is_float ? 23 : 52;
  constexpr I bias = is_float ? 127 : 1023;
  constexpr int degree = is_float ? 7 : 12;
  static constexpr auto coeff = [] {
    std::array<F, 13> c{};
    for (int d = 0; d < 13; ++d) c[d] = inv_factorial<F>(d);
    return c;
  }();
  for (index_t i = 0; i < n; ++i) {
    const F xi = x[i];
    // Written so that NaN clamps to lo: a NaN reaching the int conversion below is undefined
    // behaviour (the result is put back to NaN at the end).
    const F xc = xi >= lo ? (xi <= hi ? xi : hi) : lo;
    // Round to nearest by the add-and-subtract trick (std::nearbyint blocks vectorisation);
    // |x·log2e| < 2^22, where the trick is exact.
    constexpr F shifter = is_float ? F(12582912.0) : F(6755399441055744.0);  // 1.5·2^mant
    const F nf = (xc * log2e + shifter) - shifter;
    const F r = (xc - nf * ln2_hi) - nf * ln2_lo;
    // Horner on 1 + r + r^2/2! + ... + r^d/d!
    F p = coeff[degree];
    for (int d = degree - 1; d >= 0; --d) p = p * r + coeff[d];
    // 2^n as two factors, so n = 128 (float) / 1024 (double) near the top of the range
    // still has finite halves.
    const I n_int = static_cast<I>(nf);
    const I n_half = n_int / 2;
    F y = p * std::bit_cast<F>(static_cast<I>((n_half + bias) << mant)) *
          std::bit_cast<F>(static_cast<I>((n_int - n_half + bias) << mant));
    y = xi < lo ? F(0) : y;
    y = xi > hi ? std::numeric_limits<F>::infinity() : y;
    x[i] = (xi != xi) ? xi : y;
  }
}

// σ(x) and silu(x) = x·σ(x) over an array, in place, through exp_inplace (vectorised): the
// gates of MLGRU and the swish of every MLP and output gate take one exp per element per token,
// and scalar expf was the largest cost after the matrix products in a MatMul-free decode step.
template <class F>
inline void sigmoid_inplace(F* x, index_t n) {
  for (index_t i = 0; i < n; ++i) x[i] = -x[i];
  exp_inplace(x, n);
  for (index_t i = 0; i < n; ++i) x[i] = F(1) / (F(1) + x[i]);
}

template <class F>
inline void silu_inplace(F* x, index_t n) {
  constexpr index_t kBlock = 256;  // e^{-x} of one block on the stack
  F e[kBlock];
  for (index_t i0 = 0; i0 < n; i0 += kBlock) {
    const index_t m = std::min(kBlock, n - i0);
    for (index_t j = 0; j < m; ++j) e[j] = -x[i0 + j];
    exp_inplace(e, m);
    for (index_t j = 0; j < m; ++j) x[i0 + j] = x[i0 + j] / (F(1) + e[j]);
  }
}

}  // namespace detail
}  // namespace linattn

namespace linattn::detail {

// op-reduction of x[0, n) with one partial result per vector lane, combined as a tree: a
// single running max or sum is a serial chain the compiler may not reorder.
template <class F, class Op>
inline F lane_reduce(const F* x, index_t n, F init, Op op) {
  constexpr index_t L = 64 / sizeof(F);
  F part[L];
  std::fill_n(part, L, init);
  const index_t full = n / L * L;
  for (index_t i = 0; i < full; i += L)
#pragma GCC unroll 16
    for (index_t l = 0; l < L; ++l) part[l] = op(part[l], x[i + l]);
  for (index_t w = L / 2; w > 0; w /= 2)
    for (index_t l = 0; l < w; ++l) part[l] = op(part[l], part[l + w]);
  F r = part[0];
  for (index_t i = full; i < n; ++i) r = op(r, x[i]);
  return r;
}

// In-place softmax of each of `rows` rows of length n (row stride ld), max-subtracted so no
// exponent is positive. Max and sum through lane_reduce: with serial chains a 64-slot GSA
// decode step spent 0.11 us a head in this softmax, a third of its time (Zen 5, K = V = 128;
// a 64-slot row 86 ns with them, 54 ns through lane_reduce).
template <class F>
inline void softmax_rows(F* x, index_t rows, index_t n, index_t ld) {
  for (index_t r = 0; r < rows; ++r) {
    F* row = x + r * ld;
    const F mx = lane_reduce(row, n, -std::numeric_limits<F>::infinity(), [](F m, F v) { return v > m ? v : m; });
    for (index_t i = 0; i < n; ++i) row[i] -= mx;
    exp_inplace(row, n);
    const F inv = F(1) / lane_reduce(row, n, F(0), [](F s, F v) { return s + v; });
    for (index_t i = 0; i < n; ++i) row[i] *= inv;
  }
}

// log(e^a + e^b), exact at a = -inf.
template <class F>
inline F log_add_exp(F a, F b) {
  if (a == -std::numeric_limits<F>::infinity()) return b;
  if (b == -std::numeric_limits<F>::infinity()) return a;
  const F mx = a > b ? a : b;
  return mx + std::log1p(std::exp(-(a > b ? a - b : b - a)));
}

}  // namespace linattn::detail

namespace linattn {

// σ(x) = 1 / (1 + e^{-x}), evaluated without overflow for large |x|.
template <class F>
inline F sigmoid(F x) {
  if (x >= F(0)) return F(1) / (F(1) + std::exp(-x));
  const F e = std::exp(x);
  return e / (F(1) + e);
}

// silu(x) = swish(x) = x σ(x) (SPEC §5.0).
template <class F>
inline F silu(F x) {
  return x * sigmoid(x);
}

}  // namespace linattn
