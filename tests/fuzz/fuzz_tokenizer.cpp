// libFuzzer harness: examples/common/tokenizer.hpp on an arbitrary tokenizer.model. The input is
// written as tokenizer.model and loaded; when it loads, a fixed text is encoded and decoded, a few
// ids derived from the input are decoded and streamed (Tokenizer::Stream must equal decode()), and
// out-of-range ids must be rejected. Documented errors: std::runtime_error (load, encode,
// decode), std::invalid_argument (an id outside the vocabulary, add_bos without a bos piece).
// Built only when SentencePiece was found. SentencePiece itself is not instrumented for coverage,
// so this harness mostly finds crashes, not new paths, inside it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/tokenizer.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using linattn::examples::Tokenizer;
  static const auto path = linattn::fuzz::scratch_dir() / "tokenizer.model";
  linattn::fuzz::write_file(path, linattn::fuzz::as_text(data, size));
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::load(path));
  } catch (const std::runtime_error&) {
    return 0;
  }
  const std::int64_t V = tok->vocab_size();
  try {
    const auto ids = tok->encode("Hello wörld 🙂, the model reads.", tok->bos_id() >= 0);
    (void)tok->decode(ids);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  // Ids from the input's last bytes, streamed after a context of the first few.
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 48); ++i)
    ids.push_back(static_cast<std::int64_t>(data[size - 1 - i] * 131u % static_cast<std::uint64_t>(V)));
  try {
    // A context that does not end in byte pieces: the stream would hold an unfinished character
    // back and emit it later, where decode(context) renders it at once.
    std::vector<std::int64_t> context(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(ids.size() / 4));
    const std::vector<std::int64_t> gen(ids.begin() + static_cast<std::ptrdiff_t>(context.size()), ids.end());
    while (!context.empty() && tok->piece(context.back()).starts_with("<0x")) context.pop_back();
    ids = context;
    ids.insert(ids.end(), gen.begin(), gen.end());
    auto stream = tok->stream(context);
    std::string streamed;
    for (auto id : gen) streamed += stream.push(id);
    streamed += stream.finish();
    const std::string whole = tok->decode(ids), head = tok->decode(context);
    // The stream's documented property (a denormaliser may rewrite text across the context's end).
    if (!tok->denormalizes() && (whole.compare(0, head.size(), head) != 0 || streamed != whole.substr(head.size()))) {
      std::fprintf(stderr, "linattn fuzz: Tokenizer::Stream differs from decode()\n");
      std::abort();
    }
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  for (std::int64_t bad : {std::int64_t{-1}, V}) {
    try {
      (void)tok->piece(bad);
      std::abort();  // must have thrown
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
