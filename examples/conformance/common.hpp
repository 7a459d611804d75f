// Shared pieces of linattn-conformance: what a runner gets (Case), how a result is compared with
// the golden expectation and printed, and how numbers are pulled out of the golden metadata.
//
// The golden files (tests/data/GOLDEN-README.md) keep every metadata value as a string; numbers
// may be plain ("0.25"), JSON-quoted ("\"0.25\""), symbolic ("K^-0.5") or buried in prose
// ("rel err (max|a-b|/max|b|) <= 1e-4"). The helpers below accept all of these and fall back to
// a documented default when nothing numeric is there.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "linattn/core/tensor.hpp"
#include "linattn/io/safetensors.hpp"

namespace conformance {

using linattn::index_t;

// README: "Suggested tolerance for a float32 implementation: rel err <= 1e-4 on every output".
inline constexpr double kDefaultRelTolerance = 1e-4;

// One golden file as a runner sees it.
struct Case {
  const linattn::io::SafeTensorsFile& file;
  std::string name;  // metadata "case", else the file name without extension
  double tolerance;  // relative: max|a - b| / max|b| must not exceed it
};

// A runner checks every form of its op on one file and prints one line per form (report()).
// Returns true when every form passed; throws on anything that prevents the check (missing or
// mis-shaped tensor, library exception): main() reports that as "FILE: error: ...".
using Runner = bool (*)(const Case&);

// ---- comparison ---------------------------------------------------------------------------

// rel = max|a - b| / max|b| over the whole tensor (README's definition; b = expected).
// A NaN anywhere makes both fields NaN, which never passes.
struct Error {
  double max_abs = 0.0;
  double max_rel = 0.0;
};

template <class A>
Error compare(std::span<const A> actual, std::span<const double> expected) {
  if (actual.size() != expected.size())
    throw std::logic_error("conformance::compare: " + std::to_string(actual.size()) + " values vs " +
                           std::to_string(expected.size()) + " expected");
  double max_abs = 0.0, max_ref = 0.0;
  bool nan = false;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double d = std::abs(static_cast<double>(actual[i]) - expected[i]);
    if (std::isnan(d)) nan = true;
    max_abs = std::max(max_abs, d);
    max_ref = std::max(max_ref, std::abs(expected[i]));
  }
  if (nan) return {NAN, NAN};
  // An all-zero expectation: only an exact match is relative error 0.
  const double rel = max_ref > 0.0 ? max_abs / max_ref : (max_abs == 0.0 ? 0.0 : INFINITY);
  return {max_abs, rel};
}

template <class A>
Error compare(const std::vector<A>& actual, const std::vector<double>& expected) {
  return compare(std::span<const A>(actual), std::span<const double>(expected));
}

struct Check {
  std::string tensor;  // golden tensor name, e.g. "o", "ht"
  Error err;
};

inline bool passes(const Error& e, double tolerance) { return e.max_rel <= tolerance; }  // false for NaN

// Prints one line for (case, form):
//   <case> <form> max_abs=<worst over checks> max_rel=<worst> PASS|FAIL  [<tensor> rel=.. ... tol=..]
// The first five fields are fixed; the bracket after them lists every tensor's own error.
inline bool report(const Case& c, std::string_view form, const std::vector<Check>& checks) {
  Error worst;
  bool ok = true;
  for (const Check& ch : checks) {
    ok = ok && passes(ch.err, c.tolerance);
    // std::max would drop a NaN; keep it so the printed worst is honest.
    if (std::isnan(ch.err.max_abs) || ch.err.max_abs > worst.max_abs) worst.max_abs = ch.err.max_abs;
    if (std::isnan(ch.err.max_rel) || ch.err.max_rel > worst.max_rel) worst.max_rel = ch.err.max_rel;
    if (std::isnan(worst.max_rel)) worst = {NAN, NAN};
  }
  std::string detail;
  for (const Check& ch : checks) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s rel=%.3e %s ", ch.tensor.c_str(), ch.err.max_rel,
                  passes(ch.err, c.tolerance) ? "PASS" : "FAIL");
    detail += buf;
  }
  std::printf("%s %.*s max_abs=%.3e max_rel=%.3e %s  [%stol=%g]\n", c.name.c_str(), static_cast<int>(form.size()),
              form.data(), worst.max_abs, worst.max_rel, ok ? "PASS" : "FAIL", detail.c_str(), c.tolerance);
  std::fflush(stdout);
  return ok;
}

// ---- reading tensors ----------------------------------------------------------------------

