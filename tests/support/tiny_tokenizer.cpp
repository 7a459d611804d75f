// See tiny_tokenizer.hpp.
#include "support/tiny_tokenizer.hpp"

#include <fstream>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <sentencepiece_trainer.h>

namespace linattn::test {

std::vector<std::string> tiny_corpus() {
  // Combinations of a few word lists: enough distinct text for a unigram vocabulary of a few
  // hundred pieces, small enough to train in about a second.
  const char* subjects[] = {"The model", "A small network", "Our recurrent layer", "The gated state",
                            "Linear attention", "Each token", "The decoder", "A ternary weight"};
  const char* verbs[] = {"reads", "updates", "forgets", "writes", "computes", "stores", "predicts", "mixes"};
  const char* objects[] = {"the next word.", "a hidden vector.", "its memory slots.", "the key and value.",
                           "one chunk at a time.", "every head in parallel.", "the residual stream.",
                           "a prompt of text."};
  const char* extras[] = {"Café déjà vu, naïve façade.", "Grüße aus München!", "Ελληνικά γράμματα.",
                          "日本語のテキスト。", "数字 12345 и текст.", "Emoji: 🙂 🚀 ✨.",
                          "Tabs\tand  spaces.", "Numbers: 3.14159, 2.71828, 42."};
  std::vector<std::string> out;
  for (const char* s : subjects)
    for (const char* v : verbs)
      for (const char* o : objects) out.push_back(std::string(s) + " " + v + " " + o);
  for (int r = 0; r < 4; ++r)
    for (const char* e : extras) out.push_back(e);
  return out;
}

std::filesystem::path train_tiny_tokenizer(const std::filesystem::path& dir, int vocab_size) {
  std::filesystem::create_directories(dir);
  const auto corpus_path = dir / "tiny_corpus.txt";
  {
    std::ofstream f(corpus_path);
    for (const auto& line : tiny_corpus()) f << line << "\n";
    if (!f) throw std::runtime_error("train_tiny_tokenizer: cannot write " + corpus_path.string());
  }
  const bool byte_fallback = vocab_size >= 300;
  const std::unordered_map<std::string, std::string> args = {
      {"input", corpus_path.string()},
      {"model_prefix", (dir / "tokenizer").string()},
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(vocab_size)},
      {"hard_vocab_limit", "false"},
      {"character_coverage", byte_fallback ? "0.9995" : "1.0"},
      {"byte_fallback", byte_fallback ? "true" : "false"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"num_threads", "1"},
      {"minloglevel", "2"},  // quiet: training logs every EM step otherwise
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  std::filesystem::remove(corpus_path);
  if (!status.ok()) throw std::runtime_error("train_tiny_tokenizer: " + dir.string() + ": " + status.ToString());
  return dir / "tokenizer.model";
}

}  // namespace linattn::test
