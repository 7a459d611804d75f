// Tests of examples/common/tokenizer.hpp on tokenizers trained in-process
// (tests/support/tiny_tokenizer.hpp): loading, round trips, bos, byte fallback, streaming.
// A separate binary (linattn_tokenizer_tests): only it links SentencePiece.
#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "support/tiny_tokenizer.hpp"
#include "common/tokenizer.hpp"

namespace fs = std::filesystem;
using linattn::examples::Tokenizer;
using Catch::Matchers::Contains;
using linattn::test::TempDir;

namespace {

// One tokenizer per vocabulary size for the whole run (training takes ~20 ms, but there is no
// reason to repeat it in every test case).
const Tokenizer& tiny(int vocab) {
  static TempDir dir("tok");
  static std::optional<Tokenizer> t256, t384;
  auto& slot = vocab == 256 ? t256 : t384;
  if (!slot) {
    const auto sub = dir.path() / std::to_string(vocab);
    linattn::test::train_tiny_tokenizer(sub, vocab);
    slot = Tokenizer::open_if_present(sub);
    REQUIRE(slot.has_value());
  }
  return *slot;
}

// Strict UTF-8 check: no truncated, overlong or surrogate sequences.
bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) { n = 1; cp = c; }
    else if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
    else return false;
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

// Streams `ids` after `context` and returns every chunk (the last one from finish()).
std::vector<std::string> stream_chunks(const Tokenizer& t, const std::vector<std::int64_t>& ids,
                                       const std::vector<std::int64_t>& context = {}) {
  auto s = t.stream(context);
  std::vector<std::string> chunks;
  for (auto id : ids) chunks.push_back(s.push(id));
  chunks.push_back(s.finish());
  CHECK(std::vector<std::int64_t>(s.generated().begin(), s.generated().end()) == ids);
  return chunks;
}

std::string concat(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s;
  return out;
}

const std::vector<std::string> kTexts = {
    "The model reads the next word.",
    "Hello wörld, naïve café!",            // H, ö are not all in the corpus: byte fallback
    "Emoji 🙂 and rockets 🚀 fly ✨.",      // 4-byte characters
    "日本語のテキスト and 中文 mixed.",     // 中文 is unseen: 3-byte characters through byte fallback
    "x",
    "",
};

}  // namespace

TEST_CASE("tokenizer: opens tokenizer.model from a model directory", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  CHECK(t.vocab_size() == 384);
  CHECK(t.unk_id() == 0);
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_id() == 2);
  CHECK(t.piece(1) == "<s>");
  CHECK(t.piece(2) == "</s>");
  CHECK(t.path().filename() == "tokenizer.model");

  TempDir empty;
  CHECK_FALSE(Tokenizer::open_if_present(empty.path()).has_value());

  const Tokenizer& small = tiny(256);
  CHECK(small.vocab_size() <= 256);  // fits the golden tiny models' vocabulary
  CHECK(small.vocab_size() > 100);
}

TEST_CASE("tokenizer: a corrupt tokenizer.model is an error naming the path", "[tokenizer]") {
  TempDir dir("tok");
  { std::ofstream(dir.path() / "tokenizer.model") << "this is not a protobuf"; }
  try {
    (void)Tokenizer::open_if_present(dir.path());
    FAIL("no exception for a corrupt tokenizer.model");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Contains((dir.path() / "tokenizer.model").string()));
  }
  CHECK_THROWS_WITH(Tokenizer::load(dir.path() / "missing.model"), Contains("missing.model"));
}

TEST_CASE("tokenizer: encode / decode round trip, with byte fallback for unseen characters", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  for (const auto& text : kTexts) {
    INFO(text);
    const auto ids = t.encode(text, false);
    for (auto id : ids) {
      REQUIRE(id >= 0);
      REQUIRE(id < t.vocab_size());
      CHECK(id != t.unk_id());  // byte fallback: nothing is unknown
    }
    CHECK(t.decode(ids) == text);
  }
  // 中 (U+4E2D) is not in the corpus, so it must be three byte pieces.
  const auto ids = t.encode("中", false);
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(t.piece(id));
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xE4>") == 1);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xB8>") == 1);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xAD>") == 1);
}

