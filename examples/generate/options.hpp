// linattn-generate's command line: the options, their usage text and their parser. Separate from
// main.cpp so that the parser is tested and fuzzed (tests/fuzz/fuzz_generate_options.cpp) without
// loading a model. parse_options() never exits: a bad command line throws UsageError naming the
// flag, and main() prints it with the usage and exits 2.
//
// Every value is checked here, at parse time, whether or not the run will use it: a sampling
// value that the Sampler would reject (--top-p 2 with --max-new-tokens 0, or with --dump-logits,
// which never build one) is still an error. Numbers are plain decimal (no sign where the value
// cannot be negative, no leading spaces or '+', no hex), and a value outside its type's range is
// an error, never wrapped or truncated ("--seed -1" is not 2^64 - 1).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "generate/id_list.hpp"
#include "linattn/lm/sampling.hpp"
#include "linattn/nn/options.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::examples {

// A command line linattn-generate cannot run; what() names the flag and the problem.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct GenerateOptions {
  bool help = false;  // -h / --help: print the usage and do nothing else
  std::string model;
  std::vector<std::string> prompts;
  std::vector<std::vector<std::int64_t>> ids;
  index_t max_new_tokens = 32;
  lm::SamplingOptions sampling;
  int threads = 0;
  ternary::Packing packing = ternary::Packing::bits2;
  std::optional<nn::Form> form;  // none: automatic
  bool reference = false;
  std::string dump_logits;
};

inline constexpr const char* kGenerateUsage =
    "usage: linattn-generate --model DIR (--prompt TEXT | --ids 1,2,3)... [--max-new-tokens N]\n"
    "         [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N] [--packing 2|1.6]\n"
    "         [--form auto|chunk|fused_chunk|recurrent] [--reference] [--dump-logits FILE.safetensors]\n"
    "  --model DIR          Hugging Face checkpoint: config.json + model.safetensors (or shards)\n"
    "  --prompt TEXT        text prompt (needs DIR/tokenizer.model); repeat for a batch\n"
    "  --ids LIST           prompt token ids; generated ids are printed as one line per prompt\n"
    "  --max-new-tokens N   tokens to generate per prompt (default 32); stops early at eos\n"
    "  --temperature T      0 = greedy (default); top-k (0 = off), top-p in (0, 1] (1 = off), seed\n"
    "  --threads N          threads (default 0: every core this process may run on; more are clamped to that)\n"
    "  --packing 2|1.6      MatMul-free LM ternary weights: 2-bit (default) or base-3 1.6-bit\n"
    "  --form F             prefill form: auto (recurrent up to 64 tokens, else chunk), chunk,\n"
    "                       fused_chunk (state in registers, the fastest prefill), recurrent\n"
    "  --reference          MatMul-free LM: dense float weights instead of the integer kernels\n"
    "  --dump-logits FILE   write the first prompt's logits [T, vocab] (float32, 'logits') and exit\n";

namespace detail {

// A decimal integer of type T: an optional '-' (signed T only) and digits, nothing else.
template <class T>
T parse_integer(std::string_view flag, std::string_view text) {
  const auto bad = [&](const std::string& why) -> UsageError {
    return UsageError(std::string(flag) + " expects " + why + ", got \"" + std::string(text) + "\"");
  };
  const std::string_view what = std::is_signed_v<T> ? "an integer" : "a non-negative integer";
  const std::size_t digits_from = (std::is_signed_v<T> && !text.empty() && text[0] == '-') ? 1 : 0;
  if (text.size() == digits_from) throw bad(std::string(what));
  for (std::size_t i = digits_from; i < text.size(); ++i)
    if (text[i] < '0' || text[i] > '9') throw bad(std::string(what));
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range)
    throw bad(std::string(what) + " in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
              std::to_string(std::numeric_limits<T>::max()) + "]");
  if (ec != std::errc() || end != text.data() + text.size()) throw bad(std::string(what));
  return v;
}

