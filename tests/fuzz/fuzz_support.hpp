// What the libFuzzer harnesses of tests/fuzz share: a scratch directory of their own (the
// library reads paths, not buffers), writing an input there, and splitting one input into
// several files.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
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

// A directory for this process only, linattn-fuzz-<pid>: under /dev/shm when it is writable
// (inputs are rewritten at every execution; tmpfs keeps that off the disk), else under the system
// temp dir. Removed at exit; a process that crashed leaves its directory (with the crashing
// input's files, which helps) until the next harness starts and removes the directories of
// processes that no longer exist.
inline const std::filesystem::path& scratch_dir() {
  namespace fs = std::filesystem;
  // Never destroyed: the exit handler needs it after static destructors may have run.
  static const fs::path* const dir = [] {
    const fs::path base = ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("linattn-fuzz-", 0) != 0) continue;
      const std::string pid = name.substr(13);
      if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
    auto* d = new fs::path(base / ("linattn-fuzz-" + std::to_string(::getpid())));
    fs::remove_all(*d, ec);
    if (!fs::create_directories(*d, ec)) {
      std::fprintf(stderr, "linattn fuzz: cannot create %s: %s\n", d->c_str(), ec.message().c_str());
      std::abort();
    }
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(*dir, ignored);
    });
    return d;
  }();
  return *dir;
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
