// linattn-fuzz-seeds OUT DATA_DIR: writes the fuzz harnesses' seed corpora and regression inputs
// under OUT (built and run by tests/fuzz/CMakeLists.txt, so no seed blob is committed):
//   OUT/<harness>/       seeds: the small golden files of DATA_DIR, micro checkpoints of the three
//                        families (linattn-make-checkpoint's writer: a few KB each), files of every
//                        dtype, tiny tokenizers, command lines
//   OUT/regressions/     inputs for known crashers and hangs, run once each by ctest
//                        (fuzz.<harness>.regressions): JSON nested 10^6 deep in a safetensors
//                        header, a config.json and an index; a header of 160k tensors; a
//                        tokenizer.model with a one-NUL-byte piece
// Everything is rewritten on each run; the output depends on nothing but the sources.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "make_checkpoint/checkpoint_maker.hpp"
#if LINATTN_HAVE_TINY_TOKENIZER
#include <unordered_map>

#include <sentencepiece_trainer.h>

#include "support/tiny_tokenizer.hpp"
#endif

namespace fs = std::filesystem;
using linattn::index_t;
using linattn::examples::CheckpointSpec;
using linattn::examples::Family;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  if (!in && !in.eof()) throw std::runtime_error("cannot read " + p.string());
  return s.str();
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string join(const std::vector<std::string>& files) {
  std::string s;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (i) s += linattn::fuzz::kFileSeparator;
    s += files[i];
  }
  return s;
}

// A safetensors file: the 8-byte length, the header, the data.
std::string safetensors(const std::string& header, const std::string& data = "") {
  std::string s(8, '\0');
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s + header + data;
}

// The smallest checkpoints each family's loader accepts in full: vocab 16, hidden 8, 1 layer.
CheckpointSpec micro(Family f) {
  CheckpointSpec s = linattn::examples::upstream_defaults(f);
  s.vocab_size = 16;
  s.hidden_size = 8;
  s.num_hidden_layers = 1;
  s.num_heads = f == Family::hgrn_bit ? 1 : 2;
  s.num_slots = 4;
  s.intermediate_size = 16;
  s.initializer_range = 0.05;
  s.norm_noise = 0.1;
  return s;
}

std::vector<std::pair<std::string, CheckpointSpec>> micro_specs() {
  std::vector<std::pair<std::string, CheckpointSpec>> v;
  for (Family f : {Family::gla, Family::gsa, Family::hgrn_bit}) {
    const std::string name(linattn::examples::family_name(f));
    v.emplace_back(name, micro(f));
    CheckpointSpec conv = micro(f);
    if (f != Family::hgrn_bit) {
      conv.use_short_conv = true;
      conv.num_kv_heads = 1;
      v.emplace_back(name + "_conv_gqa", conv);
    }
    CheckpointSpec tied = micro(f);
    tied.tie_word_embeddings = true;
    tied.dtype = linattn::io::DType::BF16;
    v.emplace_back(name + "_tied_bf16", tied);
    CheckpointSpec f16 = micro(f);
    f16.dtype = linattn::io::DType::F16;
    f16.legacy_mlp = f != Family::hgrn_bit;
    v.emplace_back(name + "_f16_legacy", f16);
  }
  return v;
}

