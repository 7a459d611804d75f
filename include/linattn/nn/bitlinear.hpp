// BitLinear, the ternary projection of MatMul-free LM (SPEC §5.5; mmfreelm FusedBitLinear):
//
//   y = BitLinear(x) = ((x_q / s_x) · (γ·W_q)ᵀ)     x̂ = RMSNorm(x) ⊙ w_n,  x_q, s_x = absmax int8(x̂)
//
// computed as the integer product acc = x_q · W_qᵀ (ops/ternary.hpp) and one float multiply per
// output, y = acc · γ/s_x. The latent float weight is quantised once at construction (γ and the
// packed codes are kept, never re-derived); the RMSNorm weight stays fp32; no bias.
// forward_reference() is the float path (dequantised weights, Eigen) the tests compare with.
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/nn/linear.hpp"
#include "linattn/nn/options.hpp"
#include "linattn/ops/ternary.hpp"

namespace linattn::nn {

struct BitLinearOptions {
  // RMSNorm epsilon. SPEC §5.5/§8 item 7: the fused path every HGRNBit model runs uses 1e-6,
  // whatever the module's norm.eps (1e-8, ternary::kUnfusedBitLinearEps) says.
  float eps = ternary::kFusedBitLinearEps;
  ternary::Packing packing = ternary::Packing::bits2;
  ternary::Options kernel;  // threads and backend of the integer kernel
};

// Intermediates of one forward pass.
struct BitLinearTrace {
  Array<float, 2> x_norm;           // [N, in]  RMSNorm(x) ⊙ w_n
  Array<std::int8_t, 2> act_codes;  // [N, in]
  std::vector<float> act_scale;     // [N]      s_x = 127 / max(max|x̂|, 1e-5)
};

class BitLinear {
 public:
  BitLinear() = default;

  // weight [out, in]: latent float weights, quantised here (absmean ternary, SPEC §5.5);
  // norm_weight [in].
  BitLinear(TensorView<const float, 2> weight, std::span<const float> norm_weight, const BitLinearOptions& opt = {})
      : BitLinear(ternary::PackedWeights(weight, opt.packing), std::vector<float>(norm_weight.begin(), norm_weight.end()),
                  opt) {}

  // Already quantised weights (kept in their own packing; opt.packing is ignored).
  BitLinear(ternary::PackedWeights weight, std::vector<float> norm_weight, const BitLinearOptions& opt = {})
      : weight_(std::move(weight)), norm_weight_(std::move(norm_weight)), opt_(opt) {
    constexpr const char* where = "linattn::nn::BitLinear";
    linattn::detail::require(weight_.rows() > 0, where, "the weights are empty");
    linattn::detail::require(static_cast<index_t>(norm_weight_.size()) == weight_.cols(), where,
                             "norm_weight has " + std::to_string(norm_weight_.size()) +
                                 " elements, the weight has in_features = " + std::to_string(weight_.cols()));
    linattn::detail::require(std::isfinite(opt_.eps) && opt_.eps >= 0.0f, where,
                             "eps must be finite and >= 0, got " + std::to_string(opt_.eps));
    opt_.packing = weight_.packing();
  }

  index_t in_features() const { return weight_.cols(); }
  index_t out_features() const { return weight_.rows(); }
  const ternary::PackedWeights& weight() const { return weight_; }
  std::span<const float> norm_weight() const { return norm_weight_; }
  const BitLinearOptions& options() const { return opt_; }
  // Bytes a forward pass reads: the packed codes, γ and the RMSNorm weight.
  std::size_t weight_bytes() const { return weight_.bytes() + sizeof(float) + norm_weight_.size() * sizeof(float); }

  // Keeps the dequantised float weights γ·W_q [out, in] for forward_reference: the dense float
  // path the benchmarks compare with (16× the packed memory). Without it, forward_reference
  // dequantises on every call.
  void keep_dense_weights() { dense_ = std::make_shared<const Array<float, 2>>(weight_.dequantized()); }

