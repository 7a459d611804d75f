// Packed ternary weights (SPEC §7): one fp32 scale γ per tensor and the codes W_q ∈ {−1, 0, +1},
// packed row by row, each row starting on a byte boundary.
//
//   Packing::bits2  4 weights a byte, row_bytes = ⌈cols/4⌉. Weight 4j+k of a row is the 2-bit field
//                   bits [2k+1:2k] of byte j: 00 = 0, 01 = +1, 11 = −1 (2-bit two's complement, as
//                   ternip / HW-NOTES §5); 10 is reserved and rejected when reading external data.
//   Packing::base3  "1.6-bit", 5 weights a byte, row_bytes = ⌈cols/5⌉. Byte j holds weights 5j..5j+4
//                   as the base-3 number Σ_i (t_{5j+i} + 1)·3^i (first weight least significant),
//                   0..242; 243..255 are rejected.
// Padding weights (past cols in a row's last byte) are 0: field 00, or trit 0 (digit 1).
//
// A PackedWeights is quantised once (from float weights) or built from given codes and γ, and
// never re-quantised: absmean ternarisation is not idempotent (re-quantising γ·W_q gives
// γ' = γ·(fraction of non-zero codes), not γ), so the class stores codes + γ and nothing else.
// The buffer is 64-byte aligned for the SIMD kernels (ops/ternary.hpp).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/ops/ternary/quantize.hpp"

namespace linattn::ternary {

enum class Packing : std::uint8_t {
  bits2,  // 2 bits a weight: 4 a byte
  base3,  // 1.6 bits a weight: 5 trits a byte
};

constexpr int weights_per_byte(Packing p) { return p == Packing::bits2 ? 4 : 5; }
constexpr const char* packing_name(Packing p) { return p == Packing::bits2 ? "2-bit" : "base-3 (1.6-bit)"; }

namespace detail {

// 64-byte aligned storage (a cache line, one AVX-512 register).
template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  constexpr AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}  // NOLINT(google-explicit-constructor)
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Align)); }
  template <class U>
  bool operator==(const AlignedAllocator<U, Align>&) const noexcept {
    return true;
  }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

inline constexpr std::uint8_t kReserved2BitCode = 0b10;

// 2-bit field of a ternary code: 0 → 00, +1 → 01, −1 → 11.
constexpr std::uint8_t encode_2bit(int t) { return t == 0 ? 0b00 : (t > 0 ? 0b01 : 0b11); }
// Field → code; the reserved 10 decodes to 0 here (validated before it can get this far).
constexpr std::int8_t decode_2bit(unsigned field) { return field == 0b01 ? 1 : (field == 0b11 ? -1 : 0); }

// The 243-entry base-3 table: byte value → its 5 trits (first weight first).
inline constexpr int kBase3Values = 243;
inline constexpr std::uint8_t kBase3Zero = 121;  // five zero trits: Σ 1·3^i
constexpr auto make_base3_decode() {
  std::array<std::array<std::int8_t, 5>, kBase3Values> t{};
  for (int v = 0; v < kBase3Values; ++v) {
    int r = v;
    for (int i = 0; i < 5; ++i, r /= 3) t[static_cast<std::size_t>(v)][static_cast<std::size_t>(i)] =
        static_cast<std::int8_t>(r % 3 - 1);
  }
  return t;
}
inline constexpr auto kBase3Decode = make_base3_decode();

// Packs one row of `cols` codes (each in {−1, 0, 1}) into row_bytes bytes.
inline void pack_row(const std::int8_t* codes, index_t cols, Packing p, std::uint8_t* out) {
  const int P = weights_per_byte(p);
  const index_t nbytes = (cols + P - 1) / P;
  index_t j = 0;
  if (p == Packing::bits2) {
    // Whole bytes without bounds checks: for t ∈ {−1, 0, 1}, encode_2bit(t) is t's two low bits
    // (two's complement −1 = ...11), and GCC vectorises this loop (the scalar one was a large
    // part of loading a model).
    for (const index_t full = cols / 4; j < full; ++j) {
      const std::int8_t* c = codes + 4 * j;
      out[j] = static_cast<std::uint8_t>((c[0] & 3) | (c[1] & 3) << 2 | (c[2] & 3) << 4 | (c[3] & 3) << 6);
    }
  }
  for (; j < nbytes; ++j) {
    unsigned byte = 0;
    if (p == Packing::bits2) {
      for (int k = 0; k < 4; ++k) {
        const index_t c = 4 * j + k;
        byte |= static_cast<unsigned>(encode_2bit(c < cols ? codes[c] : 0)) << (2 * k);
      }
    } else {
      for (int i = 4; i >= 0; --i) {
        const index_t c = 5 * j + i;
        byte = byte * 3 + static_cast<unsigned>((c < cols ? codes[c] : 0) + 1);
      }
    }
    out[j] = static_cast<std::uint8_t>(byte);
  }
}

