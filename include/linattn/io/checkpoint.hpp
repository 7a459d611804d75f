// A Hugging Face model directory: config.json plus model.safetensors, or sharded
// model-0000i-of-0000N.safetensors files listed in model.safetensors.index.json.
//
// Every shard is memory-mapped once. Tensors are handed out as FloatTensor: for float32 data
// that is a view straight into the mapping (no copy); bfloat16 and float16 are widened into
// an owned buffer once. release(key) gives the pages of a tensor back to the kernel once a
// layer has made its own representation (the packed ternary weights), so a model's peak
// resident memory holds one latent float tensor at a time, never the whole float checkpoint.
//
// Every failure names the directory and the key: a missing tensor, a wrong shape or dtype, an
// index that points at a missing shard, a malformed config.json.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "linattn/core/float_tensor.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/io/safetensors.hpp"

namespace linattn::io {

// A checkpoint that cannot be used as the model asks: missing or misshapen tensor, bad config.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The tensor type the checkpoint hands out (core/float_tensor.hpp, so that nn/ needs no io/).
using FloatTensor = linattn::FloatTensor;

namespace detail {

// Drops the resident pages wholly inside `bytes` (a read-only private file mapping: the data
// stays readable and is faulted in again from the file if touched).
inline void drop_pages(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
  const auto end = begin + bytes.size();
  const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace detail

class Checkpoint {
 public:
  // Opens `dir`: reads config.json and maps model.safetensors or every shard of the index.
  explicit Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(dir)) fail("is not a directory");
    config_ = read_json(dir / "config.json", "config.json");
    if (!config_.is_object()) fail("config.json is not a JSON object");
    const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    std::error_code ec;
    const bool has_index = fs::exists(index, ec), has_single = fs::exists(single, ec);
    if (has_index && has_single)
      fail("has both model.safetensors and model.safetensors.index.json: remove the one that is not the checkpoint");
    if (has_index) {
      open_shards(dir, read_json(index, "model.safetensors.index.json"));
    } else if (has_single) {
      shards_.push_back(std::make_shared<SafeTensorsFile>(single));
      for (const auto& name : shards_[0]->names()) where_[name] = 0;
    } else {
      fail("has neither model.safetensors nor model.safetensors.index.json");
    }
  }

