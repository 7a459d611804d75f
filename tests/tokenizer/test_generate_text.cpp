// linattn-generate with text in and text out: a copy of the golden tiny GLA model gets a tiny
// SentencePiece tokenizer.model (trained here); --prompt must print what the same run with
// --ids prints, decoded. The tokenizer has fewer ids (160) than the model (256): both runs sample
// among the tokenizer's ids only.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/tokenizer.hpp"
#include "support/tiny_tokenizer.hpp"

namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  INFO(command);
  REQUIRE(::pclose(p) == 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

TEST_CASE("linattn-generate: --prompt text equals the --ids run, decoded", "[tokenizer][cli]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("linattn-text-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(LINATTN_TEST_DATA_DIR) / "model_gla" / f, dir / f);
  linattn::test::train_tiny_tokenizer(dir, 256);
  const auto tok = linattn::examples::Tokenizer::load(dir / "tokenizer.model");
  REQUIRE(tok.vocab_size() <= 256);

  const std::string prompt = "the quick brown fox";
  const std::string exe = LINATTN_GENERATE_EXE;
  const std::string text = run("'" + exe + "' --model '" + dir.string() + "' --prompt '" + prompt +
                               "' --max-new-tokens 12 2>/dev/null");
  const auto prompt_ids = tok.encode(prompt, true);
  std::string ids_arg;
  for (auto id : prompt_ids) {
    if (!ids_arg.empty()) ids_arg += ',';
    ids_arg += std::to_string(id);
  }
  const std::string ids = run("'" + exe + "' --model '" + dir.string() + "' --ids " + ids_arg + " --max-new-tokens 12 2>/dev/null");
  std::vector<std::int64_t> all = prompt_ids;
  for (std::size_t pos = 0; pos < ids.size();) {
    const auto comma = ids.find(',', pos);
    all.push_back(std::stoll(ids.substr(pos, comma - pos)));
    pos = comma == std::string::npos ? ids.size() : comma + 1;
  }
  CHECK(all.size() >= prompt_ids.size() + 1);
  for (auto id : all) CHECK(id < tok.vocab_size());
  CHECK(text.rfind(prompt, 0) == 0);  // the prompt is echoed, then the continuation streams
  CHECK(text.substr(prompt.size()) == tok.decode(all).substr(tok.decode(prompt_ids).size()));
  fs::remove_all(dir);
}
