// The comma-separated token-id lists linattn-generate reads (--ids) and prints, and running it
// from a checker: shared by the program, linattn-generate-check and the CLI tests.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
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

// "1,2,3" → {1, 2, 3}. Each item is a decimal number in [0, 2^63): no sign, spaces or other
// characters. Anything else (an empty item, a non-number, a negative or out-of-range number, an
// empty list) throws std::invalid_argument naming the item.
inline std::vector<std::int64_t> parse_ids(std::string_view text) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    const bool digits = !item.empty() && std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) throw std::invalid_argument("\"" + std::string(item) + "\" is not a token id (a decimal number >= 0)");
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc::result_out_of_range)
      throw std::invalid_argument("\"" + std::string(item) + "\" is out of range for a token id (at most " +
                                  std::to_string(std::numeric_limits<std::int64_t>::max()) + ")");
    if (ec != std::errc() || end != item.data() + item.size())
      throw std::invalid_argument("\"" + std::string(item) + "\" is not a token id (a decimal number >= 0)");
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
