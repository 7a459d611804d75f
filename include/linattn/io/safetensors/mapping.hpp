// What the safetensors reader and the checkpoint loader share beneath the format: the error
// helpers (every message starts with "linattn::io: <path>:"), bounded JSON parsing, and the
// read-only memory mapping of a whole file.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "linattn/io/safetensors/dtype.hpp"

namespace linattn::io::detail {

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

}  // namespace linattn::io::detail
