// Ternary × int8 matrix products (SPEC §5.5 "integer inference", §7):
//
//   matmul  acc [N, out] (int32) = x_q [N, in] (int8) · W_qᵀ        exact: Σ_{W=+1} x − Σ_{W=−1} x
//   linear  y [N, out] (float)   = acc · (γ / s_x)                  x [N, in] float, quantised per
//           token (absmax int8, ties away from zero, SPEC §5.5); one float multiply per output
//
// W is a PackedWeights (2-bit or base-3 "1.6-bit", ops/ternary/packing.hpp); N = 1 is a decode
// GEMV, N > 1 a GEMM. Work is split over output rows (Options::threads).
//
// Backends: the portable scalar kernel is always compiled; AVX2 and AVX-512 (F+BW+VNNI+VBMI)
// kernels are compiled when the compiler targets them (-march=native, -mavx2, ...). Backend::native
// picks the widest compiled in; naming another backend explicitly lets a caller (the tests)
// compare paths, which agree bit for bit. The kernels are in an inline namespace named after the
// widest ISA compiled in, so translation units built with different -m flags do not share (and
// the linker cannot mix up) differently-compiled copies.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/ops/ternary/kernels_avx2.hpp"
#include "linattn/ops/ternary/kernels_avx512.hpp"
#include "linattn/ops/ternary/kernels_scalar.hpp"
#include "linattn/ops/ternary/kernels_simd.hpp"
#include "linattn/ops/ternary/packing.hpp"
#include "linattn/ops/ternary/quantize.hpp"

#if defined(LINATTN_TERNARY_HAVE_AVX512)
#define LINATTN_TERNARY_ISA isa_avx512
#elif defined(LINATTN_TERNARY_HAVE_AVX2)
#define LINATTN_TERNARY_ISA isa_avx2
#else
#define LINATTN_TERNARY_ISA isa_scalar
#endif

