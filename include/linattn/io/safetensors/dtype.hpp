// safetensors element types (io/safetensors.hpp): the dtype enum, sizes and header spellings, the
// dtype a C++ type is stored as, and the exact half-precision bit conversions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "linattn/core/tensor.hpp"

namespace linattn::io {

// safetensors data is little-endian; converting on a big-endian host is not implemented.
static_assert(std::endian::native == std::endian::little,
              "linattn::io::safetensors assumes a little-endian host");

class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DType : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

// Element size in bytes.
constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

// The spelling used in the header ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U64: return "U64";
    case DType::U32: return "U32";
    case DType::U16: return "U16";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

constexpr std::optional<DType> parse_dtype(std::string_view s) {
  constexpr DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                           DType::I32, DType::I16, DType::I8,  DType::U64,  DType::U32,
                           DType::U16, DType::U8,  DType::BOOL};
  for (DType d : all)
    if (dtype_name(d) == s) return d;
  return std::nullopt;
}

constexpr bool is_float_dtype(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

// The dtype a C++ element type is stored as. Keyed on size/signedness rather than on the exact
// type so that long and long long (both 64-bit on LP64) map alike.
template <class T>
constexpr DType dtype_of() {
  using U = std::remove_cv_t<T>;
  static_assert(std::is_arithmetic_v<U>, "dtype_of: arithmetic type required");
  if constexpr (std::is_same_v<U, bool>) {
    return DType::BOOL;
  } else if constexpr (std::is_floating_point_v<U>) {
    static_assert(sizeof(U) == 4 || sizeof(U) == 8, "dtype_of: only float and double are stored");
    return sizeof(U) == 4 ? DType::F32 : DType::F64;
  } else {
    static_assert(sizeof(U) <= 8);
    if constexpr (std::is_signed_v<U>) {
      return sizeof(U) == 1 ? DType::I8 : sizeof(U) == 2 ? DType::I16 : sizeof(U) == 4 ? DType::I32 : DType::I64;
    } else {
      return sizeof(U) == 1 ? DType::U8 : sizeof(U) == 2 ? DType::U16 : sizeof(U) == 4 ? DType::U32 : DType::U64;
    }
  }
}

// ---- half-precision bit conversions --------------------------------------------------------
// Done by hand because C++20 has no portable half type (std::float16_t is C++23 and optional).

// bf16 is the upper half of a binary32, so widening is a shift: exact for every value
// (subnormals, infinities, NaN payloads included).
constexpr float bf16_bits_to_float(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

// IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits) to binary32; exact for every value.
constexpr float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t man = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {  // inf / NaN: keep the payload so NaN stays NaN
    bits = sign | 0x7F800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;  // +-0
    } else {
      // Subnormal: value = man * 2^-24. binary32 can represent it as a normal number; shift the
      // mantissa up until its leading one reaches the implicit-bit position (bit 10).
      int e = -14;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        --e;
      }
      man &= 0x3FFu;
      bits = sign | (static_cast<std::uint32_t>(e + 127) << 23) | (man << 13);
    }
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

// binary32 -> bf16, round to nearest even; NaN stays a (quiet) NaN.
constexpr std::uint16_t float_to_bf16_bits(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  const std::uint32_t rounding = 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

// binary32 -> binary16, round to nearest even; overflow gives inf, tiny values give
// subnormals or signed zero; NaN stays a (quiet) NaN.
constexpr std::uint16_t float_to_f16_bits(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t a = x & 0x7FFFFFFFu;
  if (a >= 0x7F800000u)  // inf / NaN
    return static_cast<std::uint16_t>(sign | 0x7C00u | (a > 0x7F800000u ? (0x200u | ((a >> 13) & 0x3FFu)) : 0u));
  if (a >= 0x477FF000u)  // >= 65520 = halfway between 65504 (max half) and 2^16: ties-to-even gives inf
    return static_cast<std::uint16_t>(sign | 0x7C00u);
  if (a < 0x38800000u) {  // below 2^-14, the smallest normal half: result is subnormal or zero
    const std::uint32_t e = a >> 23;
    if (e < 102) return static_cast<std::uint16_t>(sign);  // < 2^-25: rounds to zero
    const std::uint32_t m = (a & 0x7FFFFFu) | 0x800000u;  // value = m * 2^(e-150)
    const std::uint32_t shift = 126 - e;                   // result = value / 2^-24 = m >> shift
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // may carry into the smallest normal: still correct
    return static_cast<std::uint16_t>(sign | r);
  }
  const std::uint32_t e = (a >> 23) - 127 + 15;
  const std::uint32_t m = a & 0x7FFFFFu;
  std::uint32_t r = (e << 10) | (m >> 13);
  const std::uint32_t rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is correct rounding
  return static_cast<std::uint16_t>(sign | r);
}

}  // namespace linattn::io
