// RMSNorm over the last dimension, the norm of every block, of the GLA/GSA output gates, of
// MLGRU's g branch and of BitLinear's input (SPEC §5.0).
#pragma once

#include <cmath>
#include <span>
#include <string>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"

namespace linattn {

// RMSNorm with weight (SPEC §5.0, §5.5): y[n, :] = (x[n, :] · rstd_n) ⊙ weight, rstd_n = 1/sqrt(mean(x²) + eps).
//   x, y [N, D] (y may be x), weight [D]. The sum of squares accumulates in double; rstd is rounded
//   to float and applied in fp32 as the Triton kernel does (x̂ = x·rstd, then ·w). Rows are
//   independent: `threads` splits them (prefill) with identical results at any count.
inline void rms_norm(TensorView<const float, 2> x, std::span<const float> weight, float eps, TensorView<float, 2> y,
                     Threads threads = {}) {
  constexpr const char* where = "linattn::rms_norm";
  linattn::detail::check_shape(where, "x", x, {-1, -1});
  const index_t N = x.size(0), D = x.size(1);
  linattn::detail::check_shape(where, "y", y, {N, D});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "y", y);
  linattn::detail::require(static_cast<index_t>(weight.size()) == D, where,
                           "weight has " + std::to_string(weight.size()) + " elements, expected " + std::to_string(D));
  linattn::detail::require(std::isfinite(eps) && eps >= 0.0f, where, "eps must be finite and >= 0");
  linattn::detail::parallel_rows(N, D, threads, [&](index_t r0, index_t r1) {
  for (index_t n = r0; n < r1; ++n) {
    const float* xr = x.ptr(n);
    float* yr = y.ptr(n);
    // Eight independent double lanes: the same sum in a fixed order the compiler can vectorise.
    double lane[8] = {};
    index_t j = 0;
    for (; j + 8 <= D; j += 8)
      for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(xr[j + l]) * static_cast<double>(xr[j + l]);
    for (; j < D; ++j) lane[0] += static_cast<double>(xr[j]) * static_cast<double>(xr[j]);
    double ss = 0.0;
    for (double v : lane) ss += v;
    const double mean = D > 0 ? ss / static_cast<double>(D) : 0.0;
    const float rstd = static_cast<float>(1.0 / std::sqrt(mean + static_cast<double>(eps)));
    for (index_t j = 0; j < D; ++j) yr[j] = (xr[j] * rstd) * weight[static_cast<std::size_t>(j)];
  }
  });
}

}  // namespace linattn
