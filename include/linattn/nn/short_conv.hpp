// ShortConvolution (SPEC §5.0; fla's depthwise causal convolution with SiLU):
//
//   y_t[d] = silu(Σ_{w<W} weight[d][w] · x_{t−W+1+w}[d] + bias[d])
//
//   x, y [T, C] (one sequence)   weight [C, 1, W] (checkpoint layout)   cache [C, W]
//
// The cache holds the last W raw inputs, oldest first (fla's layout, SPEC §8.14): inputs before
// the sequence start are read from it (zeros for a fresh cache), and it is left holding the last
// W inputs, so a prefill followed by T = 1 calls is the same computation as one pass.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/float_tensor.hpp"

namespace linattn::nn {

class ShortConvolution {
 public:
  ShortConvolution() = default;
  // weight [C, 1, W] or [C, W]; bias [C] or empty.
  ShortConvolution(const FloatTensor& weight, std::vector<float> bias = {}) : bias_(std::move(bias)) {
    constexpr const char* where = "linattn::nn::ShortConvolution";
    const auto& s = weight.shape;
    linattn::detail::require((s.size() == 3 && s[1] == 1) || s.size() == 2, where,
                             "weight must be [channels, 1, width] or [channels, width]");
    channels_ = s[0];
    width_ = s.back();
    linattn::detail::require(channels_ > 0 && width_ > 0, where, "empty weight");
    linattn::detail::require(bias_.empty() || static_cast<index_t>(bias_.size()) == channels_, where,
                             "bias has " + std::to_string(bias_.size()) + " elements, expected " + std::to_string(channels_));
    taps_.resize(static_cast<std::size_t>(channels_ * width_));  // [W, C]: the inner loop runs over channels
    for (index_t c = 0; c < channels_; ++c)
      for (index_t w = 0; w < width_; ++w) taps_[static_cast<std::size_t>(w * channels_ + c)] = weight.data[c * width_ + w];
  }

  index_t channels() const { return channels_; }
  index_t width() const { return width_; }
  Array<float, 2> initial_cache() const { return Array<float, 2>(Shape<2>{channels_, width_}); }

  // One sequence; x and y may be the same rows (the input is buffered first).
  void forward(TensorView<const float, 2> x, TensorView<float, 2> y, Array<float, 2>& cache) const {
    constexpr const char* where = "linattn::nn::ShortConvolution::forward";
    const index_t T = x.size(0), C = channels_, W = width_;
    linattn::detail::check_shape(where, "x", x, {-1, C});
    linattn::detail::check_shape(where, "y", y, {T, C});
    linattn::detail::check_inner_contiguous(where, "x", x);
    linattn::detail::check_inner_contiguous(where, "y", y);
    if (cache.shape() != Shape<2>{C, W})
      linattn::detail::fail(where, "cache has shape " + shape_string(cache.shape()) + ", expected " +
                                       shape_string(Shape<2>{C, W}));
    // Time-major window: W−1 cached inputs, then x.
    const index_t P = W - 1;
    std::vector<float> buf(static_cast<std::size_t>((P + T) * C));
    for (index_t j = 0; j < P; ++j)
      for (index_t c = 0; c < C; ++c) buf[static_cast<std::size_t>(j * C + c)] = cache(c, j + 1);
    for (index_t t = 0; t < T; ++t) std::copy(x.ptr(t), x.ptr(t) + C, buf.begin() + (P + t) * C);
    std::vector<float> acc(static_cast<std::size_t>(C));
    for (index_t t = 0; t < T; ++t) {
      if (bias_.empty())
        std::fill(acc.begin(), acc.end(), 0.0f);
      else
        std::copy(bias_.begin(), bias_.end(), acc.begin());
      for (index_t w = 0; w < W; ++w) {
        const float* tap = taps_.data() + w * C;
        const float* in = buf.data() + (t + w) * C;
        for (index_t c = 0; c < C; ++c) acc[static_cast<std::size_t>(c)] += tap[c] * in[c];
      }
      linattn::detail::silu_inplace(acc.data(), C);
      std::copy(acc.begin(), acc.end(), y.ptr(t));
    }
    // The last W inputs: the window's tail, preceded by what the cache held when T < W.
    for (index_t w = 0; w < W; ++w) {
      const index_t j = P + T - W + w;  // index into buf; −1 means the cache's oldest column survives
      for (index_t c = 0; c < C; ++c)
        cache(c, w) = j >= 0 ? buf[static_cast<std::size_t>(j * C + c)] : cache(c, w + T);
    }
  }

 private:
  index_t channels_ = 0, width_ = 0;
  std::vector<float> taps_;  // [W, C]
  std::vector<float> bias_;
};

}  // namespace linattn::nn
