// linattn-generate's command-line parser (examples/generate/options.hpp): every value is checked
// at parse time, numbers are plain decimal and range-checked, --ids items are token ids.
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "generate/options.hpp"

using linattn::examples::GenerateOptions;
using linattn::examples::UsageError;
using Catch::Matchers::Contains;

namespace {

GenerateOptions parse(std::vector<std::string> extra, bool with_ids = true) {
  std::vector<std::string> args = {"--model", "m"};
  if (with_ids) args.insert(args.end(), {"--ids", "1,2"});
  args.insert(args.end(), extra.begin(), extra.end());
  return linattn::examples::parse_generate_options(args);
}

std::string error_of(std::vector<std::string> extra, bool with_ids = true) {
  try {
    (void)parse(std::move(extra), with_ids);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("generate options: a full command line", "[cli]") {
  const auto a = parse({"--max-new-tokens", "0", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--seed",
                        "18446744073709551615", "--threads", "3", "--packing", "1.6", "--form", "chunk", "--reference",
                        "--dump-logits", "out.safetensors", "--ids", "0,9223372036854775807"});
  CHECK(a.model == "m");
  REQUIRE(a.ids.size() == 2);
  CHECK(a.ids[0] == std::vector<std::int64_t>{1, 2});
  CHECK(a.ids[1] == std::vector<std::int64_t>{0, std::numeric_limits<std::int64_t>::max()});
  CHECK(a.max_new_tokens == 0);
  CHECK(a.sampling.temperature == 0.8f);
  CHECK(a.sampling.top_k == 40);
  CHECK(a.sampling.top_p == 0.95f);
  CHECK(a.sampling.seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(a.threads == 3);
  CHECK(a.packing == linattn::ternary::Packing::base3);
  CHECK(a.form == linattn::nn::Form::chunk);
  CHECK(a.reference);
  CHECK(a.dump_logits == "out.safetensors");
  CHECK(parse({"--form", "fused_chunk"}).form == linattn::nn::Form::fused_chunk);
  CHECK(parse({"--help"}).help);
  CHECK(parse({"--prompt", "hi"}, false).prompts == std::vector<std::string>{"hi"});
}

TEST_CASE("generate options: sampling values are checked even when no sampler is built", "[cli]") {
  // --max-new-tokens 0 and --dump-logits never build a sampler: the values are still errors.
  for (const std::vector<std::string>& when : {std::vector<std::string>{"--max-new-tokens", "0"},
                                              std::vector<std::string>{"--dump-logits", "x.safetensors"},
                                              std::vector<std::string>{}}) {
    auto with = [&](std::vector<std::string> v) {
      v.insert(v.end(), when.begin(), when.end());
      return error_of(v);
    };
    CHECK_THAT(with({"--top-p", "2"}), Contains("--top-p") && Contains("(0, 1]"));
    CHECK_THAT(with({"--top-p", "0"}), Contains("--top-p"));
    CHECK_THAT(with({"--top-p", "-0.5"}), Contains("--top-p"));
    CHECK_THAT(with({"--top-p", "nan"}), Contains("--top-p"));
    CHECK_THAT(with({"--temperature", "-1"}), Contains("--temperature") && Contains(">= 0"));
    CHECK_THAT(with({"--temperature", "nan"}), Contains("--temperature"));
    CHECK_THAT(with({"--temperature", "inf"}), Contains("--temperature"));
    CHECK_THAT(with({"--top-k", "-1"}), Contains("--top-k") && Contains(">= 0"));
  }
  CHECK(parse({"--top-p", "1", "--temperature", "0", "--top-k", "0"}).sampling.top_p == 1.0f);
}

TEST_CASE("generate options: numbers are plain decimal and within range", "[cli]") {
  CHECK_THAT(error_of({"--seed", "-1"}), Contains("--seed") && Contains("non-negative integer") && Contains("\"-1\""));
  CHECK_THAT(error_of({"--seed", "18446744073709551616"}), Contains("--seed") && Contains("18446744073709551615"));
  CHECK_THAT(error_of({"--seed", "+5"}), Contains("--seed"));
  CHECK_THAT(error_of({"--seed", " 5"}), Contains("--seed"));
  CHECK_THAT(error_of({"--seed", "0x10"}), Contains("--seed"));
  CHECK_THAT(error_of({"--seed", ""}), Contains("--seed"));
  CHECK_THAT(error_of({"--threads", "99999999999"}), Contains("--threads") && Contains("2147483647"));
  CHECK_THAT(error_of({"--threads", "-1"}), Contains("--threads must be >= 0"));
  CHECK_THAT(error_of({"--threads", "2.5"}), Contains("--threads"));
  CHECK_THAT(error_of({"--max-new-tokens", "99999999999999999999"}), Contains("--max-new-tokens") && Contains("9223372036854775807"));
  CHECK_THAT(error_of({"--max-new-tokens", "-3"}), Contains("--max-new-tokens must be >= 0"));
  CHECK_THAT(error_of({"--max-new-tokens", "1e3"}), Contains("--max-new-tokens"));
  CHECK_THAT(error_of({"--top-k", "99999999999"}), Contains("--top-k"));
  CHECK_THAT(error_of({"--temperature", "0.5x"}), Contains("--temperature expects a number"));
  CHECK_THAT(error_of({"--temperature", "+0.5"}), Contains("--temperature expects a number"));
  CHECK_THAT(error_of({"--temperature", ""}), Contains("--temperature expects a number"));
}

TEST_CASE("generate options: --ids items are token ids; other misuse", "[cli]") {
  CHECK_THAT(error_of({"--ids", "1,,2"}), Contains("--ids") && Contains("\"\""));
  CHECK_THAT(error_of({"--ids", "-1"}), Contains("--ids") && Contains("\"-1\""));
  CHECK_THAT(error_of({"--ids", "9223372036854775808"}), Contains("--ids") && Contains("out of range"));
  CHECK_THAT(error_of({"--ids", "1, 2"}), Contains("--ids") && Contains("\" 2\""));
  CHECK_THAT(error_of({"--ids", "+1"}), Contains("--ids"));
  CHECK_THAT(error_of({"--ids", ""}), Contains("--ids"));
  CHECK_THAT(error_of({"--bogus", "1"}), Contains("unknown option --bogus"));
  CHECK_THAT(error_of({"--seed"}), Contains("--seed needs a value"));
  CHECK_THAT(error_of({"--packing", "3"}), Contains("--packing"));
  CHECK_THAT(error_of({"--form", "fast"}), Contains("--form"));
  CHECK_THAT(error_of({}, false), Contains("give --prompt or --ids"));
  CHECK_THAT(error_of({"--prompt", "x"}), Contains("not both"));
  CHECK_THROWS_WITH(linattn::examples::parse_generate_options(std::vector<std::string>{"--ids", "1"}),
                    Contains("--model is required"));
}
