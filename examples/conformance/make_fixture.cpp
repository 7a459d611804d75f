// linattn-conformance-fixture OUT.safetensors KIND
//
// Writes a tiny, well-formed safetensors file whose metadata "kind" is KIND (one float32 tensor
// "q" [1]): the negative ctest conformance.rejects_unknown_kind feeds it to linattn-conformance.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "linattn/io/safetensors.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: linattn-conformance-fixture OUT.safetensors KIND\n");
    return 2;
  }
  try {
    linattn::io::SafeTensorsWriter w;
    w.set_metadata("kind", argv[2]);
    w.set_metadata("case", "fixture_kind_" + std::string(argv[2]));
    w.set_metadata("format", "linattn-golden-v1");
    w.add("q", std::vector<float>{0.0f}, {1});
    w.write(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linattn-conformance-fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}
