// The comma-separated token-id lists linattn-generate reads (--ids) and prints, and running it
// from a checker: shared by the program, linattn-generate-check and the CLI tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace linattn::examples {

inline std::string format_ids(std::span<const std::int64_t> ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

// "1,2,3" → {1, 2, 3}; anything else (empty items, non-numbers, an empty list) throws
// std::invalid_argument naming the item.
inline std::vector<std::int64_t> parse_ids(std::string_view text) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item(text.substr(pos, comma - pos));
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) throw std::invalid_argument("\"" + item + "\" is not a token id");
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

// Runs a shell command and returns its stdout, without trailing newlines; throws if it fails.
inline std::string capture_stdout(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + command);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  if (::pclose(p) != 0) throw std::runtime_error("failed: " + command);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace linattn::examples