// config.json, then the weight files, of a checkpoint written to a scratch directory.
std::vector<std::string> checkpoint_files(const CheckpointSpec& s, const fs::path& scratch) {
  fs::remove_all(scratch);
  linattn::examples::write_checkpoint(s, scratch);
  std::vector<std::string> files = {read(scratch / "config.json")};
  if (s.shards == 1) {
    files.push_back(read(scratch / "model.safetensors"));
  } else {
    files.push_back(read(scratch / "model.safetensors.index.json"));
    for (int i = 1; i <= s.shards; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i, s.shards);
      files.push_back(read(scratch / name));
    }
  }
  return files;
}

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Protobuf wire format, enough to spell a SentencePiece ModelProto by hand.
void varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
  out += static_cast<char>(v);
}
void length_field(std::string& out, int field, const std::string& bytes) {
  varint(out, static_cast<std::uint64_t>(field) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
// ModelProto.pieces entry: piece (1), score (2, float 0), type (3).
std::string sentencepiece_piece(const std::string& piece, int type) {
  std::string m;
  length_field(m, 1, piece);
  m += '\x15';
  m += std::string(4, '\0');
  varint(m, 3 << 3);
  varint(m, static_cast<std::uint64_t>(type));
  return m;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 3) {
    std::cerr << "usage: linattn-fuzz-seeds OUT DATA_DIR\n";
    return 2;
  }
  const fs::path out = argv[1], data = argv[2];
  fs::remove_all(out);
  const fs::path scratch = out / ".scratch";
  fs::create_directories(scratch);

  // ---- safetensors: small golden files, micro models, every dtype, edge headers ----
  const fs::path st = out / "safetensors";
  for (const auto& e : fs::directory_iterator(data))
    if (e.path().extension() == ".safetensors" && e.file_size() <= 16384)
      write(st / e.path().filename(), read(e.path()));
  {
    linattn::io::SafeTensorsWriter w;
    w.add("f64", std::vector<double>{1.5, -2, 1e300}, {3});
    w.add("f32", std::vector<float>{0.5f, -1, 3}, {1, 3});
    w.add("i64", std::vector<std::int64_t>{-1, 1ll << 40}, {2});
    w.add("i32", std::vector<std::int32_t>{-7, 7}, {2, 1});
    w.add("i16", std::vector<std::int16_t>{-300}, {1});
    w.add("i8", std::vector<std::int8_t>{-1, 0, 1}, {3});
    w.add("u64", std::vector<std::uint64_t>{~0ull}, {1});
    w.add("u32", std::vector<std::uint32_t>{4000000000u}, {1});
    w.add("u16", std::vector<std::uint16_t>{65535}, {1});
    w.add("u8", std::vector<std::uint8_t>{255, 0}, {2});
    w.add("bool", std::vector<bool>{true, false}, {2});
    const std::vector<std::uint16_t> half = {0x3C00, 0x7C00, 0x7E00, 0x0001};  // 1, inf, NaN, subnormal
    w.add("f16", linattn::io::DType::F16, {4}, half.data());
    w.add("bf16", linattn::io::DType::BF16, {4}, half.data());
    w.add("empty", std::vector<float>{}, {0, 5});
    w.add("scalar", std::vector<float>{42}, {});
    w.set_metadata("format", "pt");
    w.set_metadata("json", R"({"a": [1, 2, {"b": null}]})");
    w.write(scratch / "dtypes.safetensors");
    write(st / "dtypes.safetensors", read(scratch / "dtypes.safetensors"));
  }
  write(st / "empty_header.safetensors", safetensors("{}"));
  write(st / "metadata_only.safetensors", safetensors(R"({"__metadata__":{"k":"v"}})"));
  write(st / "overflow_shape.safetensors",
        safetensors(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"));
  write(st / "overflow_offsets.safetensors",
        safetensors(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", "x"));

  // ---- checkpoint and shards: micro checkpoints of every family and layout ----
  for (const auto& [name, spec] : micro_specs()) {
    write(out / "checkpoint" / (name + ".ckpt"), join(checkpoint_files(spec, scratch / name)));
    write(st / ("model_" + name + ".safetensors"), checkpoint_files(spec, scratch / name)[1]);
    CheckpointSpec sharded = spec;
    sharded.shards = 2;
    write(out / "shards" / (name + ".ckpt"), join(checkpoint_files(sharded, scratch / name)));
  }
  // The golden tiny models' configs with a micro checkpoint's weights (shapes then disagree).
  for (const char* m : {"model_gla", "model_gsa", "model_hgrn_bit"}) {
    const std::string family = std::string(m).substr(6);
    const auto micro_files = checkpoint_files(micro(linattn::examples::parse_family(family)), scratch / m);
    write(out / "checkpoint" / (std::string(m) + "_config.ckpt"), join({read(data / m / "config.json"), micro_files[1]}));
  }
  {
    CheckpointSpec three = micro(Family::gla);
    three.num_hidden_layers = 2;
    three.shards = 3;
    write(out / "shards" / "gla_3_shards.ckpt", join(checkpoint_files(three, scratch / "three")));
  }

  // ---- tokenizer: tiny SentencePiece models (unigram and BPE, with and without byte fallback),
  // trained on tests/support's corpus with the identity normaliser: without its ~230 KB NFKC
  // character map a model is a few KB, a size a fuzzer can mutate.
#if LINATTN_HAVE_TINY_TOKENIZER
  {
    const fs::path dir = scratch / "tok";
    fs::create_directories(dir);
    {
      std::ofstream corpus(dir / "corpus.txt");
      for (const auto& line : linattn::test::tiny_corpus()) corpus << line << "\n";
    }
    for (const char* type : {"unigram", "bpe"})
      for (int vocab : {256, 384}) {
        const std::string name = std::string(type) + "_" + std::to_string(vocab);
        const bool bytes = vocab >= 300;
        const std::unordered_map<std::string, std::string> args = {
            {"input", (dir / "corpus.txt").string()}, {"model_prefix", (dir / name).string()},
            {"model_type", type}, {"vocab_size", std::to_string(vocab)}, {"hard_vocab_limit", "false"},
            {"character_coverage", bytes ? "0.9995" : "1.0"}, {"byte_fallback", bytes ? "true" : "false"},
            {"normalization_rule_name", "identity"}, {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"},
            {"pad_id", "-1"}, {"num_threads", "1"}, {"minloglevel", "2"}};
        const auto status = sentencepiece::SentencePieceTrainer::Train(args);
        if (!status.ok()) throw std::runtime_error("training the " + name + " tokenizer: " + status.ToString());
        write(out / "tokenizer" / (name + ".model"), read(dir / (name + ".model")));
      }
  }
#endif
  write(out / "tokenizer" / "not_a_model", "this is not a protobuf");

  // ---- generate_options: command lines, arguments separated by NUL ----
  const std::vector<std::vector<std::string>> lines = {
      {"--model", "m", "--ids", "1,2,3", "--max-new-tokens", "4"},
      {"--model", "m", "--prompt", "hello", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--seed", "7"},
      {"--model", "m", "--ids", "5", "--threads", "2", "--packing", "1.6", "--form", "chunk", "--reference"},
      {"--model", "m", "--ids", "9223372036854775807", "--dump-logits", "x.safetensors", "--top-p", "2"},
      {"--model", "m", "--ids", "1", "--seed", "18446744073709551615", "--max-new-tokens", "0"},
      {"--help"},
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string s;
    for (std::size_t a = 0; a < lines[i].size(); ++a) s += (a ? std::string(1, '\0') : "") + lines[i][a];
    write(out / "generate_options" / ("line" + std::to_string(i)), s);
  }

  // ---- regressions: inputs that crashed or hung the library once ----
  const fs::path reg = out / "regressions";
  constexpr std::size_t kDeep = 1'000'000;
  write(reg / "safetensors" / "deep_array_header.safetensors", safetensors("{\"t\":" + nested(kDeep) + "}"));
  write(reg / "safetensors" / "deep_metadata.safetensors", safetensors("{\"__metadata__\":{\"k\":" + nested(kDeep) + "}}"));
  {
    std::string h = "{";
    constexpr int kTensors = 160'000;  // 47 s to parse with a DOM of ordered_json
    for (int i = 0; i < kTensors; ++i)
      h += (i ? "," : "") + ("\"t" + std::to_string(i) + "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}");
    write(reg / "safetensors" / "many_tensors.safetensors", safetensors(h + "}"));
  }
  const auto gla = checkpoint_files(micro(Family::gla), scratch / "reg");
  write(reg / "checkpoint" / "deep_config.ckpt",
        join({"{\"model_type\": \"gla\", \"x\": " + nested(kDeep) + "}", gla[1]}));
  write(reg / "checkpoint" / "deep_header.ckpt", join({gla[0], safetensors("{\"t\":" + nested(kDeep) + "}")}));
  {
    CheckpointSpec two = micro(Family::gla);
    two.shards = 2;
    auto files = checkpoint_files(two, scratch / "reg2");
    files[1] = "{\"weight_map\": " + nested(kDeep) + "}";
    write(reg / "shards" / "deep_index.ckpt", join(files));
  }
  {
    // A piece that is one NUL byte: SentencePiece's trie builder throws
    // Darts::Details::Exception from Load() instead of returning a status (found by
    // linattn-fuzz-tokenizer; Tokenizer::load now turns it into std::runtime_error).
    std::string proto;
    for (const auto& [piece, type] : std::vector<std::pair<std::string, int>>{
             {"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"a", 1}, {std::string(1, '\0'), 1}})
      length_field(proto, 1, sentencepiece_piece(piece, type));
    write(reg / "tokenizer" / "nul_piece.model", proto);
  }
  fs::remove_all(scratch);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "linattn-fuzz-seeds: " << e.what() << "\n";
  return 1;
}