inline std::string shape_text(std::span<const index_t> s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// An expected (float64 in the golden set) tensor whose shape must equal `shape`, the shape the
// runner derived from the inputs; read as double whatever float dtype the file stores.
inline std::vector<double> read_expected(const linattn::io::SafeTensorsFile& f, std::string_view name,
                                         const std::vector<index_t>& shape) {
  const auto& info = f.info(name);
  if (info.shape != shape)
    throw linattn::io::FormatError("expected tensor '" + std::string(name) + "' has shape " +
                                   shape_text(info.shape) + ", the inputs imply " + shape_text(shape));
  return f.read<double>(name);
}

// ---- metadata -----------------------------------------------------------------------------

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The whole of `s` (surrounding blanks allowed) as a finite number, else nullopt.
inline std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// A number from a JSON value or from text holding one: 0.25, "0.25", "\"0.25\"".
inline std::optional<double> number_from_text(std::string_view s);
inline std::optional<double> number_from_json(const nlohmann::json& j) {
  if (j.is_number()) {
    const double v = j.get<double>();
    return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
  }
  if (j.is_string()) return number_from_text(j.get<std::string>());
  return std::nullopt;
}
inline std::optional<double> number_from_text(std::string_view s) {
  if (auto v = parse_number(s)) return v;
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"') {
    const auto j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (j.is_string()) return parse_number(j.get<std::string>());
  }
  return std::nullopt;
}

// Metadata `key` as a number (see number_from_text), nullopt if absent or not numeric
// (e.g. scale = "K^-0.5": the caller then uses its default).
inline std::optional<double> metadata_number(const linattn::io::SafeTensorsFile& f, std::string_view key) {
  const auto v = f.metadata_value(key);
  return v ? number_from_text(*v) : std::nullopt;
}

namespace detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// The number right after the first "<=" (or "<") that follows a mention of "rel" in prose such as
// "float32 implementation vs these float64 expectations: rel err (max|a-b|/max|b|) <= 1e-4"
// or "codes must match exactly; x_norm, act_scale, y: rel err <= 1e-4 (float32 vs float64)".
inline std::optional<double> rel_tolerance_in_prose(std::string_view text) {
  const std::string low = lower(text);
  for (std::size_t at = low.find("rel"); at != std::string::npos; at = low.find("rel", at + 3)) {
    std::size_t op = low.find('<', at);
    if (op == std::string::npos) return std::nullopt;
    ++op;
    if (op < low.size() && low[op] == '=') ++op;
    // `low` is a NUL-terminated copy of the same characters (digits and exponents unchanged);
    // strtod skips leading blanks.
    const char* begin = low.c_str() + op;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end != begin && std::isfinite(v)) return v;
  }
  return std::nullopt;
}

inline std::optional<double> tolerance_from_json(const nlohmann::json& j, int depth = 0);

inline std::optional<double> tolerance_from_text(std::string_view text, int depth = 0) {
  if (auto v = number_from_text(text)) return v;
  const std::string_view t = trim(text);
  if (depth < 4 && !t.empty() && (t.front() == '{' || t.front() == '[')) {
    const auto j = nlohmann::json::parse(t, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) return tolerance_from_json(j, depth + 1);
  }
  return rel_tolerance_in_prose(text);
}

// A JSON tolerance: a number; a string (see tolerance_from_text); or an object, searched for a
// float32-specific entry first ("float32", "f32", "fp32"), then a relative one ("rel", "rel_err",
// "rtol", "max_rel", "relative").
inline std::optional<double> tolerance_from_json(const nlohmann::json& j, int depth) {
  if (depth > 4) return std::nullopt;
  if (j.is_number()) return number_from_json(j);
  if (j.is_string()) return tolerance_from_text(j.get<std::string>(), depth + 1);
  if (!j.is_object()) return std::nullopt;
  for (const char* key : {"float32", "f32", "fp32", "rel", "rel_err", "rtol", "max_rel", "relative"}) {
    for (const auto& [k, v] : j.items())
      if (lower(k) == key)
        if (auto t = tolerance_from_json(v, depth + 1)) return t;
  }
  return std::nullopt;
}

}  // namespace detail

// The relative tolerance for a float32 implementation stated by metadata `tolerance`, or the
// README's 1e-4 when the file states none we can read (or an implausible one).
inline double tolerance_from_metadata(const linattn::io::SafeTensorsFile& f) {
  const auto text = f.metadata_value("tolerance");
  if (!text) return kDefaultRelTolerance;
  const auto t = detail::tolerance_from_text(*text);
  return t && *t > 0.0 && *t < 1.0 ? *t : kDefaultRelTolerance;
}

inline std::string case_name(const linattn::io::SafeTensorsFile& f) {
  if (auto c = f.metadata_value("case"); c && !trim(*c).empty()) return std::string(trim(*c));
  return std::filesystem::path(f.path()).stem().string();
}

}  // namespace conformance
