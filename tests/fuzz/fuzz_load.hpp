// The model loader as the checkpoint harnesses drive it (fuzz_load.cpp, compiled once for both).
#pragma once

#include <filesystem>

namespace linattn::fuzz {

// Loads `dir` with linattn::models::load_model and, when it loads, runs the model on up to two
// tokens (a prefill and a step). Returns normally when the checkpoint loads or when loading fails
// with one of the loader's documented errors (std::runtime_error: CheckpointError, FormatError,
// std::system_error; std::invalid_argument); anything else propagates and is a finding.
void load_and_run(const std::filesystem::path& dir);

}  // namespace linattn::fuzz