// A decimal floating-point number ("0.8", "1e-3", "inf", "nan" parse; the caller's range check
// rejects what it must).
inline float parse_float(std::string_view flag, std::string_view text) {
  float v = 0;
  const bool plain = !text.empty() && text[0] != ' ' && text[0] != '+';
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (!plain || ec != std::errc() || end != text.data() + text.size())
    throw UsageError(std::string(flag) + " expects a number, got \"" + std::string(text) + "\"");
  return v;
}

}  // namespace detail

// Parses argv[1..argc) (argv[0] is the program name). Throws UsageError on anything
// linattn-generate cannot run: an unknown flag, a flag without its value, a value that is not a
// number of the flag's type or outside its range, a sampling value the sampler would reject,
// --model missing, neither or both of --prompt and --ids.
inline GenerateOptions parse_generate_options(const std::vector<std::string>& args) {
  GenerateOptions a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-h" || flag == "--help") {
      a.help = true;
      return a;
    }
    if (flag == "--reference") {
      a.reference = true;
      continue;
    }
    if (i + 1 >= args.size()) throw UsageError(flag + " needs a value (or is unknown)");
    const std::string& v = args[++i];
    if (flag == "--model") a.model = v;
    else if (flag == "--prompt") a.prompts.push_back(v);
    else if (flag == "--ids") {
      try {
        a.ids.push_back(parse_ids(v));
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--ids: ") + e.what());
      }
    } else if (flag == "--max-new-tokens") a.max_new_tokens = detail::parse_integer<index_t>(flag, v);
    else if (flag == "--temperature") a.sampling.temperature = detail::parse_float(flag, v);
    else if (flag == "--top-k") a.sampling.top_k = detail::parse_integer<int>(flag, v);
    else if (flag == "--top-p") a.sampling.top_p = detail::parse_float(flag, v);
    else if (flag == "--seed") a.sampling.seed = detail::parse_integer<std::uint64_t>(flag, v);
    else if (flag == "--threads") a.threads = detail::parse_integer<int>(flag, v);
    else if (flag == "--packing") {
      if (v == "2") a.packing = ternary::Packing::bits2;
      else if (v == "1.6") a.packing = ternary::Packing::base3;
      else throw UsageError("--packing must be 2 or 1.6, got \"" + v + "\"");
    } else if (flag == "--form") {
      if (v == "auto") a.form = std::nullopt;
      else if (v == "chunk") a.form = nn::Form::chunk;
      else if (v == "fused_chunk") a.form = nn::Form::fused_chunk;
      else if (v == "recurrent") a.form = nn::Form::recurrent;
      else throw UsageError("--form must be auto, chunk, fused_chunk or recurrent, got \"" + v + "\"");
    } else if (flag == "--dump-logits") a.dump_logits = v;
    else throw UsageError("unknown option " + flag);
  }
  if (a.model.empty()) throw UsageError("--model is required");
  if (a.prompts.empty() == a.ids.empty()) throw UsageError("give --prompt or --ids (not both)");
  if (a.max_new_tokens < 0) throw UsageError("--max-new-tokens must be >= 0, got " + std::to_string(a.max_new_tokens));
  if (a.threads < 0) throw UsageError("--threads must be >= 0, got " + std::to_string(a.threads));
  // The sampler's own checks (lm::Sampler), here so that runs which build no sampler reject them
  // too. Written as !(ok) so that NaN fails.
  const auto& s = a.sampling;
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature))
    throw UsageError("--temperature must be finite and >= 0 (0 = greedy), got " + std::to_string(s.temperature));
  if (s.top_k < 0) throw UsageError("--top-k must be >= 0 (0 = off), got " + std::to_string(s.top_k));
  if (!(s.top_p > 0 && s.top_p <= 1))
    throw UsageError("--top-p must be in (0, 1] (1 = off), got " + std::to_string(s.top_p));
  return a;
}

inline GenerateOptions parse_generate_options(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_generate_options(args);
}

}  // namespace linattn::examples
