// Writing safetensors files (io/safetensors.hpp): SafeTensorsWriter.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "linattn/core/tensor.hpp"
#include "linattn/io/safetensors/dtype.hpp"
#include "linattn/io/safetensors/mapping.hpp"

namespace linattn::io {

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
