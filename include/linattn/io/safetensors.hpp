// Reading and writing safetensors files (https://github.com/huggingface/safetensors).
//
// Layout of a file:
//   [8 bytes]  N, little-endian u64: length of the JSON header
//   [N bytes]  JSON object: name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//              plus an optional "__metadata__": {string: string}
//   [rest]     data section; a tensor's bytes are data[begin, end), row-major, little-endian
//
// SafeTensorsFile memory-maps the file and validates the whole header up front, so that every
// later accessor can trust the offsets: a malformed or truncated file fails in the constructor
// with FormatError, never with an out-of-bounds read later on. The golden reference data of this
// project is stored in this format (see tests/data/GOLDEN-README.md).
//
// Error policy:
//   * the file cannot be opened / mapped          -> std::system_error (a std::runtime_error),
//                                                    message names the path and the errno text
//   * anything wrong with the file's contents,
//     or a read that does not fit the tensor      -> linattn::io::FormatError (a std::runtime_error)
//     (unsupported conversion, wrong rank/shape,
//     value out of the target type's range)
//   * no tensor of that name                      -> std::out_of_range
//   * misuse of SafeTensorsWriter                 -> std::invalid_argument
//   * writer cannot write the output file         -> std::system_error
// Every message starts with "linattn::io: <path>:" and names the tensor where one is involved.
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

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

// One tensor of an open file. `bytes` points into the file's mapping: it stays valid as long as
// the SafeTensorsFile it came from (or the object it was moved into) is alive.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<index_t> shape;        // empty for a scalar
  std::span<const std::byte> bytes;  // exactly numel() * dtype_size(dtype) bytes, possibly unaligned

  index_t numel() const {
    index_t n = 1;
    for (index_t s : shape) n *= s;
    return n;
  }
  std::size_t rank() const { return shape.size(); }
};

namespace detail {

inline std::string shape_str(const std::vector<index_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

inline std::string prefix(const std::string& path) { return "linattn::io: " + path + ": "; }

[[noreturn]] inline void format_fail(const std::string& path, const std::string& what) {
  throw FormatError(prefix(path) + what);
}

[[noreturn]] inline void tensor_fail(const std::string& path, const std::string& tensor, const std::string& what) {
  throw FormatError(prefix(path) + "tensor '" + tensor + "': " + what);
}

// Header larger than this is treated as corrupt (the reference implementation uses the same cap):
// it protects against a garbage length making us parse hundreds of megabytes.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// JSON nesting a header or config may have. Real ones nest 3 levels; a 10⁶-deep array in a 2 MB
// file would otherwise exhaust the stack in nlohmann's recursive copy, dump and destruction.
inline constexpr int kMaxJsonDepth = 64;

// Parses JSON text (a config, a shard index, a metadata value) into a DOM. Nesting is limited to
// kMaxJsonDepth, and a key given twice in one object is an error (nlohmann would keep one of the
// two silently). `fail(what)` must throw; `what` reads "is not valid JSON: ...", "nests deeper
// than ...", "has a duplicate key ...".
template <class Fail>
nlohmann::json parse_json(std::string_view text, const Fail& fail) {
  // nlohmann's lexer takes a NUL byte as end of input; a raw NUL is never valid JSON.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    fail("is not valid JSON: NUL byte at offset " + std::to_string(nul));
  std::vector<std::set<std::string>> open_objects;  // keys of every open object, outermost first
  const nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t ev,
                                                         nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (depth > kMaxJsonDepth) fail("nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (ev == E::object_start) {
      open_objects.emplace_back();
    } else if (ev == E::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == E::key && !open_objects.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(k).second) fail("has a duplicate key '" + k.substr(0, 64) + "'");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::exception& e) {
    fail("is not valid JSON: " + std::string(e.what()));
  }
  return {};  // not reached: fail throws
}

// At most `limit` characters of a JSON value's text, for error messages (a value from a file may
// be megabytes long).
inline std::string json_excerpt(const nlohmann::json& v, std::size_t limit = 64) {
  std::string s = v.dump(-1, ' ', /*ensure_ascii=*/true);
  if (s.size() > limit) s = s.substr(0, limit - 3) + "...";
  return s;
}

// Read-only private mapping of a whole file. Owns the mapping; moves transfer it, so spans into it
// survive a move of the owner.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path) {
    // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; the regular-file
    // check below then rejects it. It changes nothing for reading a regular file.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), prefix(path) + "cannot open");
    // The descriptor is only needed until mmap returns; the mapping keeps the file alive.
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw std::system_error(errno, std::generic_category(), prefix(path) + "cannot stat");
    if (!S_ISREG(st.st_mode)) format_fail(path, "not a regular file");
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return;  // mmap rejects length 0; the caller reports the file as too short
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), prefix(path) + "cannot mmap");
    data_ = static_cast<const std::byte*>(p);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

 private:
  void unmap() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Reads one little-endian element of type S from a possibly unaligned address.
