// A tiny SentencePiece tokenizer trained in-process, for tests that need a real tokenizer.model
// next to a tiny model. Built into the library linattn_test_tiny_tokenizer (tests/CMakeLists.txt),
// which exists only when SentencePiece was found; link it and this header works.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace linattn::test {

// The corpus the tokenizer is trained on (deterministic): English-like sentences with some
// Latin-1, Greek, CJK and emoji text so multi-byte characters and byte fallback are exercised.
std::vector<std::string> tiny_corpus();

// Trains a unigram SentencePiece model on tiny_corpus() and writes `dir`/tokenizer.model
// (+ tokenizer.vocab); returns the model path. Llama-style ids: unk 0, bos 1, eos 2.
// byte_fallback needs 256 byte pieces + 3 specials, so it is used only when vocab_size >= 300;
// smaller vocabularies (e.g. 256 for the golden tiny models) map unseen characters to <unk>.
// The vocabulary may come out smaller than vocab_size if the corpus has too few pieces
// (hard_vocab_limit is off). Takes about a second. Throws std::runtime_error if training fails.
std::filesystem::path train_tiny_tokenizer(const std::filesystem::path& dir, int vocab_size);

}  // namespace linattn::test
