// BitLinear for training (SPEC §9.6): the latent float weight is what the optimiser updates,
// so it is kept, and the ternary codes and γ are re-derived from it at every forward, exactly
// as upstream trains; the packed nn::BitLinear is the inference form of the trained weight.
//
//   forward   x̂ = RMSNorm(x) ⊙ w_n (eps),  y = Q_a(x̂) · Q_w(W)ᵀ   (Q_a: per-row absmax int8,
//                                                                   Q_w: absmean ternary, γ·W_q)
//   backward  straight-through: the quantisers are identities, no gradient through γ or s_x:
//             dx̂ = dy · Q_w(W),  dW = dyᵀ · Q_a(x̂),  dw_n = Σ_rows dx̂ ⊙ n,
//             dx = r ⊙ (dx̂ ⊙ w_n − n · mean(n ⊙ dx̂ ⊙ w_n)),  r = (mean x² + eps)^-1/2, n = x·r.
//
// The weight is kept between forward and backward as its int8 ternary codes and γ (out·in
// bytes, not 4·out·in), and both products with Q_w(W) read those codes (detail::ternary_times /
// ternary_transposed_times): with a few tokens, streaming the codes (1 byte a weight) is the
// whole cost; with many, blocks of 32 weight rows are expanded to float in L2 and multiplied
// by Eigen's GEMM. dW = dyᵀ · Q_a(x̂) is a float GEMM: dy is not quantised (upstream does not).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/ops/ternary/quantize.hpp"

namespace linattn::nn {

struct TrainableBitLinearOptions {
  float eps = ternary::kFusedBitLinearEps;                               // RMSNorm epsilon
  ternary::Rounding activation_rounding = ternary::Rounding::half_away_from_zero;  // fused path
  ternary::Rounding weight_rounding = ternary::Rounding::half_to_even;
};

// What the backward needs from its forward: 8·N·in + 4·N bytes of activations and out·in + 4
// of weight codes (for 128 tokens at 2048 → 5632: 2.1 MB + 11.5 MB).
struct BitLinearSaved {
  Array<float, 2> n;              // [N, in]   x · r
  std::vector<float> r;           // [N]       (mean x² + eps)^-1/2
  Array<float, 2> x_deq;          // [N, in]   Q_a(x̂) = codes / s_x
  Array<std::int8_t, 2> w_codes;  // [out, in] W_q ∈ {-1, 0, 1}
  float w_scale = 0;              // γ
};

namespace detail {

// Tokens up to which the products stream the int8 codes directly; above it they expand blocks
// of kExpandRows weight rows (32 × 2048 floats = 256 KiB, an L2's share) and call Eigen's GEMM.
// Measured (Zen 5, 2048 → 5632, one thread): the streaming kernel is memory-bound at 1 token
// and loses to the blocked GEMM from ~8 tokens on.
inline constexpr index_t kStreamTokens = 4;
inline constexpr index_t kExpandRows = 128;

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows [o0, o0 + rows) of γ·W_q as floats.
inline void expand_rows(const Array<std::int8_t, 2>& codes, float gamma, index_t o0, index_t rows, RowMat& block) {
  const index_t in = codes.size(1);
  block.resize(rows, in);
  const std::int8_t* c = codes.data() + o0 * in;
  float* b = block.data();
  for (index_t i = 0; i < rows * in; ++i) b[i] = gamma * static_cast<float>(c[i]);
}

// Y [N, out] = X [N, in] · (γ W_q)ᵀ.
inline void ternary_times(const Eigen::Ref<const RowMat>& X, const Array<std::int8_t, 2>& codes, float gamma,
                          Eigen::Ref<RowMat, 0, Eigen::OuterStride<>> Y) {
  const index_t N = X.rows(), out = codes.size(0), in = codes.size(1);
  if (N <= kStreamTokens) {
    for (index_t o = 0; o < out; ++o) {
      const std::int8_t* w = codes.data() + o * in;
      for (index_t n = 0; n < N; ++n) {
        const float* x = X.row(n).data();
        float part[16] = {};  // lane-parallel partial sums (a running sum is a serial chain)
        index_t i = 0;
        for (; i + 16 <= in; i += 16)
          for (index_t l = 0; l < 16; ++l) part[l] += x[i + l] * static_cast<float>(w[i + l]);
        float sum = 0;
        for (; i < in; ++i) sum += x[i] * static_cast<float>(w[i]);
        for (const float p : part) sum += p;
        Y(n, o) = gamma * sum;
      }
    }
    return;
  }
  RowMat block;
  for (index_t o0 = 0; o0 < out; o0 += kExpandRows) {
    const index_t rows = std::min(kExpandRows, out - o0);
    expand_rows(codes, gamma, o0, rows, block);
    Y.middleCols(o0, rows).noalias() = X * block.transpose();
  }
}

// dX [N, in] = dY [N, out] · (γ W_q), the transposed product.
inline void ternary_transposed_times(const Eigen::Ref<const RowMat, 0, Eigen::OuterStride<>>& dY,
                                     const Array<std::int8_t, 2>& codes, float gamma, RowMat& dX) {
  const index_t N = dY.rows(), out = codes.size(0), in = codes.size(1);
  dX.setZero(N, in);
  if (N <= kStreamTokens) {
    for (index_t o = 0; o < out; ++o) {
      const std::int8_t* w = codes.data() + o * in;
      for (index_t n = 0; n < N; ++n) {
        const float c = gamma * dY(n, o);
        if (c == 0.0f) continue;
        float* d = dX.row(n).data();
        for (index_t i = 0; i < in; ++i) d[i] += c * static_cast<float>(w[i]);
      }
    }
    return;
  }
  RowMat block;
  for (index_t o0 = 0; o0 < out; o0 += kExpandRows) {
    const index_t rows = std::min(kExpandRows, out - o0);
    expand_rows(codes, gamma, o0, rows, block);
    dX.noalias() += dY.middleCols(o0, rows) * block;
  }
}

}  // namespace detail

struct BitLinearGradients {
  Array<float, 2> dx;           // [N, in]
  Array<float, 2> dweight;      // [out, in]
  std::vector<float> dnorm_weight;  // [in]
};

class TrainableBitLinear {
 public:
  TrainableBitLinear() = default;
  // weight [out, in] latent; norm_weight [in].
  TrainableBitLinear(Array<float, 2> weight, std::vector<float> norm_weight, const TrainableBitLinearOptions& opt = {})
      : weight_(std::move(weight)), norm_weight_(std::move(norm_weight)), opt_(opt) {
    constexpr const char* where = "linattn::nn::TrainableBitLinear";
    linattn::detail::require(weight_.size(0) > 0 && weight_.size(1) > 0, where, "the weight is empty");
    linattn::detail::require(static_cast<index_t>(norm_weight_.size()) == weight_.size(1), where,
                             "norm_weight has " + std::to_string(norm_weight_.size()) + " elements, expected " +
                                 std::to_string(weight_.size(1)));
    linattn::detail::require(std::isfinite(opt_.eps) && opt_.eps >= 0.0f, where, "eps must be finite and >= 0");
  }

