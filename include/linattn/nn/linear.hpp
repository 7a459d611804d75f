// Dense float projection y = x·Wᵀ (+ b), the nn.Linear of the GLA/GSA models (SPEC §5.1–5.2).
//
//   x [N, in]   W [out, in]   y [N, out]
//
// The output features are split over threads, each running one Eigen product on its block of
// W's rows: decode (N = 1) is a matrix-vector product that Eigen would run on one thread, and
// the split keeps both the weight stream and prefill's GEMM parallel.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/core/float_tensor.hpp"

namespace linattn::nn {

namespace detail {

// Output rows per work item: a multiple of 16 (whole AVX-512 float vectors of y), and at most
// one block per thread, so each thread streams one contiguous slab of W.
inline constexpr index_t kLinearRowAlign = 16;

// y[N, out] = x[N, in] · w[out, in]ᵀ, parallel over blocks of output rows.
inline void dense_matmul(TensorView<const float, 2> x, TensorView<const float, 2> w, TensorView<float, 2> y,
                         Threads threads) {
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const index_t N = x.size(0), in = x.size(1), out = w.size(0);
  const Threads useful = linattn::detail::work_threads(threads, N * in * out, linattn::detail::kMinDenseMacsPerThread);
  const int nt = linattn::detail::resolve_threads(useful, std::max<index_t>(1, out / kLinearRowAlign));
  const index_t per = (out + nt - 1) / nt;
  const index_t block = std::max<index_t>(kLinearRowAlign, (per + kLinearRowAlign - 1) / kLinearRowAlign * kLinearRowAlign);
  const index_t blocks = (out + block - 1) / block;
  linattn::detail::parallel_for(blocks, Threads{nt}, [&](index_t b) {
    const index_t r0 = b * block, rows = std::min(block, out - r0);
    const Eigen::Map<const Matrix, 0, Stride> W(w.ptr(r0), rows, in, Stride(w.stride(0)));
    const Eigen::Map<const Matrix, 0, Stride> X(x.data(), N, in, Stride(x.stride(0)));
    Eigen::Map<Matrix, 0, Stride> Y(y.data() + r0, N, rows, Stride(y.stride(0)));
    if (N == 1)
      Y.row(0).transpose().noalias() = W * X.row(0).transpose();
    else
      Y.noalias() = X * W.transpose();
  });
}

}  // namespace detail

class Linear {
 public:
  Linear() = default;
  // weight [out, in]; bias [out] or empty.
  explicit Linear(FloatTensor weight, std::vector<float> bias = {})
      : weight_(std::move(weight)), bias_(std::move(bias)) {
    constexpr const char* where = "linattn::nn::Linear";
    linattn::detail::require(weight_.shape.size() == 2, where, "the weight must be a matrix [out, in]");
    linattn::detail::require(bias_.empty() || static_cast<index_t>(bias_.size()) == out_features(), where,
                             "bias has " + std::to_string(bias_.size()) + " elements, expected " +
                                 std::to_string(out_features()));
  }
  // An owned weight [out, in] (tests, converted layouts).
  static Linear from_array(const Array<float, 2>& w, std::vector<float> bias = {}) {
    return Linear(FloatTensor::own({w.size(0), w.size(1)}, w.vector()), std::move(bias));
  }

  index_t in_features() const { return weight_.shape.empty() ? 0 : weight_.shape[1]; }
  index_t out_features() const { return weight_.shape.empty() ? 0 : weight_.shape[0]; }
  TensorView<const float, 2> weight() const { return weight_.matrix(); }
  // Throws naming the layer when the weight is not [out, in].
  void expect_shape(const char* where, const std::string& name, index_t out, index_t in) const {
    linattn::detail::require(out_features() == out && in_features() == in, where,
                             name + " is [" + std::to_string(out_features()) + ", " + std::to_string(in_features()) +
                                 "], expected [" + std::to_string(out) + ", " + std::to_string(in) + "]");
  }
  std::size_t weight_bytes() const { return static_cast<std::size_t>(weight_.numel()) * sizeof(float); }

  // x [N, in] → y [N, out]; rows of x and y may be strided (inner dimension contiguous).
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, Threads threads = {}) const {
    constexpr const char* where = "linattn::nn::Linear::forward";
    linattn::detail::require(!weight_.shape.empty(), where, "the layer is empty (default-constructed)");
    linattn::detail::check_shape(where, "x", x, {-1, in_features()});
    linattn::detail::check_shape(where, "y", y, {x.size(0), out_features()});
    linattn::detail::check_inner_contiguous(where, "x", x);
    linattn::detail::check_inner_contiguous(where, "y", y);
    if (x.size(0) == 0) return;
    detail::dense_matmul(x, weight_.matrix(), y, threads);
    if (!bias_.empty())
      for (index_t n = 0; n < y.size(0); ++n)
        for (index_t o = 0; o < out_features(); ++o) y(n, o) += bias_[static_cast<std::size_t>(o)];
  }

 private:
  FloatTensor weight_;
  std::vector<float> bias_;
};

}  // namespace linattn::nn
