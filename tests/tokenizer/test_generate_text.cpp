// linattn-generate with text in and text out: a copy of the golden tiny GLA model gets a tiny
// SentencePiece tokenizer.model (trained here); --prompt must print what the same run with
// --ids prints, decoded. The tokenizer has fewer ids (160) than the model (256): both runs sample
// among the tokenizer's ids only.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/tokenizer.hpp"
#include "generate/id_list.hpp"
#include "support/temp_dir.hpp"
#include "support/tiny_tokenizer.hpp"

using linattn::examples::capture_stdout;

TEST_CASE("linattn-generate: --prompt text equals the --ids run, decoded", "[tokenizer][cli]") {
  namespace fs = std::filesystem;
  const linattn::test::TempDir scratch("text");
  const fs::path& dir = scratch.path();
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(LINATTN_TEST_DATA_DIR) / "model_gla" / f, dir / f);
  linattn::test::train_tiny_tokenizer(dir, 256);
  const auto tok = linattn::examples::Tokenizer::load(dir / "tokenizer.model");
  REQUIRE(tok.vocab_size() <= 256);

  const std::string prompt = "the quick brown fox";
  const std::string exe = LINATTN_GENERATE_EXE;
  const std::string text = capture_stdout("'" + exe + "' --model '" + dir.string() + "' --prompt '" + prompt +
                               "' --max-new-tokens 12 2>/dev/null");
  const auto prompt_ids = tok.encode(prompt, true);
  const std::string ids = capture_stdout("'" + exe + "' --model '" + dir.string() + "' --ids " +
                                         linattn::examples::format_ids(prompt_ids) + " --max-new-tokens 12 2>/dev/null");
  std::vector<std::int64_t> all = prompt_ids;
  for (auto id : linattn::examples::parse_ids(ids)) all.push_back(id);
  CHECK(all.size() >= prompt_ids.size() + 1);
  for (auto id : all) CHECK(id < tok.vocab_size());
  CHECK(text.rfind(prompt, 0) == 0);  // the prompt is echoed, then the continuation streams
  CHECK(text.substr(prompt.size()) == tok.decode(all).substr(tok.decode(prompt_ids).size()));
}

TEST_CASE("linattn-generate: a corrupt tokenizer.model breaks --prompt runs only, not --ids runs", "[tokenizer][cli]") {
  namespace fs = std::filesystem;
  const linattn::test::TempDir scratch("corrupt-tok");
  const fs::path& dir = scratch.path();
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(LINATTN_TEST_DATA_DIR) / "model_gla" / f, dir / f);
  const std::string exe = LINATTN_GENERATE_EXE;
  const std::string ids_run = "'" + exe + "' --model '" + dir.string() + "' --ids 1,2,3 --max-new-tokens 6";
  const std::string clean = capture_stdout(ids_run + " 2>/dev/null");
  { std::ofstream(dir / "tokenizer.model") << "this is not a protobuf"; }
  CHECK(capture_stdout(ids_run + " 2>/dev/null") == clean);  // succeeds (capture_stdout throws otherwise)
  CHECK_THAT(capture_stdout(ids_run + " 2>&1 >/dev/null"),
             Catch::Matchers::Contains("ignoring the tokenizer") && Catch::Matchers::Contains("tokenizer.model"));
  // A text prompt needs it: an error naming the file, exit status 1.
  const std::string prompt_run = "'" + exe + "' --model '" + dir.string() + "' --prompt hello --max-new-tokens 2";
  CHECK_THROWS(capture_stdout(prompt_run + " 2>/dev/null"));
  CHECK_THAT(capture_stdout("{ " + prompt_run + " 2>&1 >/dev/null; echo \"exit $?\"; }"),
             Catch::Matchers::Contains("tokenizer.model") && Catch::Matchers::Contains("exit 1"));
}