template <class S>
S load(const std::byte* p) {
  S v;
  std::memcpy(&v, p, sizeof(S));
  return v;
}

template <class T, class S>
void convert_float(const TensorInfo& t, std::vector<T>& out) {
  const std::byte* p = t.bytes.data();
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(load<S>(p + i * sizeof(S)));
}

template <class T>
void convert_half(const TensorInfo& t, std::vector<T>& out, float (*widen)(std::uint16_t)) {
  const std::byte* p = t.bytes.data();
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(widen(load<std::uint16_t>(p + 2 * i)));
}

// Integer source; the target may be integral (range-checked, never silently wrapped) or floating.
template <class T, class S>
void convert_int(const std::string& path, const TensorInfo& t, std::vector<T>& out) {
  const std::byte* p = t.bytes.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const S v = load<S>(p + i * sizeof(S));
    if constexpr (std::is_integral_v<T>) {
      if (!std::in_range<T>(v))
        tensor_fail(path, t.name, "element " + std::to_string(i) + " = " + std::to_string(v) +
                                      " does not fit the requested integer type");
    }
    out[i] = static_cast<T>(v);
  }
}

}  // namespace detail

// A safetensors file opened read-only. Construction validates the whole header (see the list in
// the constructor); afterwards every accessor is bounds-safe. Movable, not copyable.
class SafeTensorsFile {
 public:
  SafeTensorsFile() = default;

  // Throws std::system_error if the file cannot be opened, FormatError if it is not a
  // well-formed safetensors file.
  explicit SafeTensorsFile(const std::filesystem::path& path) : path_(path.string()), map_(path_) {
    parse();
  }

  const std::string& path() const { return path_; }

  // Tensor names in the order they appear in the JSON header (for files this project writes,
  // that is also their order in the data section). "__metadata__" is not a tensor.
  const std::vector<std::string>& names() const { return names_; }
  std::size_t size() const { return tensors_.size(); }
  bool contains(std::string_view name) const { return index_.find(std::string(name)) != index_.end(); }