  // x [N, in] → y [N, out] through the integer kernel. With a trace, also returns x̂, x_q, s_x.
  // Threads: those the layer was built with (options().kernel), or the ones given.
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, BitLinearTrace* trace = nullptr) const {
    forward(x, y, opt_.kernel.threads, trace);
  }
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, Threads threads,
               BitLinearTrace* trace = nullptr) const {
    constexpr const char* where = "linattn::nn::BitLinear::forward";
    check(where, x, y);
    const index_t N = x.size(0);
    ternary::Options kernel = opt_.kernel;
    kernel.threads = threads;
    Array<float, 2> local;
    Array<float, 2>& xn = trace ? trace->x_norm : local;
    xn = Array<float, 2>(Shape<2>{N, in_features()});
    ternary::rms_norm(x, norm_weight_, opt_.eps, xn.view(), threads);
    if (!trace) {
      ternary::linear(weight_, xn.cview(), y, kernel);
      return;
    }
    quantize(*trace);
    Array<std::int32_t, 2> acc(Shape<2>{N, out_features()});
    ternary::matmul(weight_, trace->act_codes.cview(), acc.view(), kernel);
    for (index_t n = 0; n < N; ++n) {  // as ternary::linear: one float multiply per output
      const float factor = weight_.gamma() / trace->act_scale[static_cast<std::size_t>(n)];
      for (index_t o = 0; o < out_features(); ++o) y(n, o) = static_cast<float>(acc(n, o)) * factor;
    }
  }

  Array<float, 2> forward(TensorView<const float, 2> x) const {
    Array<float, 2> y(Shape<2>{x.size(0), out_features()});
    forward(x, y.view());
    return y;
  }

  // The integer kernel or the float path, as a model's RunOptions choose.
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, Arithmetic arithmetic, Threads threads) const {
    if (arithmetic == Arithmetic::integer)
      forward(x, y, threads);
    else
      forward_reference(x, y, threads);
  }

  // The float path: y = (x_q / s_x) · (γ·W_q)ᵀ with Eigen, from the same x̂, x_q, s_x.
  void forward_reference(TensorView<const float, 2> x, TensorView<float, 2> y, BitLinearTrace* trace = nullptr) const {
    forward_reference(x, y, opt_.kernel.threads, trace);
  }
  void forward_reference(TensorView<const float, 2> x, TensorView<float, 2> y, Threads threads,
                         BitLinearTrace* trace = nullptr) const {
    constexpr const char* where = "linattn::nn::BitLinear::forward_reference";
    check(where, x, y);
    const index_t N = x.size(0), in = in_features(), out = out_features();
    BitLinearTrace local;
    BitLinearTrace& t = trace ? *trace : local;
    t.x_norm = Array<float, 2>(Shape<2>{N, in});
    ternary::rms_norm(x, norm_weight_, opt_.eps, t.x_norm.view(), threads);
    quantize(t);
    Array<float, 2> xd(Shape<2>{N, in});  // x_q / s_x
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < in; ++j)
        xd(n, j) = static_cast<float>(t.act_codes(n, j)) / t.act_scale[static_cast<std::size_t>(n)];
    std::shared_ptr<const Array<float, 2>> wd = dense_;  // [out, in] γ·W_q
    if (!wd) wd = std::make_shared<const Array<float, 2>>(weight_.dequantized());
    (void)out;
    detail::dense_matmul(xd.cview(), wd->cview(), y, threads);
  }

 private:
  void check(const char* where, const TensorView<const float, 2>& x, const TensorView<float, 2>& y) const {
    linattn::detail::require(weight_.rows() > 0, where, "the layer is empty (default-constructed)");
    linattn::detail::check_shape(where, "x", x, {-1, in_features()});
    linattn::detail::check_shape(where, "y", y, {x.size(0), out_features()});
    linattn::detail::check_inner_contiguous(where, "x", x);
    linattn::detail::check_inner_contiguous(where, "y", y);
  }

  // x_norm → act_codes, act_scale (the fused path's rounding, half away from zero).
  static void quantize(BitLinearTrace& t) {
    const index_t N = t.x_norm.size(0), in = t.x_norm.size(1);
    t.act_codes = Array<std::int8_t, 2>(Shape<2>{N, in});
    t.act_scale.assign(static_cast<std::size_t>(N), 0.0f);
    ternary::quantize_activations(t.x_norm.cview(), t.act_codes.view(), t.act_scale);
  }

  ternary::PackedWeights weight_;
  std::vector<float> norm_weight_;  // [in]
  std::shared_ptr<const Array<float, 2>> dense_;  // keep_dense_weights()
  BitLinearOptions opt_;
};

}  // namespace linattn::nn
