// Non-owning strided tensor views and a small owning array.
//
// Every kernel in linattn takes its operands as TensorView<T, R>: a pointer, a shape and
// strides counted in elements. Row-major contiguous is the default; strides let a caller
// hand in other layouts (head-first [B, H, T, D] data viewed as time-first [B, T, H, D]).
#pragma once

#include <array>
#include <optional>
#include <span>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace linattn {

using index_t = std::int64_t;

template <std::size_t R>
using Shape = std::array<index_t, R>;

template <std::size_t R>
std::string shape_string(const Shape<R>& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < R; ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

// a·b for element counts. Sizes that come from files (config values, tensor shapes) must never
// wrap into a small, plausible number: throws std::length_error naming `what` on a negative
// operand or an overflow of index_t.
constexpr index_t checked_mul(index_t a, index_t b, const char* what = "size") {
  if (a < 0 || b < 0) throw std::length_error(std::string("linattn: negative ") + what);
  if (b != 0 && a > std::numeric_limits<index_t>::max() / b)
    throw std::length_error(std::string("linattn: ") + what + " " + std::to_string(a) + " x " + std::to_string(b) +
                            " overflows a 64-bit element count");
  return a * b;
}

namespace detail {

// The product of extents, or nullopt when one is negative or the product overflows index_t
// (the one overflow-checked product that shapes from files and callers go through).
constexpr std::optional<index_t> extent_product(std::span<const index_t> extents) {
  index_t n = 1;
  for (const index_t e : extents) {
    if (e < 0 || (e != 0 && n > std::numeric_limits<index_t>::max() / e)) return std::nullopt;
    n *= e;
  }
  return n;
}

}  // namespace detail

// Number of elements of a shape; throws std::length_error on a negative extent or an overflow.
template <std::size_t R>
constexpr index_t checked_numel(const Shape<R>& shape) {
  if (const auto n = detail::extent_product(shape)) return *n;
  for (const index_t e : shape)
    if (e < 0) throw std::length_error("linattn: shape " + shape_string(shape) + " has a negative extent");
  throw std::length_error("linattn: shape " + shape_string(shape) + " overflows a 64-bit element count");
}

// Row-major strides; the products are checked (checked_numel) so a view of an absurd shape
// fails instead of wrapping.
template <std::size_t R>
constexpr Shape<R> row_major_strides(const Shape<R>& shape) {
  Shape<R> st{};
  index_t s = 1;
  bool overflow = false;
  for (std::size_t i = R; i-- > 0;) {
    st[i] = s;
    if (shape[i] > 0 && s > std::numeric_limits<index_t>::max() / shape[i]) overflow = true;
    else s *= shape[i];
  }
  if (overflow) checked_numel(shape);  // throws the message
  return st;
}

template <class T, std::size_t R>
class TensorView {
 public:
  using value_type = T;
  static constexpr std::size_t rank = R;

  constexpr TensorView() = default;
  constexpr TensorView(T* data, const Shape<R>& shape)
      : data_(data), shape_(shape), strides_(row_major_strides(shape)) {}
  constexpr TensorView(T* data, const Shape<R>& shape, const Shape<R>& strides)
      : data_(data), shape_(shape), strides_(strides) {}
  // A view of T converts to a view of const T.
  template <class U>
    requires std::is_same_v<const U, T> && (!std::is_same_v<U, T>)
  constexpr TensorView(const TensorView<U, R>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  constexpr T* data() const { return data_; }
  constexpr const Shape<R>& shape() const { return shape_; }
  constexpr const Shape<R>& strides() const { return strides_; }
  constexpr index_t size(std::size_t dim) const { return shape_[dim]; }
  constexpr index_t stride(std::size_t dim) const { return strides_[dim]; }
  constexpr bool empty() const { return data_ == nullptr; }
  constexpr index_t numel() const {
    index_t n = 1;
    for (auto s : shape_) n *= s;
    return n;
  }
  constexpr bool is_contiguous() const { return strides_ == row_major_strides(shape_); }

  template <class... I>
    requires(sizeof...(I) == R)
  constexpr T& operator()(I... idx) const {
    const index_t ix[R] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t d = 0; d < R; ++d) off += ix[d] * strides_[d];
    return data_[off];
  }
  // Pointer to the element at the given leading indices (the rest zero).
  template <class... I>
  constexpr T* ptr(I... idx) const {
    const index_t ix[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t d = 0; d < sizeof...(I); ++d) off += ix[d] * strides_[d];
    return data_ + off;
  }

 private:
  T* data_ = nullptr;
  Shape<R> shape_{};
  Shape<R> strides_{};
};

// An input of an op: a read-only view whose element type is not deduced from it, so that the
// op's T comes from its output view alone and an input of another element type fails to bind
// instead of deducing a conflicting T.
template <class T, std::size_t R>
using in = std::type_identity_t<TensorView<const T, R>>;

template <class T, std::size_t R>
TensorView(T*, const Shape<R>&) -> TensorView<T, R>;

// Owning, zero-initialised, row-major array; copy is a deep copy (a value type).
template <class T, std::size_t R>
class Array {
 public:
  Array() = default;
  explicit Array(const Shape<R>& shape) : shape_(shape), data_(static_cast<std::size_t>(count(shape))) {}
  Array(const Shape<R>& shape, std::vector<T> data) : shape_(shape), data_(std::move(data)) {
    if (static_cast<index_t>(data_.size()) != count(shape)) {
      throw std::invalid_argument("linattn::Array: " + std::to_string(data_.size()) +
                                  " values given for shape " + shape_string(shape));
    }
  }

  const Shape<R>& shape() const { return shape_; }
  index_t size(std::size_t d) const { return shape_[d]; }
  index_t numel() const { return static_cast<index_t>(data_.size()); }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  std::vector<T>& vector() { return data_; }
  const std::vector<T>& vector() const { return data_; }
  TensorView<T, R> view() { return {data_.data(), shape_}; }
  TensorView<const T, R> view() const { return {data_.data(), shape_}; }
  TensorView<const T, R> cview() const { return {data_.data(), shape_}; }
  template <class... I>
  T& operator()(I... idx) { return view()(idx...); }
  template <class... I>
  const T& operator()(I... idx) const { return view()(idx...); }
  bool operator==(const Array&) const = default;

 private:
  static index_t count(const Shape<R>& s) {
    const index_t n = checked_numel(s);
    // A vector of more than max_size() elements throws std::length_error too, but only after
    // the conversion to size_t; say which array it was.
    if (static_cast<std::uint64_t>(n) > std::vector<T>().max_size())
      throw std::length_error("linattn::Array: shape " + shape_string(s) + " is too large to allocate");
    return n;
  }
  Shape<R> shape_{};
  std::vector<T> data_;
};

}  // namespace linattn