  // Throws std::out_of_range naming the tensor and the file.
  const TensorInfo& info(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) {
      std::string have;
      for (std::size_t i = 0; i < names_.size() && i < 16; ++i) have += (i ? ", " : "") + names_[i];
      if (names_.size() > 16) have += ", ...";
      throw std::out_of_range(detail::prefix(path_) + "no tensor named '" + std::string(name) + "' (tensors: " +
                              have + ")");
    }
    return tensors_[it->second];
  }

  // All of "__metadata__"; empty when the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::optional<std::string> metadata_value(std::string_view key) const {
    const auto it = metadata_.find(std::string(key));
    if (it == metadata_.end()) return std::nullopt;
    return it->second;
  }
  // The golden files store structured metadata as JSON text inside the string values; this
  // parses one. nullopt if the key is absent, FormatError if the value is not valid JSON.
  std::optional<nlohmann::json> metadata_json(std::string_view key) const {
    const auto v = metadata_value(key);
    if (!v) return std::nullopt;
    return detail::parse_json(*v, [&](const std::string& what) {
      detail::format_fail(path_, "metadata '" + std::string(key) + "' " + what);
    });
  }


  // Copies a tensor out as row-major T. Allowed conversions (anything else is a FormatError):
  //   F64/F32/F16/BF16          -> float or double (F64 -> float rounds)
  //   I*/U* integers, BOOL      -> any integral T (each value range-checked) or float/double
  //   BOOL                      -> bool (bytes other than 0/1 are a FormatError)
  // Float -> integer is refused: it would silently truncate data that was meant as real values.
  template <class T>
  std::vector<T> read(std::string_view name) const {
    static_assert(std::is_arithmetic_v<T>, "read<T>: arithmetic T required");
    static_assert(!std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char8_t> &&
                      !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>,
                  "read<T>: character types are ambiguous; use std::int8_t / std::uint8_t");
    const TensorInfo& t = info(name);
    const auto n = static_cast<std::size_t>(t.numel());
    const auto refuse = [&] {
      detail::tensor_fail(path_, t.name, "cannot read dtype " + std::string(dtype_name(t.dtype)) +
                                             " as a " + type_label<T>() +
                                             " (allowed: float->float, int->int, int->float, BOOL->bool)");
    };
    if constexpr (std::is_same_v<T, bool>) {
      if (t.dtype != DType::BOOL) refuse();
      std::vector<bool> out(n);
      for (std::size_t i = 0; i < n; ++i) {
        const auto b = std::to_integer<unsigned>(t.bytes[i]);
        if (b > 1) detail::tensor_fail(path_, t.name, "BOOL element " + std::to_string(i) + " is " + std::to_string(b) + ", not 0 or 1");
        out[i] = b != 0;
      }
      return out;
    } else {
      std::vector<T> out(n);
      if (is_float_dtype(t.dtype) && !std::is_floating_point_v<T>) refuse();
      switch (t.dtype) {
        case DType::F64: detail::convert_float<T, double>(t, out); break;
        case DType::F32:
          if constexpr (std::is_same_v<T, float>) {
            if (n) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
          } else {
            detail::convert_float<T, float>(t, out);
          }
          break;
        case DType::F16: detail::convert_half<T>(t, out, &f16_bits_to_float); break;
        case DType::BF16: detail::convert_half<T>(t, out, &bf16_bits_to_float); break;
        case DType::I64: detail::convert_int<T, std::int64_t>(path_, t, out); break;
        case DType::I32: detail::convert_int<T, std::int32_t>(path_, t, out); break;
        case DType::I16: detail::convert_int<T, std::int16_t>(path_, t, out); break;
        case DType::I8: detail::convert_int<T, std::int8_t>(path_, t, out); break;
        case DType::U64: detail::convert_int<T, std::uint64_t>(path_, t, out); break;
        case DType::U32: detail::convert_int<T, std::uint32_t>(path_, t, out); break;
        case DType::U16: detail::convert_int<T, std::uint16_t>(path_, t, out); break;
        case DType::U8: detail::convert_int<T, std::uint8_t>(path_, t, out); break;
        case DType::BOOL:
          for (std::size_t i = 0; i < n; ++i) {
            const auto b = std::to_integer<unsigned>(t.bytes[i]);
            if (b > 1) detail::tensor_fail(path_, t.name, "BOOL element " + std::to_string(i) + " is " + std::to_string(b) + ", not 0 or 1");
            out[i] = static_cast<T>(b);
          }
          break;
      }
      return out;
    }
  }

  // read<T> into an Array of rank R; a different rank is a FormatError naming the tensor, the
  // expected rank and the actual shape.
  template <class T, std::size_t R>
  Array<T, R> read_array(std::string_view name) const {
    static_assert(!std::is_same_v<T, bool>, "read_array<bool>: use read<bool>");
    const TensorInfo& t = info(name);
    if (t.shape.size() != R)
      detail::tensor_fail(path_, t.name, "expected rank " + std::to_string(R) + ", got shape " + detail::shape_str(t.shape));
    Shape<R> shape{};
    for (std::size_t d = 0; d < R; ++d) shape[d] = t.shape[d];
    return Array<T, R>(shape, read<T>(name));
  }

  // Same, and the shape must equal `expected` (-1 matches any extent).
  template <class T, std::size_t R>
  Array<T, R> read_array(std::string_view name, const Shape<R>& expected) const {
    Array<T, R> a = read_array<T, R>(name);
    for (std::size_t d = 0; d < R; ++d) {
      if (expected[d] >= 0 && a.size(d) != expected[d]) {
        std::string exp = "[";
        for (std::size_t i = 0; i < R; ++i)
          exp += (i ? ", " : "") + (expected[i] < 0 ? std::string("*") : std::to_string(expected[i]));
        detail::tensor_fail(path_, std::string(name), "expected shape " + exp + "], got " + shape_string(a.shape()));
      }
    }
    return a;
  }

 private:
  template <class T>
  static std::string type_label() {
    if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_floating_point_v<T>) return std::to_string(8 * sizeof(T)) + "-bit float";
    else return std::string(std::is_signed_v<T> ? "signed " : "unsigned ") + std::to_string(8 * sizeof(T)) + "-bit integer";
  }

  // Streams the header straight into TensorInfo entries (nlohmann's SAX interface): time linear
  // in the header, memory proportional to the tensor count, nesting bounded by kMaxJsonDepth.
  // A DOM would cost ~10x the header in memory, and ordered_json's linear key search made a
  // 160k-key (2 MB) header take 47 s. Duplicate keys are rejected where they change the meaning
  // (tensor names, an entry's fields, metadata keys); nlohmann's DOM would keep one silently.
  class HeaderReader {
   public:
    using json = nlohmann::json;

    HeaderReader(SafeTensorsFile& file, std::span<const std::byte> data) : f_(file), data_(data) {}

    bool null() { return scalar("null"); }
    bool boolean(bool v) { return scalar(v ? "true" : "false"); }
    bool number_integer(json::number_integer_t v) {
      if (v >= 0) return number_unsigned(static_cast<json::number_unsigned_t>(v));
      const Role r = value_role();
      if (r == Role::shape_item || r == Role::offset_item) item_fail(std::to_string(v), "is negative");
      return scalar(std::to_string(v), r);
    }
    bool number_unsigned(json::number_unsigned_t v) {
      const Role r = value_role();
      if (r != Role::shape_item && r != Role::offset_item) return scalar(std::to_string(v), r);
      if (v > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()))
        item_fail(std::to_string(v), "is too large (overflow)");
      if (r == Role::shape_item) {
        entry_.shape.push_back(static_cast<index_t>(v));
      } else {
        if (offsets_.size() == 2) detail::tensor_fail(f_.path_, key_, "data_offsets is not a [begin, end] pair (more than 2 values)");
        offsets_.push_back(v);
      }
      return true;
    }
    bool number_float(json::number_float_t, const json::string_t& text) { return scalar(text); }
    bool string(json::string_t& v) {
      const Role r = value_role();
      if (r == Role::dtype) {
        const auto dt = parse_dtype(v);
        if (!dt) detail::tensor_fail(f_.path_, key_, "unknown dtype '" + excerpt(v) + "'");
        entry_.dtype = *dt;
        return true;
      }
      if (r == Role::meta_value) {
        f_.metadata_[field_] = std::move(v);
        return true;
      }
      return scalar("\"" + excerpt(v) + "\"", r);
    }
    bool binary(json::binary_t&) { return scalar("binary"); }

    bool start_object(std::size_t) { return open(/*object=*/true); }
    bool start_array(std::size_t) { return open(/*object=*/false); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool key(json::string_t& k) {
      const Role in = stack_.back();
      if (in == Role::top) {
        if (k != "__metadata__" && f_.index_.count(k)) detail::format_fail(f_.path_, "header has a duplicate key '" + excerpt(k) + "'");
        if (k == "__metadata__" && seen_metadata_) detail::format_fail(f_.path_, "header has a duplicate key '__metadata__'");
        key_ = std::move(k);
        next_ = key_ == "__metadata__" ? Role::meta_object : Role::entry;
      } else if (in == Role::meta_object) {
        if (f_.metadata_.count(k)) detail::format_fail(f_.path_, "header has a duplicate key '" + excerpt(k) + "' in __metadata__");
        field_ = std::move(k);
        next_ = Role::meta_value;
      } else if (in == Role::entry) {
        Role field = Role::skip;
        if (k == "dtype") field = Role::dtype;
        else if (k == "shape") field = Role::shape;
        else if (k == "data_offsets") field = Role::offsets;
        if (field != Role::skip) {  // unknown extra fields are tolerated, as the reference does
          const auto bit = 1u << static_cast<unsigned>(field);
          if (fields_seen_ & bit) detail::tensor_fail(f_.path_, key_, "header has a duplicate key '" + k + "'");
          fields_seen_ |= bit;
        }
        next_ = field;
      } else {
        next_ = Role::skip;
      }
      return true;
    }

    bool parse_error(std::size_t, const std::string&, const json::exception& e) {
      detail::format_fail(f_.path_, "header is not valid JSON: " + std::string(e.what()));
    }

    void finish() const {
      if (!done_) detail::format_fail(f_.path_, "header is not a JSON object");
    }

   private:
    // What the value being read is; a container's role decides its children's.
    enum class Role : std::uint8_t { top, entry, meta_object, meta_value, dtype, shape, shape_item, offsets, offset_item, skip };

    // The role of the value that starts now: arrays give it from their own role, objects from
    // the key just read.
    Role value_role() const {
      if (stack_.empty()) return Role::top;
      switch (stack_.back()) {
        case Role::shape: return Role::shape_item;
        case Role::offsets: return Role::offset_item;
        case Role::skip: return Role::skip;
        default: return next_;
      }
    }

    static std::string excerpt(const std::string& s) { return s.size() <= 64 ? s : s.substr(0, 61) + "..."; }

    [[noreturn]] void item_fail(const std::string& value, const std::string& what) const {
      const bool shape = value_role() == Role::shape_item;
      const std::string item = shape ? "shape entry" : offsets_.empty() ? "data_offsets begin" : "data_offsets end";
      detail::tensor_fail(f_.path_, key_, item + " " + value + " " + what);
    }

    // A scalar, or the start of a container described by `what`, where `r` is expected.
    bool scalar(const std::string& what) { return scalar(what, value_role()); }
    bool scalar(const std::string& what, Role r) {
      switch (r) {
        case Role::top: detail::format_fail(f_.path_, "header is not a JSON object (" + what + ")");
        case Role::entry: detail::tensor_fail(f_.path_, key_, "entry is not a JSON object (" + what + ")");
        case Role::meta_object: detail::format_fail(f_.path_, "__metadata__ is not a JSON object (" + what + ")");
        case Role::meta_value:
          detail::format_fail(f_.path_, "metadata value for key '" + excerpt(field_) + "' is not a string (" + what + ")");
        case Role::dtype: detail::tensor_fail(f_.path_, key_, "dtype is not a string (" + what + ")");
        case Role::shape: detail::tensor_fail(f_.path_, key_, "shape is not an array (" + what + ")");
        case Role::offsets: detail::tensor_fail(f_.path_, key_, "data_offsets is not a [begin, end] pair (" + what + ")");
        case Role::shape_item:
        case Role::offset_item: item_fail(what, "is not a non-negative integer");
        case Role::skip: return true;
      }
      return true;
    }

    bool open(bool object) {
      if (stack_.size() >= static_cast<std::size_t>(detail::kMaxJsonDepth))
        detail::format_fail(f_.path_, "header nests deeper than " + std::to_string(detail::kMaxJsonDepth) + " levels");
      const Role r = value_role();
      const bool wants_object = r == Role::top || r == Role::entry || r == Role::meta_object;
      const bool wants_array = r == Role::shape || r == Role::offsets;
      if (r != Role::skip && !(object ? wants_object : wants_array)) scalar(object ? "an object" : "an array", r);
      if (r == Role::entry) {
        entry_ = TensorInfo{};
        entry_.name = key_;
        offsets_.clear();
        fields_seen_ = 0;
      }
      if (r == Role::meta_object) seen_metadata_ = true;
      stack_.push_back(r);
      return true;
    }

    bool close() {
      const Role r = stack_.back();
      stack_.pop_back();
      if (r == Role::entry) add_entry();
      if (r == Role::offsets && offsets_.size() != 2)
        detail::tensor_fail(f_.path_, key_, "data_offsets is not a [begin, end] pair (" + std::to_string(offsets_.size()) + " values)");
      if (r == Role::top) done_ = true;
      return true;
    }

    void add_entry() {
      constexpr std::pair<Role, const char*> required[] = {
          {Role::dtype, "dtype"}, {Role::shape, "shape"}, {Role::offsets, "data_offsets"}};
      for (const auto& [field, name] : required)
        if (!(fields_seen_ & (1u << static_cast<unsigned>(field))))
          detail::tensor_fail(f_.path_, key_, std::string("missing field '") + name + "'");
      // numel * element size must fit both index_t and the address space. A zero extent makes
      // numel 0 whatever the others are, but absurd shapes are still rejected.
      const auto product = linattn::detail::extent_product(entry_.shape);
      const std::string shape = detail::shape_str(entry_.shape);
      if (!product) detail::tensor_fail(f_.path_, key_, "shape " + shape + " overflows the element count");
      const auto numel = static_cast<std::uint64_t>(*product);
      const std::uint64_t esize = dtype_size(entry_.dtype);
      if (numel > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / esize)
        detail::tensor_fail(f_.path_, key_, "shape " + shape + " overflows the byte count");
      const std::uint64_t nbytes = numel * esize, b = offsets_[0], e = offsets_[1];
      if (b > e) detail::tensor_fail(f_.path_, key_, "data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
      if (e > data_.size())
        detail::tensor_fail(f_.path_, key_, "data_offsets end " + std::to_string(e) + " is beyond the data section (" +
                                                std::to_string(data_.size()) + " bytes): truncated file?");
      if (e - b != nbytes)
        detail::tensor_fail(f_.path_, key_, "data_offsets size " + std::to_string(e - b) + " bytes does not match shape " +
                                                shape + " x " + std::string(dtype_name(entry_.dtype)) + " = " +
                                                std::to_string(nbytes) + " bytes");
      entry_.bytes = data_.subspan(b, e - b);
      extents.push_back({b, e, f_.tensors_.size()});
      f_.index_.emplace(key_, f_.tensors_.size());
      f_.names_.push_back(key_);
      f_.tensors_.push_back(std::move(entry_));
    }

    SafeTensorsFile& f_;
    std::span<const std::byte> data_;
    std::vector<Role> stack_;       // roles of the open containers, outermost first
    Role next_ = Role::top;         // role of the value after the last key
    std::string key_;               // the current top-level key (tensor name)
    std::string field_;             // the current metadata key
    TensorInfo entry_;              // the tensor being read
    std::vector<std::uint64_t> offsets_;
    unsigned fields_seen_ = 0;      // bit per Role of the entry's known fields
    bool seen_metadata_ = false;
    bool done_ = false;             // the top-level object closed

   public:
    struct Extent {
      std::uint64_t begin, end;
      std::size_t tensor;
    };
    std::vector<Extent> extents;
  };

  void parse() {
    const std::span<const std::byte> file = map_.bytes();
    if (file.size() < 8)
      detail::format_fail(path_, "file is shorter than 8 bytes (" + std::to_string(file.size()) +
                                     " bytes), no room for the header length");
    const auto n = detail::load<std::uint64_t>(file.data());
    if (n > detail::kMaxHeaderBytes)
      detail::format_fail(path_, "header length " + std::to_string(n) + " is absurd (limit " +
                                     std::to_string(detail::kMaxHeaderBytes) + " bytes)");
    if (n > file.size() - 8)
      detail::format_fail(path_, "header length " + std::to_string(n) + " is larger than the file (" +
                                     std::to_string(file.size()) + " bytes): truncated file?");
    const auto* header_begin = reinterpret_cast<const char*>(file.data() + 8);
    // nlohmann's lexer takes a NUL byte as end of input, which would let "{}\0garbage" through;
    // a raw NUL is never valid JSON (not even inside a string), so reject it up front.
    if (const void* nul = std::memchr(header_begin, 0, n))
      detail::format_fail(path_, "header is not valid JSON: NUL byte at header offset " +
                                     std::to_string(static_cast<const char*>(nul) - header_begin));
    HeaderReader reader(*this, file.subspan(8 + n));
    nlohmann::json::sax_parse(header_begin, header_begin + n, &reader);
    reader.finish();

    // The spec forbids overlapping tensors (aliasing would make writes through one tensor change
    // another) and also gaps; gaps are harmless for reading, so only overlap is rejected.
    auto& extents = reader.extents;
    std::sort(extents.begin(), extents.end(), [](const auto& a, const auto& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    const HeaderReader::Extent* prev = nullptr;
    for (const auto& x : extents) {
      if (x.begin == x.end) continue;  // an empty tensor occupies no bytes
      if (prev != nullptr && x.begin < prev->end)
        detail::tensor_fail(path_, tensors_[x.tensor].name,
                            "data_offsets [" + std::to_string(x.begin) + ", " + std::to_string(x.end) +
                                ") overlap tensor '" + tensors_[prev->tensor].name + "' [" +
                                std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ")");
      if (prev == nullptr || x.end > prev->end) prev = &x;
    }
  }
  std::string path_;
  detail::MappedFile map_;
  std::vector<TensorInfo> tensors_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file in memory, then writes it. Tensors are copied at add() time, so the
// caller's buffers may die afterwards.
//
// The data section is laid out by decreasing element size (stable, i.e. insertion order among
// equal sizes) with no gaps, and the header is space-padded to a multiple of 8 bytes, as the
// reference implementation does: every tensor then starts at an offset aligned to its element
// size, so zero-copy readers (numpy, torch) can use the data in place, and the Python reader,
// which rejects gaps, accepts the file. The header lists "__metadata__" first, then the tensors
// in data order.
class SafeTensorsWriter {
 public:
  // `bytes` holds numel(shape) * dtype_size(dtype) bytes, row-major, little-endian; it may be
  // null when the shape has a zero extent. Throws std::invalid_argument for an empty, reserved
  // or duplicate name, or a negative / overflowing shape.
  void add(std::string name, DType dtype, std::vector<index_t> shape, const void* bytes) {
    const std::size_t n = checked_bytes(name, dtype, shape);
    if (n != 0 && bytes == nullptr) bad(name, "null data for a non-empty tensor");
    Entry e{std::move(name), dtype, std::move(shape), {}};
    e.data.resize(n);
    if (n) std::memcpy(e.data.data(), bytes, n);
    entries_.push_back(std::move(e));
  }

  // Typed: the dtype follows T (float -> F32, double -> F64, int8_t -> I8, bool -> BOOL, ...);
  // values.size() must equal numel(shape). For BF16/F16 use the raw overload with the
  // float_to_bf16_bits / float_to_f16_bits results.
  template <class T>
  void add(std::string name, const std::vector<T>& values, std::vector<index_t> shape) {
    const index_t want = numel_of(name, shape);
    if (static_cast<index_t>(values.size()) != want)
      bad(name, std::to_string(values.size()) + " values given for shape " + detail::shape_str(shape));
    if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> has no contiguous storage
      std::vector<std::uint8_t> b(values.begin(), values.end());
      add(std::move(name), DType::BOOL, std::move(shape), b.data());
    } else {
      add(std::move(name), dtype_of<T>(), std::move(shape), values.data());
    }
  }

  // A possibly strided view, stored row-major in its logical shape.
  template <class T, std::size_t R>
  void add(std::string name, const TensorView<T, R>& view) {
    using U = std::remove_const_t<T>;
    std::vector<index_t> shape(view.shape().begin(), view.shape().end());
    std::vector<U> flat;
    const index_t total = numel_of(name, shape);
    flat.reserve(static_cast<std::size_t>(total));
    if (total > 0) {
      if (view.data() == nullptr) bad(name, "null view data");
      Shape<R> idx{};
      for (index_t i = 0; i < total; ++i) {
        index_t off = 0;
        for (std::size_t d = 0; d < R; ++d) off += idx[d] * view.stride(d);
        flat.push_back(view.data()[off]);
        for (std::size_t d = R; d-- > 0;) {  // odometer increment, last dim fastest
          if (++idx[d] < view.size(d)) break;
          idx[d] = 0;
        }
      }
    }
    add(std::move(name), flat, std::move(shape));
  }

  template <class T, std::size_t R>
  void add(std::string name, const Array<T, R>& array) {
    add(std::move(name), array.cview());
  }

  // Later values for the same key replace earlier ones.
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  bool contains(std::string_view name) const {
    return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.name == name; });
  }

  // The complete file image; handy for tests that corrupt a valid file byte by byte.
  std::vector<std::byte> to_bytes() const {
    std::vector<const Entry*> order;
    for (const Entry& e : entries_) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(),
                     [](const Entry* a, const Entry* b) { return dtype_size(a->dtype) > dtype_size(b->dtype); });

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
      auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
      for (const auto& [k, v] : metadata_) m[k] = v;
    }
    std::uint64_t offset = 0;
    for (const Entry* e : order) {
      header[e->name] = {{"dtype", std::string(dtype_name(e->dtype))},
                         {"shape", e->shape},
                         {"data_offsets", {offset, offset + e->data.size()}}};
      offset += e->data.size();
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& e) {  // e.g. a name or value that is not UTF-8
      throw std::invalid_argument(std::string("linattn::io: SafeTensorsWriter: cannot encode header: ") + e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');

    std::vector<std::byte> out(8 + text.size() + offset);
    const std::uint64_t n = text.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* p = out.data() + 8 + text.size();
    for (const Entry* e : order) {
      if (!e->data.empty()) std::memcpy(p, e->data.data(), e->data.size());
      p += e->data.size();
    }
    return out;
  }

  // Throws std::system_error naming the path if the file cannot be written completely.
  void write(const std::filesystem::path& path) const {
    const std::vector<std::byte> image = to_bytes();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::system_error(errno, std::generic_category(), detail::prefix(path.string()) + "cannot create");
    f.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    f.close();
    if (!f) throw std::system_error(errno, std::generic_category(), detail::prefix(path.string()) + "write failed");
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<index_t> shape;
    std::vector<std::byte> data;
  };

  [[noreturn]] static void bad(const std::string& name, const std::string& what) {
    throw std::invalid_argument("linattn::io: SafeTensorsWriter: tensor '" + name + "': " + what);
  }

  static index_t numel_of(const std::string& name, const std::vector<index_t>& shape) {
    if (std::any_of(shape.begin(), shape.end(), [](index_t s) { return s < 0; }))
      bad(name, "negative extent in shape " + detail::shape_str(shape));
    const auto n = linattn::detail::extent_product(shape);
    if (!n) bad(name, "shape " + detail::shape_str(shape) + " overflows");
    return *n;
  }

  std::size_t checked_bytes(const std::string& name, DType dtype, const std::vector<index_t>& shape) const {
    if (name.empty()) bad(name, "empty name");
    if (name == "__metadata__") bad(name, "name is reserved");
    if (contains(name)) bad(name, "duplicate name");
    const index_t n = numel_of(name, shape);
    const auto es = static_cast<index_t>(dtype_size(dtype));
    if (n > std::numeric_limits<index_t>::max() / es) bad(name, "byte count overflows");
    return static_cast<std::size_t>(n * es);
  }

  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace linattn::io