// Unpacks one row; returns the first invalid column (a reserved 2-bit code, a base-3 byte
// >= 243 — reported at the byte's first column — or a non-zero padding weight, reported at its
// column >= cols), or -1 when the row is valid.
inline index_t unpack_row(const std::uint8_t* in, index_t cols, Packing p, std::int8_t* codes) {
  const int P = weights_per_byte(p);
  const index_t nbytes = (cols + P - 1) / P;
  for (index_t j = 0; j < nbytes; ++j) {
    const unsigned byte = in[j];
    if (p == Packing::bits2) {
      for (int k = 0; k < 4; ++k) {
        const unsigned field = (byte >> (2 * k)) & 0b11u;
        const index_t c = 4 * j + k;
        if (field == kReserved2BitCode || (c >= cols && field != 0)) return c;
        if (c < cols) codes[c] = decode_2bit(field);
      }
    } else {
      if (byte >= kBase3Values) return 5 * j;
      const auto& t = kBase3Decode[byte];
      for (int i = 0; i < 5; ++i) {
        const index_t c = 5 * j + i;
        if (c >= cols && t[static_cast<std::size_t>(i)] != 0) return c;
        if (c < cols) codes[c] = t[static_cast<std::size_t>(i)];
      }
    }
  }
  return -1;
}

inline void check_gamma(const char* where, float gamma) {
  linattn::detail::require(std::isfinite(gamma) && gamma > 0.0f, where,
                           "gamma must be finite and > 0, got " + std::to_string(gamma));
}

}  // namespace detail

class PackedWeights {
 public:
  PackedWeights() = default;

  // Quantises float weights W [rows, cols] (SPEC §5.5: γ = max(mean|W|, 1e-5), W_q =
  // clamp(round_half_to_even(W/γ), −1, 1)) and packs them. W is not kept.
  explicit PackedWeights(TensorView<const float, 2> weight, Packing packing = Packing::bits2) {
    constexpr const char* where = "linattn::ternary::PackedWeights";
    init(where, weight.size(0), weight.size(1), absmean_gamma(weight), packing);
    std::vector<std::int8_t> row(static_cast<std::size_t>(cols_));
    for (index_t r = 0; r < rows_; ++r) {
      ternarize(TensorView<const float, 2>(weight.ptr(r), {1, cols_}, {cols_, weight.stride(1)}), gamma_,
                TensorView<std::int8_t, 2>(row.data(), {1, cols_}));
      detail::pack_row(row.data(), cols_, packing_, data_.data() + r * row_bytes_);
    }
  }