  index_t in_features() const { return weight_.size(1); }
  index_t out_features() const { return weight_.size(0); }
  Array<float, 2>& weight() { return weight_; }  // the optimiser's parameters
  const Array<float, 2>& weight() const { return weight_; }
  std::vector<float>& norm_weight() { return norm_weight_; }
  const std::vector<float>& norm_weight() const { return norm_weight_; }

  // x [N, in] → y [N, out]; `saved`, when given, receives what backward() needs.
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, BitLinearSaved* saved = nullptr) const {
    constexpr const char* where = "linattn::nn::TrainableBitLinear::forward";
    const index_t N = x.size(0), in = in_features(), out = out_features();
    linattn::detail::check_shape(where, "x", x, {-1, in});
    linattn::detail::check_shape(where, "y", y, {N, out});
    linattn::detail::check_inner_contiguous(where, "x", x);
    linattn::detail::check_inner_contiguous(where, "y", y);
    BitLinearSaved local;
    BitLinearSaved& s = saved ? *saved : local;
    s.n = Array<float, 2>(Shape<2>{N, in});
    s.r.assign(static_cast<std::size_t>(N), 0.0f);
    Array<float, 2> x_hat(Shape<2>{N, in});  // [N, in]
    for (index_t i = 0; i < N; ++i) {
      const float* xi = x.ptr(i);
      double sq = 0;
      for (index_t j = 0; j < in; ++j) sq += static_cast<double>(xi[j]) * xi[j];
      // As rms_norm (core/norm.hpp): the mean square and eps in double, rstd rounded once.
      const float r = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(in) + static_cast<double>(opt_.eps)));
      s.r[static_cast<std::size_t>(i)] = r;
      for (index_t j = 0; j < in; ++j) {
        s.n(i, j) = xi[j] * r;
        x_hat(i, j) = s.n(i, j) * norm_weight_[static_cast<std::size_t>(j)];
      }
    }
    Array<std::int8_t, 2> codes(Shape<2>{N, in});  // [N, in]
    std::vector<float> scale(static_cast<std::size_t>(N));
    ternary::quantize_activations(x_hat.cview(), codes.view(), scale, opt_.activation_rounding);
    s.x_deq = Array<float, 2>(Shape<2>{N, in});
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < in; ++j) s.x_deq(i, j) = static_cast<float>(codes(i, j)) / scale[static_cast<std::size_t>(i)];
    s.w_scale = ternary::absmean_gamma(weight_.cview());
    if (s.w_codes.shape() != weight_.shape()) s.w_codes = Array<std::int8_t, 2>(weight_.shape());
    ternary::ternarize(weight_.cview(), s.w_scale, s.w_codes.view(), opt_.weight_rounding);
    using Mat = detail::RowMat;
    const Eigen::Map<const Mat> X(s.x_deq.data(), N, in);
    Eigen::Map<Mat, 0, Eigen::OuterStride<>> Y(y.data(), N, out, Eigen::OuterStride<>(y.stride(0)));
    detail::ternary_times(X, s.w_codes, s.w_scale, Y);
  }

  // dy [N, out] → dx [N, in], dW [out, in], dw_n [in] (overwritten), from the forward's `saved`.
  void backward(const BitLinearSaved& saved, TensorView<const float, 2> dy, BitLinearGradients& grads) const {
    constexpr const char* where = "linattn::nn::TrainableBitLinear::backward";
    const index_t N = saved.n.size(0), in = in_features(), out = out_features();
    linattn::detail::require(saved.n.shape() == Shape<2>{N, in} && saved.w_codes.shape() == weight_.shape(), where,
                             "saved values are not from a forward of this layer");
    linattn::detail::check_shape(where, "dy", dy, {N, out});
    linattn::detail::check_inner_contiguous(where, "dy", dy);
    using Mat = detail::RowMat;
    const Eigen::Map<const Mat, 0, Eigen::OuterStride<>> DY(dy.data(), N, out, Eigen::OuterStride<>(dy.stride(0)));
    const Eigen::Map<const Mat> X(saved.x_deq.data(), N, in);
    Mat dx_hat;  // [N, in]
    detail::ternary_transposed_times(DY, saved.w_codes, saved.w_scale, dx_hat);
    // The gradient buffers are reused across calls of the same shape: a fresh [out, in] array
    // is zero-filled and page-faulted in on every step (measured: 88% of a one-token backward
    // at 2048 → 5632 on Zen 5, 174 ms against 15 ms reused).
    if (grads.dweight.shape() != weight_.shape()) grads.dweight = Array<float, 2>(weight_.shape());
    Eigen::Map<Mat>(grads.dweight.data(), out, in).noalias() = DY.transpose() * X;
    grads.dnorm_weight.assign(static_cast<std::size_t>(in), 0.0f);
    if (grads.dx.shape() != Shape<2>{N, in}) grads.dx = Array<float, 2>(Shape<2>{N, in});
    for (index_t i = 0; i < N; ++i) {
      double mean = 0;
      for (index_t j = 0; j < in; ++j) {
        const float g = dx_hat(i, j) * norm_weight_[static_cast<std::size_t>(j)];
        grads.dnorm_weight[static_cast<std::size_t>(j)] += dx_hat(i, j) * saved.n(i, j);
        mean += static_cast<double>(saved.n(i, j)) * g;
      }
      const float m = static_cast<float>(mean / static_cast<double>(in)), r = saved.r[static_cast<std::size_t>(i)];
      for (index_t j = 0; j < in; ++j)
        grads.dx(i, j) = r * (dx_hat(i, j) * norm_weight_[static_cast<std::size_t>(j)] - saved.n(i, j) * m);
    }
  }

 private:
  Array<float, 2> weight_;          // [out, in] latent
  std::vector<float> norm_weight_;  // [in]
  TrainableBitLinearOptions opt_;
};

}  // namespace linattn::nn