TEST_CASE("tokenizer: add_bos puts the bos id first; control ids decode to nothing", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  for (const auto& text : kTexts) {
    auto plain = t.encode(text, false);
    auto with = t.encode(text, true);
    REQUIRE(with.size() == plain.size() + 1);
    CHECK(with.front() == t.bos_id());
    CHECK(std::equal(plain.begin(), plain.end(), with.begin() + 1));
    with.push_back(t.eos_id());
    CHECK(t.decode(with) == text);
  }
}

TEST_CASE("tokenizer: without byte fallback unseen characters are <unk>", "[tokenizer]") {
  const Tokenizer& t = tiny(256);
  const auto ids = t.encode("The model 中", false);
  CHECK(std::find(ids.begin(), ids.end(), t.unk_id()) != ids.end());
  CHECK_THAT(t.decode(ids), Contains("The model"));
  CHECK(t.decode(t.encode("The model reads", false)) == "The model reads");
}

TEST_CASE("tokenizer: streaming equals the whole decode and never splits a character", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  for (const auto& text : kTexts) {
    INFO(text);
    const auto ids = t.encode(text, true);
    const auto chunks = stream_chunks(t, ids);
    CHECK(concat(chunks) == text);
    for (const auto& c : chunks) CHECK(valid_utf8(c));
  }
  // The byte pieces of one character: nothing until the last byte, then the whole character.
  const std::vector<std::int64_t> rocket = t.encode("🚀", false);
  std::vector<std::int64_t> bytes;
  for (auto id : rocket)
    if (t.piece(id).starts_with("<0x")) bytes.push_back(id);
  if (bytes.size() == 4) {  // 🚀 appears in the corpus, so it may be a piece of its own; 🛸 is not
    auto chunks = stream_chunks(t, bytes);
    CHECK(chunks[0].empty());
    CHECK(chunks[1].empty());
    CHECK(chunks[2].empty());
    CHECK(chunks[3] == "🚀");
  }
  const auto ufo = t.encode("🛸", false);  // U+1F6F8: F0 9F 9B B8, unseen
  std::vector<std::int64_t> ufo_bytes;
  for (auto id : ufo)
    if (t.piece(id).starts_with("<0x")) ufo_bytes.push_back(id);
  REQUIRE(ufo_bytes.size() == 4);
  const auto chunks = stream_chunks(t, ufo_bytes);
  CHECK(chunks == std::vector<std::string>{"", "", "", "🛸", ""});
}

TEST_CASE("tokenizer: streaming after a prompt keeps the space before the first generated word", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  const std::string text = "The model reads the next word.";
  const auto ids = t.encode(text, true);
  for (std::size_t cut = 1; cut < ids.size(); ++cut) {
    INFO("prompt of " << cut << " ids");
    const std::vector<std::int64_t> prompt(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(cut));
    const std::vector<std::int64_t> rest(ids.begin() + static_cast<std::ptrdiff_t>(cut), ids.end());
    const std::string prompt_text = t.decode(prompt);
    CHECK(prompt_text + concat(stream_chunks(t, rest, prompt)) == text);
  }
}

TEST_CASE("tokenizer: streaming random id sequences equals decode (byte pieces in any order)", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  // Byte pieces are ids 3..258 here; sequences mix them with ordinary pieces so that valid,
  // truncated and stray multi-byte sequences all occur.
  std::uint64_t x = 12345;
  auto next = [&] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<std::int64_t> ids;
    const int n = 1 + static_cast<int>(next() % 24);
    for (int i = 0; i < n; ++i) {
      const auto r = next() % 10;
      if (r < 5) ids.push_back(3 + static_cast<std::int64_t>(0xC0 + next() % 0x38));   // lead bytes C0..F7
      else if (r < 8) ids.push_back(3 + static_cast<std::int64_t>(0x80 + next() % 0x40));  // continuation bytes
      else ids.push_back(static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(t.vocab_size())));
    }
    INFO("trial " << trial);
    const auto chunks = stream_chunks(t, ids);
    CHECK(concat(chunks) == t.decode(ids));
    for (std::size_t i = 0; i + 1 < chunks.size(); ++i) CHECK(valid_utf8(chunks[i]));
  }
  CHECK(t.piece(3 + 0xE4) == "<0xE4>");  // the assumption above about where byte pieces live
}