  // From ternary codes [rows, cols] ∈ {−1, 0, 1} and γ > 0 (stored as given).
  PackedWeights(TensorView<const std::int8_t, 2> codes, float gamma, Packing packing = Packing::bits2) {
    constexpr const char* where = "linattn::ternary::PackedWeights";
    linattn::detail::check_shape(where, "codes", codes, {-1, -1});
    init(where, codes.size(0), codes.size(1), gamma, packing);
    std::vector<std::int8_t> row(static_cast<std::size_t>(cols_));
    for (index_t r = 0; r < rows_; ++r) {
      for (index_t c = 0; c < cols_; ++c) {
        const int v = codes(r, c);
        if (v < -1 || v > 1)
          linattn::detail::fail(where, "code " + std::to_string(v) + " at (" + std::to_string(r) + ", " +
                                           std::to_string(c) + ") is not ternary (-1, 0 or 1)");
        row[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(v);
      }
      detail::pack_row(row.data(), cols_, packing_, data_.data() + r * row_bytes_);
    }
  }

  // From an already packed buffer of rows·⌈cols/P⌉ bytes in the layout above; every code is
  // validated (reserved 2-bit code 10, base-3 bytes >= 243, non-zero padding throw).
  static PackedWeights from_packed(index_t rows, index_t cols, float gamma, Packing packing,
                                   std::span<const std::uint8_t> bytes) {
    constexpr const char* where = "linattn::ternary::PackedWeights::from_packed";
    PackedWeights w;
    w.init(where, rows, cols, gamma, packing);
    linattn::detail::require(bytes.size() == w.bytes(), where,
                             std::to_string(bytes.size()) + " bytes given, a " + std::to_string(rows) + "x" +
                                 std::to_string(cols) + " " + packing_name(packing) + " matrix has " +
                                 std::to_string(w.bytes()) + " (" + std::to_string(w.row_bytes_) + " a row)");
    std::vector<std::int8_t> row(static_cast<std::size_t>(cols));
    for (index_t r = 0; r < rows; ++r) {
      const std::uint8_t* in = bytes.data() + r * w.row_bytes_;
      const index_t bad = detail::unpack_row(in, cols, packing, row.data());
      if (bad >= 0) {
        std::string what;
        if (packing == Packing::base3 && in[bad / 5] >= detail::kBase3Values)
          what = "byte " + std::to_string(in[bad / 5]) + " >= 243 is not a base-3 code";
        else if (packing == Packing::bits2 && ((in[bad / 4] >> (2 * (bad % 4))) & 3u) == detail::kReserved2BitCode)
          what = "reserved 2-bit code 0b10";
        else
          what = "non-zero padding weight (past column " + std::to_string(cols - 1) + ")";
        linattn::detail::fail(where, what + " at row " + std::to_string(r) + ", column " + std::to_string(bad));
      }
    }
    std::copy(bytes.begin(), bytes.end(), w.data_.begin());
    return w;
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  float gamma() const { return gamma_; }
  Packing packing() const { return packing_; }
  index_t row_bytes() const { return row_bytes_; }  // ⌈cols / weights_per_byte⌉
  std::size_t bytes() const { return static_cast<std::size_t>(rows_ * row_bytes_); }  // the packed buffer
  std::span<const std::uint8_t> data() const { return {data_.data(), bytes()}; }
  const std::uint8_t* row(index_t r) const { return data_.data() + r * row_bytes_; }

  // Codes of row r (out.size() == cols()).
  void unpack_row(index_t r, std::span<std::int8_t> out) const {
    constexpr const char* where = "linattn::ternary::PackedWeights::unpack_row";
    linattn::detail::require(r >= 0 && r < rows_, where,
                             "row " + std::to_string(r) + " out of range [0, " + std::to_string(rows_) + ")");
    linattn::detail::require(static_cast<index_t>(out.size()) == cols_, where,
                             "out has " + std::to_string(out.size()) + " elements, expected " + std::to_string(cols_));
    detail::unpack_row(row(r), cols_, packing_, out.data());
  }

  // All codes [rows, cols].
  Array<std::int8_t, 2> to_codes() const {
    Array<std::int8_t, 2> codes(Shape<2>{rows_, cols_});
    for (index_t r = 0; r < rows_; ++r) detail::unpack_row(row(r), cols_, packing_, codes.data() + r * cols_);
    return codes;
  }

  // γ·W_q [rows, cols] (the float reference path's weights).
  Array<float, 2> dequantized() const {
    const auto codes = to_codes();
    Array<float, 2> w(Shape<2>{rows_, cols_});
    for (index_t i = 0; i < codes.numel(); ++i) w.data()[i] = gamma_ * static_cast<float>(codes.data()[i]);
    return w;
  }

  // The same codes and γ in another packing.
  PackedWeights repacked(Packing packing) const {
    if (packing == packing_) return *this;
    return PackedWeights(to_codes().cview(), gamma_, packing);
  }

  friend bool operator==(const PackedWeights&, const PackedWeights&) = default;

 private:
  void init(const char* where, index_t rows, index_t cols, float gamma, Packing packing) {
    linattn::detail::require(rows > 0 && cols > 0, where,
                             "the weight matrix must have at least one row and one column, got " +
                                 std::to_string(rows) + "x" + std::to_string(cols));
    detail::check_gamma(where, gamma);
    linattn::detail::require(packing == Packing::bits2 || packing == Packing::base3, where, "unknown packing");
    rows_ = rows;
    cols_ = cols;
    gamma_ = gamma;
    packing_ = packing;
    row_bytes_ = (cols + weights_per_byte(packing) - 1) / weights_per_byte(packing);
    data_.assign(static_cast<std::size_t>(rows * row_bytes_), 0);
  }

  index_t rows_ = 0, cols_ = 0;
  float gamma_ = 0.0f;
  Packing packing_ = Packing::bits2;
  index_t row_bytes_ = 0;
  detail::AlignedVector<std::uint8_t> data_;  // [rows, row_bytes]
};

}  // namespace linattn::ternary