  const std::filesystem::path& directory() const { return dir_; }
  const nlohmann::json& config() const { return config_; }

  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [name, shard] : where_) k.push_back(name);
    return k;
  }
  bool contains(std::string_view key) const { return where_.count(std::string(key)) != 0; }

  const TensorInfo& info(std::string_view key) const {
    const auto it = where_.find(std::string(key));
    if (it == where_.end()) fail("has no tensor \"" + std::string(key) + "\"");
    return shards_[it->second]->info(key);
  }

  // The tensor as float with exactly `shape`; float32 data is not copied when it is 4-byte
  // aligned in the mapping. Any other dtype than F32/BF16/F16 is an error naming the key.
  FloatTensor floats(std::string_view key, const std::vector<index_t>& shape) const {
    const TensorInfo& t = info(key);
    if (t.shape != shape)
      fail("tensor \"" + std::string(key) + "\" has shape " + linattn::io::detail::shape_str(t.shape) + ", expected " +
           linattn::io::detail::shape_str(shape));
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      fail("tensor \"" + std::string(key) + "\" has dtype " + std::string(dtype_name(t.dtype)) +
           "; model weights must be F32, BF16 or F16");
    {
      const std::lock_guard<std::mutex> lock(*used_mutex_);  // floats() is const: callers may share a Checkpoint
      used_.insert(std::string(key));
    }
    const auto& file = shards_[where_.at(std::string(key))];
    FloatTensor out;
    if (t.dtype == DType::F32 && reinterpret_cast<std::uintptr_t>(t.bytes.data()) % alignof(float) == 0) {
      out.shape = shape;
      out.owner = file;
      out.data = reinterpret_cast<const float*>(t.bytes.data());
    } else {
      out = FloatTensor::own(shape, file->read<float>(key));
    }
    // A NaN or infinite weight makes every output garbage (or a sampling error far from the
    // cause); name the tensor instead. One streaming pass, fused into the first touch of the
    // pages that the model makes anyway.
    if (const index_t bad = linattn::detail::first_non_finite(out.span()); bad >= 0)
      fail("tensor \"" + std::string(key) + "\" has a non-finite value (" + std::to_string(out.data[bad]) +
           ") at element " + std::to_string(bad));
    return out;
  }
  std::vector<float> vector(std::string_view key, index_t n) const { return floats(key, {n}).to_vector(); }

  // Gives the mapped pages of `key` back (see the file comment). Views of it stay valid.
  void release(std::string_view key) const { detail::drop_pages(info(key).bytes); }

  // Keys no floats() call asked for: a model that leaves tensors unused is probably the wrong
  // model for the checkpoint.
  std::vector<std::string> unused_keys() const {
    std::vector<std::string> out;
    const std::lock_guard<std::mutex> lock(*used_mutex_);
    for (const auto& [name, shard] : where_)
      if (!used_.count(name)) out.push_back(name);
    return out;
  }

  // config.json accessors that name the field on a wrong type.
  template <class T>
  T get(const std::string& field, const T& fallback) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) return fallback;
    return as<T>(field, *it);
  }
  template <class T>
  T require(const std::string& field) const {
    const auto it = config_.find(field);
    if (it == config_.end() || it->is_null()) fail("config.json has no \"" + field + "\"");
    return as<T>(field, *it);
  }
  bool has(const std::string& field) const {
    const auto it = config_.find(field);
    return it != config_.end() && !it->is_null();
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError("linattn: checkpoint " + dir_.string() + ": " + what);
  }

 private:
  template <class T>
  T as(const std::string& field, const nlohmann::json& v) const {
    const auto bad = [&](const std::string& want) {
      fail("config.json field \"" + field + "\" = " + linattn::io::detail::json_excerpt(v) + " is not " + want);
    };
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) bad("a boolean");
      return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      // Every conversion is range-checked first: an out-of-range float-to-integer conversion is
      // undefined behaviour, and a wrapped integer would pass later checks.
      const std::string range = "an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
                                std::to_string(std::numeric_limits<T>::max()) + "]";
      if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (!std::in_range<T>(u)) bad(range);
        return static_cast<T>(u);
      }
      if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (!std::in_range<T>(i)) bad(range);
        return static_cast<T>(i);
      }
      if (!v.is_number_float()) bad("an integer");
      const double d = v.get<double>();
      // 2^63 and -2^63 are exact in double; [min, max] of a narrower T converts exactly too.
      const double lo = static_cast<double>(std::numeric_limits<T>::min());
      const double hi_excl = 2.0 * (static_cast<double>(std::numeric_limits<T>::max() / 2 + 1));
      if (!(d >= lo && d < hi_excl)) bad(range);
      if (std::trunc(d) != d) bad("an integer");
      return static_cast<T>(d);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) bad("a number");
      const double d = v.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max()))
        bad("a finite number in the range of a " + std::to_string(8 * sizeof(T)) + "-bit float");
      return static_cast<T>(d);
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) bad("a string");
      return v.get<std::string>();
    } else {
      return v.get<T>();
    }
  }

  // model.safetensors.index.json: {"weight_map": {key: shard file}}. Every shard is opened once;
  // the index and the shards must agree exactly: a key maps to a shard that has it, and every
  // tensor of a shard is listed, for that shard (a tensor in two shards or missing from the map
  // would otherwise be loaded from one of them silently, or not at all).
  void open_shards(const std::filesystem::path& dir, const nlohmann::json& idx) {
    namespace fs = std::filesystem;
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      fail("model.safetensors.index.json has no \"weight_map\" object");
    const std::string label = "model.safetensors.index.json: weight_map[\"";
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [key, file] : idx["weight_map"].items()) {
      const std::string shown = key.substr(0, 64);
      if (!file.is_string()) fail(label + shown + "\"] is not a file name");
      const std::string name = file.get<std::string>();
      // A plain file name in the directory: no separators, no "." / "..", and no NUL (which the
      // C API would take as the end of the name, opening a different file).
      const bool plain = !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                         name.find('\0') == std::string::npos;
      if (!plain)
        fail(label + shown + "\"] = " + linattn::io::detail::json_excerpt(file) + " is not a file in the directory");
      auto it = shard_of_file.find(name);
      if (it == shard_of_file.end()) {
        std::error_code ec;
        if (!fs::exists(dir / name, ec))
          fail("model.safetensors.index.json names shard \"" + name + "\" (for \"" + shown + "\"), which does not exist");
        it = shard_of_file.emplace(name, shards_.size()).first;
        shards_.push_back(std::make_shared<SafeTensorsFile>(dir / name));
      }
      if (!shards_[it->second]->contains(key))
        fail("model.safetensors.index.json maps \"" + shown + "\" to \"" + name + "\", which has no such tensor");
      where_[key] = it->second;
    }
    for (const auto& [name, shard] : shard_of_file)
      for (const auto& key : shards_[shard]->names()) {
        const auto w = where_.find(key);
        if (w == where_.end())
          fail("shard \"" + name + "\" has tensor \"" + key.substr(0, 64) +
               "\", which model.safetensors.index.json does not list");
        if (w->second != shard)
          fail("tensor \"" + key.substr(0, 64) + "\" is in shard \"" + name + "\" too, but the index maps it to another shard");
      }
  }

  // Regular files only (a FIFO would block the open for ever), at most kMaxJsonFileBytes, nesting
  // at most kMaxJsonDepth, no key twice in an object.
  nlohmann::json read_json(const std::filesystem::path& path, const std::string& label) const {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) fail(label + " is not a regular file");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail("cannot read the size of " + label + ": " + ec.message());
    if (size > kMaxJsonFileBytes)
      fail(label + " is " + std::to_string(size) + " bytes, more than any config or index needs (limit " +
           std::to_string(kMaxJsonFileBytes) + ")");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open " + label);
    std::string text(static_cast<std::size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    if (in.gcount() != static_cast<std::streamsize>(size)) fail("cannot read " + label + " (it changed while read?)");
    return linattn::io::detail::parse_json(text, [&](const std::string& what) { fail(label + " " + what); });
  }

  // A config or index beyond this is corrupt: the index of a 400-shard model is ~1 MB.
  static constexpr std::uintmax_t kMaxJsonFileBytes = 64u << 20;

  std::filesystem::path dir_;
  nlohmann::json config_;
  std::vector<std::shared_ptr<SafeTensorsFile>> shards_;
  std::map<std::string, std::size_t> where_;  // key -> shard
  mutable std::set<std::string> used_;
  std::shared_ptr<std::mutex> used_mutex_ = std::make_shared<std::mutex>();  // guards used_
};

}  // namespace linattn::io
