// libFuzzer harness: a sharded checkpoint (model.safetensors.index.json and its shards) through
// linattn::models::load_model. The input is config.json, the index, then the shards, split at
// kFileSeparator; shard i of n is written as model-0000i-of-0000n.safetensors (the names
// upstream and linattn-make-checkpoint use; an index naming other files names missing ones).
#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_load.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kMaxShards = 8;
  const auto parts = linattn::fuzz::split_files(linattn::fuzz::as_text(data, size), 2 + kMaxShards);
  const auto dir = linattn::fuzz::fresh_dir("shards");
  linattn::fuzz::write_file(dir / "config.json", parts[0]);
  if (parts.size() > 1) linattn::fuzz::write_file(dir / "model.safetensors.index.json", parts[1]);
  const std::size_t shards = parts.size() > 2 ? parts.size() - 2 : 0;
  for (std::size_t i = 0; i < shards; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards);
    linattn::fuzz::write_file(dir / name, parts[2 + i]);
  }
  linattn::fuzz::load_and_run(dir);
  return 0;
}