TEST_CASE("tokenizer: ids outside the vocabulary are rejected with the id", "[tokenizer]") {
  const Tokenizer& t = tiny(384);
  CHECK_THROWS_AS(t.decode(std::vector<std::int64_t>{5, 384}), std::invalid_argument);
  CHECK_THROWS_WITH(t.decode(std::vector<std::int64_t>{5, 384}), Contains("384"));
  CHECK_THROWS_WITH(t.decode(std::vector<std::int64_t>{-1}), Contains("-1"));
  auto s = t.stream();
  CHECK_THROWS_WITH(s.push(1000), Contains("1000"));
  CHECK_THROWS_WITH(t.piece(999), Contains("999"));
}

namespace {

// A long random "generation" over the whole vocabulary of `t`: ordinary pieces, complete UTF-8
// characters spelled as byte pieces (when the vocabulary has them), stray bytes, control and
// unknown ids, in runs, as a model might emit them.
std::vector<std::int64_t> long_generation(const Tokenizer& t, std::size_t n, std::uint64_t seed) {
  std::uint64_t x = seed;
  auto next = [&] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  const bool bytes = t.vocab_size() >= 259 && t.piece(3) == "<0x00>";
  const std::vector<std::string> chars = {"中", "文", "é", "🛸", "€", "x"};
  std::vector<std::int64_t> ids;
  while (ids.size() < n) {
    const auto r = next() % 100;
    if (bytes && r < 25) {  // a whole character as byte pieces
      for (unsigned char c : chars[next() % chars.size()]) ids.push_back(3 + c);
    } else if (bytes && r < 35) {  // a stray byte: lead, continuation or ASCII
      ids.push_back(3 + static_cast<std::int64_t>(next() % 256));
    } else if (r < 38) {
      ids.push_back(static_cast<std::int64_t>(next() % 3));  // unk, bos, eos
    } else {
      ids.push_back(static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(t.vocab_size())));
    }
  }
  ids.resize(n);
  return ids;
}

}  // namespace

TEST_CASE("tokenizer: streaming a long generation equals decode, after a prompt, with byte pieces", "[tokenizer]") {
  for (int vocab : {384, 256}) {
    const Tokenizer& t = tiny(vocab);
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      INFO("vocab " << vocab << " seed " << seed);
      const auto prompt = t.encode("The model reads", true);
      const auto gen = long_generation(t, 3000, seed);
      std::vector<std::int64_t> all = prompt;
      all.insert(all.end(), gen.begin(), gen.end());
      const std::string streamed = concat(stream_chunks(t, gen, prompt));
      const std::string whole = t.decode(all);
      REQUIRE(whole.rfind(t.decode(prompt), 0) == 0);
      CHECK(streamed == whole.substr(t.decode(prompt).size()));
      // Without a context, and starting with control ids and spaces (the leading-space rule
      // applies to the first piece with text, wherever it is).
      std::vector<std::int64_t> bare = {t.bos_id(), t.bos_id(), t.eos_id()};
      for (auto id : t.encode(" spaced words", false)) bare.push_back(id);
      bare.insert(bare.end(), gen.begin(), gen.begin() + 500);
      CHECK(concat(stream_chunks(t, bare)) == t.decode(bare));
    }
  }
}

TEST_CASE("tokenizer: streaming costs O(1) decoded ids per push, not a decode of everything", "[tokenizer]") {
  for (int vocab : {384, 256}) {
    const Tokenizer& t = tiny(vocab);
    INFO("vocab " << vocab);
    const auto prompt = t.encode("The model reads the next word.", true);
    const auto gen = long_generation(t, 5000, 7);
    auto s = t.stream(prompt);
    const std::size_t after_context = s.decoded_ids();
    CHECK(after_context <= prompt.size() + 1);
    for (auto id : gen) (void)s.push(id);
    (void)s.finish();
    // Each push decodes the anchor piece, the few held-back bytes and the new id: a handful of
    // ids, however long the generation (a whole-sequence decode would be ~12.5 million here).
    CHECK(s.decoded_ids() - after_context <= 8 * gen.size());
  }
}
