// Runner for kinds "model.gla", "model.gsa", "model.hgrn_bit": the golden.safetensors of a model
// folder (tests/data/GOLDEN-README.md, "Model-level folders"). The folder beside it holds the
// checkpoint; examples/common/golden.hpp runs every check with the README's tolerances.
#pragma once

#include <cstdio>
#include <filesystem>

#include "common.hpp"
#include "common/golden.hpp"

namespace conformance {

inline bool run_model(const Case& c) {
  const std::filesystem::path dir = std::filesystem::path(c.file.path()).parent_path();
  bool ok = true;
  for (const auto& r : linattn::examples::check_golden_model(dir.empty() ? "." : dir)) {
    std::printf("%s %s %s %s\n", c.name.c_str(), r.check.c_str(), r.detail.c_str(), r.passed ? "PASS" : "FAIL");
    ok &= r.passed;
  }
  return ok;
}

}  // namespace conformance