namespace linattn::ternary {

enum class Backend : std::uint8_t {
  scalar,  // portable C++
  avx2,    // needs the compiler to target AVX2
  avx512,  // needs AVX-512 F, BW, VNNI and VBMI
  native,  // the widest of the above compiled in
};

inline namespace LINATTN_TERNARY_ISA {

constexpr bool backend_available(Backend b) {
  switch (b) {
    case Backend::scalar:
    case Backend::native: return true;
    case Backend::avx2:
#if defined(LINATTN_TERNARY_HAVE_AVX2)
      return true;
#else
      return false;
#endif
    case Backend::avx512:
#if defined(LINATTN_TERNARY_HAVE_AVX512)
      return true;
#else
      return false;
#endif
  }
  return false;
}

constexpr Backend native_backend() {
  return backend_available(Backend::avx512) ? Backend::avx512
                                            : (backend_available(Backend::avx2) ? Backend::avx2 : Backend::scalar);
}

constexpr const char* backend_name(Backend b) {
  switch (b) {
    case Backend::scalar: return "scalar";
    case Backend::avx2: return "avx2";
    case Backend::avx512: return "avx512";
    case Backend::native: return "native";
  }
  return "?";
}

struct Options {
  Threads threads;                   // parallel over output rows
  Backend backend = Backend::native;
};

// Longest row the kernels take: |acc| ≤ 128·in, and the AVX-512 decode path keeps partial sums
// scaled by up to 64 (kernels_avx512.hpp), so 256·in must fit an int32.
inline constexpr index_t kMaxColumns = index_t(1) << 23;

// Dispatch internals (named `dispatch`, not `detail`: a `detail` in this inline namespace would
// make linattn::ternary::detail ambiguous).
namespace dispatch {

using namespace linattn::ternary::detail;  // kernels, layouts, quantize_activation_row

inline void check_weights(const char* where, const PackedWeights& w) {
  linattn::detail::require(w.rows() > 0, where, "the weights are empty (default-constructed PackedWeights)");
  linattn::detail::require(w.cols() <= kMaxColumns, where,
                           "rows of " + std::to_string(w.cols()) + " weights are longer than the kernels' limit of " +
                               std::to_string(kMaxColumns));
}

inline Backend resolve_backend(const char* where, Backend b) {
  if (b == Backend::native) return native_backend();
  if (!backend_available(b))
    linattn::detail::fail(where, std::string("backend ") + backend_name(b) +
                                     " is not compiled in (build with -march=native, or -mavx2 / "
                                     "-mavx512f -mavx512bw -mavx512vnni -mavx512vbmi)");
  return b;
}

// Rows per work item: one item per thread would leave a thread idle at the end when the other is
// slowed down (the machine is shared); 8 items per thread balance well, and at least 16 rows keep
// the per-item overhead (scheduling, a panel buffer) small against the row work.
inline index_t rows_per_item(index_t rows, int threads) {
  if (threads <= 1) return rows;
  const index_t per = (rows + 8 * threads - 1) / (8 * threads);
  return std::max<index_t>(16, (per + 3) / 4 * 4);
}

template <class Out>
void run_rows(Backend b, const PackedWeights& w, const ActivationsView& x, index_t r0, index_t r1, const Out& out) {
  // One SIMD instruction set, either packing.
  [[maybe_unused]] auto simd_rows = [&]<class Isa>() {
    if (w.packing() == Packing::bits2)
      simd::matmul_rows<Isa, Packing::bits2>(w, x, r0, r1, out);
    else
      simd::matmul_rows<Isa, Packing::base3>(w, x, r0, r1, out);
  };
  switch (b) {
#if defined(LINATTN_TERNARY_HAVE_AVX512)
    case Backend::avx512: simd_rows.template operator()<avx512::Isa>(); return;
#endif
#if defined(LINATTN_TERNARY_HAVE_AVX2)
    case Backend::avx2: simd_rows.template operator()<avx2::Isa>(); return;
#endif
    default: scalar::matmul_rows(w, x, r0, r1, out); return;
  }
}

// Runs the kernel over all rows, split into items for the threads.
template <class Out>
void run(Backend b, const PackedWeights& w, const ActivationsView& x, Threads threads, const Out& out) {
  const Threads useful =
      linattn::detail::work_threads(threads, x.tokens * w.rows() * w.cols(), linattn::detail::kMinTernaryMacsPerThread);
  const int nt = linattn::detail::resolve_threads(useful, w.rows());
  const index_t per = rows_per_item(w.rows(), nt);
  const index_t items = (w.rows() + per - 1) / per;
  linattn::detail::parallel_for(items, Threads{nt}, [&](index_t item) {
    const index_t r0 = item * per, r1 = std::min(w.rows(), r0 + per);
    run_rows(b, w, x, r0, r1, out);
  });
}

// Activations the chosen backend reads: column order for the scalar kernel, slot-major (with
// per-token sums) for the SIMD kernels. fill(t, row) writes token t's `cols` codes in column order.
struct PreparedActivations {
  AlignedVector<std::int8_t> codes;  // [N, stride]
  std::vector<std::int32_t> sums;    // [N]
  ActivationsView view;
};

template <class Fill>
void prepare(Backend b, const PackedWeights& w, index_t N, Threads threads, PreparedActivations& p, const Fill& fill) {
  const index_t cols = w.cols();
  const bool slot_major = b != Backend::scalar;
  const index_t stride = slot_major ? slot_major_stride(w) : cols;
  p.codes.assign(static_cast<std::size_t>(N * stride), 0);
  p.sums.assign(static_cast<std::size_t>(N), 0);
  // Preparing a token costs about as much as a few rows of the kernel: split over threads only
  // when there are many tokens.
  const Threads t = N >= 16 ? threads : Threads{1};
  linattn::detail::parallel_for(N, t, [&](index_t n) {
    std::int8_t* dst = p.codes.data() + n * stride;
    if (!slot_major) {
      fill(n, dst);
      return;
    }
    thread_local std::vector<std::int8_t> row;
    row.resize(static_cast<std::size_t>(cols));
    fill(n, row.data());
    p.sums[static_cast<std::size_t>(n)] = to_slot_major(row.data(), cols, w.packing(), stride, dst);
  });
  p.view = {p.codes.data(), N, stride, p.sums.data()};
}

}  // namespace dispatch

// acc [N, out] = x [N, in] · W_qᵀ in int32, exact (|acc| ≤ 128·in). x codes may be any int8.
inline void matmul(const PackedWeights& w, TensorView<const std::int8_t, 2> x, TensorView<std::int32_t, 2> acc,
                   const Options& opt = {}) {
  constexpr const char* where = "linattn::ternary::matmul";
  dispatch::check_weights(where, w);
  linattn::detail::check_shape(where, "x", x, {-1, w.cols()});
  const index_t N = x.size(0);
  linattn::detail::check_shape(where, "acc", acc, {N, w.rows()});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "acc", acc);
  if (N == 0) return;
  const Backend b = dispatch::resolve_backend(where, opt.backend);
  const auto out = [&](index_t t, index_t r, std::int32_t v) { acc.ptr(t)[r] = v; };
  if (b == Backend::scalar) {  // reads x in place
    dispatch::run(b, w, {x.data(), N, x.stride(0), nullptr}, opt.threads, out);
    return;
  }
  dispatch::PreparedActivations p;
  dispatch::prepare(b, w, N, opt.threads, p,
                  [&](index_t n, std::int8_t* dst) { std::copy(x.ptr(n), x.ptr(n) + w.cols(), dst); });
  dispatch::run(b, w, p.view, opt.threads, out);
}

// y [N, out] = (x_q / s_x) · (γ·W_q)ᵀ computed as acc · (γ/s_x): x [N, in] (already normalised)
// is quantised per token (quantize.hpp, `rounding`: the fused path's half away from zero), the
// integer kernel runs, and one float multiply per output dequantises. act_scale, when given
// (size N), receives s_x.
inline void linear(const PackedWeights& w, TensorView<const float, 2> x, TensorView<float, 2> y, const Options& opt = {},
                   std::span<float> act_scale = {}, Rounding rounding = Rounding::half_away_from_zero) {
  constexpr const char* where = "linattn::ternary::linear";
  dispatch::check_weights(where, w);
  linattn::detail::check_shape(where, "x", x, {-1, w.cols()});
  const index_t N = x.size(0);
  linattn::detail::check_shape(where, "y", y, {N, w.rows()});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "y", y);
  linattn::detail::require(act_scale.empty() || static_cast<index_t>(act_scale.size()) == N, where,
                           "act_scale has " + std::to_string(act_scale.size()) + " elements, expected " +
                               std::to_string(N));
  if (N == 0) return;
  const Backend b = dispatch::resolve_backend(where, opt.backend);
  std::vector<float> factor(static_cast<std::size_t>(N));  // γ / s_x per token
  dispatch::PreparedActivations p;
  dispatch::prepare(b, w, N, opt.threads, p, [&](index_t n, std::int8_t* dst) {
    const float s = linattn::ternary::detail::quantize_activation_row(x.ptr(n), w.cols(), dst, rounding, where);
    factor[static_cast<std::size_t>(n)] = w.gamma() / s;
    if (!act_scale.empty()) act_scale[static_cast<std::size_t>(n)] = s;
  });
  dispatch::run(b, w, p.view, opt.threads, [&](index_t t, index_t r, std::int32_t v) {
    y.ptr(t)[r] = static_cast<float>(v) * factor[static_cast<std::size_t>(t)];
  });
}

}  // namespace LINATTN_TERNARY_ISA
}  // namespace linattn::ternary
