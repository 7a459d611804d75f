// libFuzzer harness: a Hugging Face checkpoint directory through linattn::models::load_model.
// The input is config.json, then (after kFileSeparator) model.safetensors; both are written into
// a fresh directory, which is loaded and, if it loads, run on two tokens (fuzz_load.hpp). Seeds
// are micro checkpoints of the three families (linattn-fuzz-seeds).
#include <cstdint>

#include "fuzz_load.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = linattn::fuzz::split_files(linattn::fuzz::as_text(data, size), 2);
  const auto dir = linattn::fuzz::fresh_dir("checkpoint");
  linattn::fuzz::write_file(dir / "config.json", parts[0]);
  if (parts.size() > 1) linattn::fuzz::write_file(dir / "model.safetensors", parts[1]);
  linattn::fuzz::load_and_run(dir);
  return 0;
}
