// Element-wise activations named as in Hugging Face's ACT2FN (the `feature_map` and
// `hidden_act` config values), plus logsigmoid for the gates.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"

namespace linattn::nn {

enum class Activation { identity, relu, silu, sigmoid, tanh, gelu, elu };

// ACT2FN name → Activation; "swish" is silu. Unknown names throw, listing the supported ones.
inline Activation activation_from_name(std::string_view name) {
  if (name == "identity" || name == "linear") return Activation::identity;
  if (name == "relu") return Activation::relu;
  if (name == "silu" || name == "swish") return Activation::silu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "gelu") return Activation::gelu;
  if (name == "elu") return Activation::elu;
  throw std::invalid_argument("linattn: unknown activation \"" + std::string(name) +
                              "\" (supported: identity, relu, silu/swish, sigmoid, tanh, gelu, elu)");
}

inline float activate(Activation a, float x) {
  switch (a) {
    case Activation::identity: return x;
    case Activation::relu: return x > 0.0f ? x : 0.0f;
    case Activation::silu: return silu(x);
    case Activation::sigmoid: return sigmoid(x);
    case Activation::tanh: return std::tanh(x);
    case Activation::gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));  // exact (erf) GELU
    case Activation::elu: return x > 0.0f ? x : std::expm1(x);                                // alpha = 1
  }
  return x;
}

inline void activate(Activation a, float* x, index_t n) {
  if (a == Activation::identity) return;
  if (a == Activation::silu) return linattn::detail::silu_inplace(x, n);
  if (a == Activation::sigmoid) return linattn::detail::sigmoid_inplace(x, n);
  for (index_t i = 0; i < n; ++i) x[i] = activate(a, x[i]);
}

// log σ(x) = −softplus(−x) = min(x, 0) − log1p(e^{−|x|}), finite for every finite x.
inline float logsigmoid(float x) { return std::fmin(x, 0.0f) - std::log1p(std::exp(-std::fabs(x))); }

}  // namespace linattn::nn
