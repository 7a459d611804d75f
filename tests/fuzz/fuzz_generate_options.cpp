// libFuzzer harness: linattn-generate's command-line parser (examples/generate/options.hpp). The
// input is split at NUL bytes into arguments. parse_generate_options() must either return options
// that pass every check it documents, or throw UsageError; nothing else.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "generate/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args;
  const std::string_view in = linattn::fuzz::as_text(data, size);
  for (std::size_t pos = 0; pos <= in.size() && args.size() < 64;) {
    const std::size_t nul = std::min(in.find('\0', pos), in.size());
    args.emplace_back(in.substr(pos, nul - pos));
    pos = nul + 1;
  }
  try {
    const auto o = linattn::examples::parse_generate_options(args);
    if (o.help) return 0;
    const bool ok = !o.model.empty() && o.prompts.empty() != o.ids.empty() && o.max_new_tokens >= 0 && o.threads >= 0 &&
                    o.sampling.temperature >= 0 && std::isfinite(o.sampling.temperature) && o.sampling.top_k >= 0 &&
                    o.sampling.top_p > 0 && o.sampling.top_p <= 1;
    if (!ok) std::abort();
    for (const auto& list : o.ids) {
      if (list.empty()) std::abort();
      for (auto id : list)
        if (id < 0) std::abort();
      // The ids round-trip through the format linattn-generate prints.
      if (linattn::examples::parse_ids(linattn::examples::format_ids(list)) != list) std::abort();
    }
  } catch (const linattn::examples::UsageError&) {
  }
  return 0;
}
