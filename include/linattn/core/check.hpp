// Argument checks that throw std::invalid_argument with a message naming the tensor,
// the shape that was expected and the shape that was given.
#pragma once

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

}  // namespace linattn::detail
