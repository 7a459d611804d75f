// Argument checks that throw std::invalid_argument with a message naming the tensor,
// the shape that was expected and the shape that was given.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "linattn/core/tensor.hpp"

namespace linattn::detail {

// false, but only once T is known: `static_assert(dependent_false<T>, "...")` in the last branch
// of an `if constexpr` chain turns an unmatched combination into a compile error that reads as a
// sentence, and only when that branch is instantiated.
template <class...>
inline constexpr bool dependent_false = false;

[[noreturn]] inline void fail(std::string_view where, const std::string& what) {
  throw std::invalid_argument(std::string(where) + ": " + what);
}

inline void require(bool ok, std::string_view where, const std::string& what) {
  if (!ok) fail(where, what);
}

// Expected shape with -1 for "any"; a mismatch names both shapes.
template <class T, std::size_t R>
void check_shape(std::string_view where, std::string_view name, const TensorView<T, R>& t,
                 const Shape<R>& expected) {
  if (t.empty() && t.numel() != 0) fail(where, std::string(name) + " has no data (null pointer)");
  for (std::size_t d = 0; d < R; ++d) {
    if (t.size(d) < 0 || (expected[d] >= 0 && t.size(d) != expected[d])) {
      Shape<R> shown = expected;
      std::string exp = "[";
      for (std::size_t i = 0; i < R; ++i)
        exp += (i ? ", " : "") + (shown[i] < 0 ? std::string("*") : std::to_string(shown[i]));
      exp += "]";
      fail(where, std::string(name) + " has shape " + shape_string(t.shape()) + ", expected " + exp);
    }
  }
}

// Kernels read the innermost dimension as a contiguous vector.
template <class T, std::size_t R>
void check_inner_contiguous(std::string_view where, std::string_view name, const TensorView<T, R>& t) {
  if (t.stride(R - 1) != 1 && t.size(R - 1) > 1)
    fail(where, std::string(name) + " must have a contiguous last dimension (stride " +
                    std::to_string(t.stride(R - 1)) + " given)");
}

// Index of the first NaN or infinity in `x`, or -1. Branch-free over blocks so it vectorises
// (an exponent of all ones is NaN or infinity); the exact index is found only on a hit. The
// checkpoint reader checks every tensor with it, the weight quantiser every row.
inline index_t first_non_finite(std::span<const float> x) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t b = 0; b < x.size(); b += kBlock) {
    const std::size_t e = std::min(x.size(), b + kBlock);
    std::uint32_t any = 0;
    for (std::size_t i = b; i < e; ++i) {
      std::uint32_t u;
      std::memcpy(&u, &x[i], sizeof u);
      any |= static_cast<std::uint32_t>((u & 0x7F800000u) == 0x7F800000u);
    }
    if (any)
      for (std::size_t i = b; i < e; ++i)
        if (!std::isfinite(x[i])) return static_cast<index_t>(i);
  }
  return -1;
}

}  // namespace linattn::detail
