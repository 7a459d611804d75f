// linattn-generate-check GENERATE_EXE MODEL_DIR: runs the linattn-generate program on a golden
// model folder (tests/data/GOLDEN-README.md) as a user would, and checks what it prints:
//   * --ids <prompt_ids> --max-new-tokens <G>: stdout must be generated_ids, comma-separated;
//   * --dump-logits for each row of input_ids: the file must hold golden logits (README
//     tolerances, the same judge as linattn-conformance).
// Exit status 0 when everything matches.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <unistd.h>

#include "generate/id_list.hpp"
#include "common/golden.hpp"


int main(int argc, char** argv) {
  using namespace linattn;
  if (argc != 3) {
    std::cerr << "usage: linattn-generate-check GENERATE_EXE MODEL_DIR\n";
    return 2;
  }
  const std::string exe = argv[1], dir = argv[2];
  bool ok = true;
  try {
    const io::SafeTensorsFile golden(std::filesystem::path(dir) / "golden.safetensors");
    const auto prompt = golden.read_array<std::int64_t, 2>("prompt_ids");
    const auto gen = golden.read_array<std::int64_t, 2>("generated_ids");
    for (index_t p = 0; p < prompt.size(0); ++p) {
      const std::string want = examples::format_ids({gen.cview().ptr(p), static_cast<std::size_t>(gen.size(1))});
      const std::string got = examples::capture_stdout("'" + exe + "' --model '" + dir + "' --ids " + examples::format_ids({prompt.cview().ptr(p), static_cast<std::size_t>(prompt.size(1))}) +
                            " --max-new-tokens " + std::to_string(gen.size(1)) + " 2>/dev/null");
      const bool same = got == want;
      std::printf("%s generated_ids[%lld] %s%s\n", dir.c_str(), static_cast<long long>(p), same ? "PASS" : "FAIL",
                  same ? "" : (" got " + got + " want " + want).c_str());
      ok &= same;
    }
    const auto ids = golden.read_array<std::int64_t, 2>("input_ids");
    const auto want = golden.read_array<float, 3>("logits");
    const bool ternary = io::Checkpoint(dir).require<std::string>("model_type") == "hgrn_bit";
    const auto tmp = std::filesystem::temp_directory_path() / ("linattn-logits-" + std::to_string(::getpid()) + ".safetensors");
    for (index_t b = 0; b < ids.size(0); ++b) {
      examples::capture_stdout("'" + exe + "' --model '" + dir + "' --ids " + examples::format_ids({ids.cview().ptr(b), static_cast<std::size_t>(ids.size(1))}) + " --dump-logits '" +
          tmp.string() + "' 2>/dev/null");
      const auto got = io::SafeTensorsFile(tmp).read_array<float, 2>("logits", {ids.size(1), want.size(2)});
      std::filesystem::remove(tmp);
      const auto e = examples::detail::errors(got.data(), want.cview().ptr(b), got.numel(), want.size(2), 1e-4);
      const bool pass = ternary ? e.mean_abs <= 1e-3 && e.max_abs <= 5e-2 : e.max_abs <= 1e-3;
      std::printf("%s logits[%lld] max_abs=%.3g mean_abs=%.3g %s\n", dir.c_str(), static_cast<long long>(b), e.max_abs,
                  e.mean_abs, pass ? "PASS" : "FAIL");
      ok &= pass;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", dir.c_str(), e.what());
    return 1;
  }
  return ok ? 0 : 1;
}
