// Reading safetensors files (https://github.com/huggingface/safetensors).
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
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "linattn/core/tensor.hpp"
#include "linattn/io/safetensors/dtype.hpp"
#include "linattn/io/safetensors/mapping.hpp"

namespace linattn::io {

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

}  // namespace linattn::io
