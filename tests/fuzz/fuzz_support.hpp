// What the libFuzzer harnesses of tests/fuzz share: a scratch directory of their own (the
// library reads paths, not buffers), writing an input there, and splitting one input into
// several files.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace linattn::fuzz {

// The separator between the files packed into one input (config.json, then weights, ...). The
// seeds and fuzz.dict contain it, so mutations keep and move it.
inline constexpr std::string_view kFileSeparator = "\n#LINATTN-FILE#\n";

// A directory for this process only: under /dev/shm when it is writable (inputs are rewritten
// at every execution; tmpfs keeps that off the disk), else under the system temp dir. Removed at
// exit (not after a crash: then it holds the crashing input's files, which helps).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/linattn-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("linattn fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// An empty subdirectory `name` of the scratch directory (its old contents removed).
inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = scratch_dir() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(("linattn fuzz: cannot write " + path.string()).c_str());
    std::abort();
  }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits `input` at every kFileSeparator, into at most `max_parts` parts (the last one keeps any
// further separators).
inline std::vector<std::string_view> split_files(std::string_view input, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const auto at = input.find(kFileSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kFileSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

}  // namespace linattn::fuzz
