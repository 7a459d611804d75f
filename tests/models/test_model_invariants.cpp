// Model-level invariants for the three families (checkpoints from the checkpoint maker):
// prefill + single steps = one full pass; a batch of prompts of different lengths generates
// exactly what each prompt generates alone (greedy and sampled); a cache is a value (snapshot and
// restore); the loader and the model reject bad input with messages that name the problem.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <thread>

#include <sys/stat.h>
#include <tuple>

#include "fixtures.hpp"

using namespace model_tests;
using linattn::examples::CheckpointSpec;
using linattn::examples::Family;

namespace {

// The tiny model, with short convolutions where the family has them: their caches are part of
// the state too.
void with_conv(CheckpointSpec& s) { s.use_short_conv = s.family != Family::hgrn_bit; }

std::string name_of(Family f) { return std::string(linattn::examples::family_name(f)); }

}  // namespace

TEST_CASE("Models: prefill + decode steps equal one full pass; caches are values", "[models]") {
  for (Family f : {Family::gla, Family::gsa, Family::hgrn_bit}) {
    SECTION(name_of(f)) {
      TempDir dir("inv-" + name_of(f));
      write_tiny_checkpoint(f, 21, with_conv, dir.path());
      const auto any = linattn::models::load_model(linattn::io::Checkpoint(dir.path()));
      std::visit(
          [&](const auto& model) {
            const index_t P = 70, S = 6, V = model.vocab_size();
            const auto ids = token_ids(P + S, V, 9);
            const auto full = full_logits(model, ids);
            auto cache = model.new_cache();
            Array<float, 2> last(Shape<2>{1, V});
            model.forward(std::span<const std::int64_t>(ids.data(), P), cache, last.view());
            CHECK(max_abs_diff(last.data(), full.cview().ptr(P - 1), V) <= 1e-4);
            const auto snapshot = cache;
            Array<float, 2> first_step(Shape<2>{1, V});
            for (index_t j = 0; j < S; ++j) {
              auto* c = &cache;
              model.step(std::span<const std::int64_t>(ids.data() + P + j, 1), std::span<decltype(c) const>(&c, 1),
                         last.view());
              if (j == 0) first_step = last;
              INFO("step " << j);
              CHECK(max_abs_diff(last.data(), full.cview().ptr(P + j), V) <= 1e-4);
            }
            CHECK(cache.tokens == P + S);
            CHECK_FALSE(cache == snapshot);
            cache = snapshot;  // restore and replay the first step: the same logits exactly
            auto* c = &cache;
            model.step(std::span<const std::int64_t>(ids.data() + P, 1), std::span<decltype(c) const>(&c, 1), last.view());
            CHECK(last == first_step);
          },
          any);
    }
  }
}

TEST_CASE("Models: a batch of prompts of different lengths generates what each generates alone", "[models]") {
  for (Family f : {Family::gla, Family::gsa, Family::hgrn_bit}) {
    SECTION(name_of(f)) {
      TempDir dir("batch-" + name_of(f));
      write_tiny_checkpoint(f, 21, with_conv, dir.path());
      const auto any = linattn::models::load_model(linattn::io::Checkpoint(dir.path()));
      std::visit(
          [&](const auto& model) {
            const std::vector<std::vector<std::int64_t>> prompts{token_ids(3, 256, 1), token_ids(70, 256, 2),
                                                                 token_ids(9, 256, 3)};
            for (float temperature : {0.0f, 0.9f}) {
              linattn::lm::GenerationOptions opt;
              opt.max_new_tokens = 10;
              opt.sampling.temperature = temperature;
              opt.sampling.top_k = 40;
              opt.sampling.top_p = 0.95f;
              opt.sampling.seed = 77;
              opt.stop_ids = {prompts[0][0]};  // some sequence may stop early; the others go on
              std::vector<std::pair<std::size_t, std::int64_t>> streamed;
              const auto batch = linattn::lm::generate(model, prompts, opt, [&](std::size_t p, std::int64_t id) {
                streamed.emplace_back(p, id);
              });
              std::size_t total = 0;
              for (std::size_t p = 0; p < prompts.size(); ++p) {
                const auto alone = linattn::lm::generate(model, {prompts[p]}, opt);
                INFO("prompt " << p << " temperature " << temperature);
                CHECK(batch.tokens[p] == alone.tokens[0]);
                CHECK(!batch.tokens[p].empty());
                total += batch.tokens[p].size();
              }
              CHECK(streamed.size() == total);
              CHECK(batch.stats.prompt_tokens == 82);
            }
          },
          any);
    }
  }
}

namespace {

// Rewrites model.safetensors of `dir` through `edit`, which gets every tensor and may change it.
void rewrite(const std::filesystem::path& dir,
             const std::function<bool(const std::string&, linattn::io::TensorInfo&, std::vector<std::byte>&)>& edit) {
  std::vector<std::tuple<std::string, linattn::io::DType, std::vector<index_t>, std::vector<std::byte>>> all;
  {
    const linattn::io::SafeTensorsFile f(dir / "model.safetensors");
    for (const auto& name : f.names()) {
      linattn::io::TensorInfo t = f.info(name);
      std::vector<std::byte> bytes(t.bytes.begin(), t.bytes.end());
      if (edit(name, t, bytes)) all.emplace_back(name, t.dtype, t.shape, std::move(bytes));
    }
  }
  linattn::io::SafeTensorsWriter w;
  for (auto& [name, dtype, shape, bytes] : all) w.add(name, dtype, shape, bytes.data());
  w.write(dir / "model.safetensors");
}

void edit_config(const std::filesystem::path& dir, const std::string& field, const nlohmann::json& value) {
  nlohmann::json c;
  std::ifstream(dir / "config.json") >> c;
  c[field] = value;
  std::ofstream(dir / "config.json") << c.dump(2);
}

std::string load_error(const std::filesystem::path& dir) {
  try {
    linattn::models::load_model(linattn::io::Checkpoint(dir));
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("Model loader: clear errors for bad checkpoints", "[models][errors]") {
  TempDir dir("loader-errors");
  CheckpointSpec spec = linattn::examples::tiny_spec(Family::gla);
  const auto fresh = [&] {
    std::filesystem::remove_all(dir.path());
    linattn::examples::write_checkpoint(spec, dir.path());
  };
  using Catch::Matchers::Contains;
  const std::string key = "model.layers.1.attn.k_proj.weight";

  fresh();
  REQUIRE(load_error(dir.path()) == "(no error)");

  fresh();
  rewrite(dir.path(), [&](const std::string& n, auto&, auto&) { return n != key; });
  CHECK_THAT(load_error(dir.path()), Contains(key) && Contains("no tensor"));

  fresh();
  rewrite(dir.path(), [&](const std::string& n, linattn::io::TensorInfo& t, auto&) {
    if (n == key) std::swap(t.shape[0], t.shape[1]);
    return true;
  });
  CHECK_THAT(load_error(dir.path()), Contains(key) && Contains("shape"));

  fresh();
  rewrite(dir.path(), [&](const std::string& n, linattn::io::TensorInfo& t, auto&) {
    if (n == key) t.dtype = linattn::io::DType::I32;
    return true;
  });
  CHECK_THAT(load_error(dir.path()), Contains(key) && Contains("dtype"));

  fresh();
  rewrite(dir.path(), [&](const std::string&, auto&, auto&) { return true; });
  std::filesystem::resize_file(dir.path() / "model.safetensors", std::filesystem::file_size(dir.path() / "model.safetensors") - 100);
  CHECK_THAT(load_error(dir.path()), Contains("model.safetensors"));

  fresh();
  edit_config(dir.path(), "model_type", "mamba");
  CHECK_THAT(load_error(dir.path()), Contains("model_type") && Contains("mamba"));

  fresh();
  edit_config(dir.path(), "feature_map", "softplus2");
  CHECK_THAT(load_error(dir.path()), Contains("feature_map") && Contains("softplus2"));

  fresh();
  edit_config(dir.path(), "hidden_act", "gelu");
  CHECK_THAT(load_error(dir.path()), Contains("hidden_act"));

  fresh();
  edit_config(dir.path(), "num_heads", "two");
  CHECK_THAT(load_error(dir.path()), Contains("num_heads"));

  fresh();
  edit_config(dir.path(), "num_hidden_layers", 1);  // layer 1's tensors are left over
  CHECK_THAT(load_error(dir.path()), Contains("not used") && Contains("model.layers.1."));

  fresh();
  std::filesystem::remove(dir.path() / "config.json");
  CHECK_THAT(load_error(dir.path()), Contains("config.json"));

  spec.shards = 2;
  fresh();
  std::filesystem::remove(dir.path() / "model-00002-of-00002.safetensors");
  CHECK_THAT(load_error(dir.path()), Contains("model-00002-of-00002.safetensors"));
  spec.shards = 1;

  fresh();
  const auto model = linattn::models::load_gla(linattn::io::Checkpoint(dir.path()));
  auto cache = model.new_cache();
  Array<float, 2> logits(Shape<2>{1, model.vocab_size()});
  const std::vector<std::int64_t> bad{5, 256};
  Array<float, 2> two(Shape<2>{2, model.vocab_size()});
  CHECK_THROWS_WITH(model.forward(std::span<const std::int64_t>(bad), cache, two.view()), Contains("256") && Contains("vocabulary"));
}

TEST_CASE("Model loader: hostile files (FIFOs, deep JSON) and a checkpoint shared by threads", "[models][errors][hardening][threads]") {
  TempDir dir("loader-hostile");
  const CheckpointSpec spec = linattn::examples::tiny_spec(Family::gla);
  const auto fresh = [&] {
    std::filesystem::remove_all(dir.path());
    linattn::examples::write_checkpoint(spec, dir.path());
  };
  using Catch::Matchers::Contains;
  for (const char* file : {"config.json", "model.safetensors"}) {
    fresh();
    std::filesystem::remove(dir.path() / file);
    REQUIRE(::mkfifo((dir.path() / file).c_str(), 0600) == 0);
    CHECK_THAT(load_error(dir.path()), Contains(file) && Contains("not a regular file"));
  }
  fresh();
  {
    const std::size_t depth = 1'000'000;
    std::ofstream(dir.path() / "config.json") << "{\"model_type\": \"gla\", \"x\": " << std::string(depth, '[')
                                              << std::string(depth, ']') << "}";
  }
  CHECK_THAT(load_error(dir.path()), Contains("config.json") && Contains("nests deeper than"));

  // floats() records the keys asked for; two threads loading from one Checkpoint must not race.
  fresh();
  const linattn::io::Checkpoint ckpt(dir.path());
  std::vector<std::thread> loaders;
  for (int t = 0; t < 2; ++t)
    loaders.emplace_back([&] {
      for (int r = 0; r < 20; ++r) (void)linattn::models::load_model(ckpt);
    });
  for (auto& th : loaders) th.join();
  CHECK(ckpt.unused_keys().empty());
}

namespace {

// Replaces the text of `file` in `dir`.
void write_text(const std::filesystem::path& dir, const std::string& file, const std::string& text) {
  std::ofstream(dir / file, std::ios::trunc) << text;
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  nlohmann::json j;
  std::ifstream(path) >> j;
  return j;
}

// Rewrites shard `file` with `extra` added (a tensor copied from another shard).
void add_to_shard(const std::filesystem::path& path, const std::string& name, const linattn::io::TensorInfo& t) {
  linattn::io::SafeTensorsWriter w;
  {
    const linattn::io::SafeTensorsFile f(path);
    for (const auto& n : f.names()) w.add(n, f.info(n).dtype, f.info(n).shape, f.info(n).bytes.data());
  }
  w.add(name, t.dtype, t.shape, t.bytes.data());
  w.write(path);
}

}  // namespace

TEST_CASE("Model loader: config values no model could use are named, never wrapped or truncated", "[models][errors][hardening]") {
  using Catch::Matchers::Contains;
  TempDir dir("loader-config");
  for (const Family family : {Family::gla, Family::gsa, Family::hgrn_bit}) {
    CheckpointSpec spec = linattn::examples::tiny_spec(family);
    const auto fresh = [&] {
      std::filesystem::remove_all(dir.path());
      linattn::examples::write_checkpoint(spec, dir.path());
    };
    struct Case {
      std::string field, value_json;
      std::vector<std::string> expect;
    };
    std::vector<Case> cases = {
        // 2^64-1 was reported as -1 (a u64 read through int64); 1e300 was an undefined conversion.
        {"hidden_size", "18446744073709551615", {"hidden_size", "18446744073709551615", "integer in"}},
        {"hidden_size", "1e300", {"hidden_size", "1e+300", "integer in"}},
        {"hidden_size", "4294967296", {"hidden_size", "absurd"}},
        {"num_hidden_layers", "2.5", {"num_hidden_layers", "integer"}},
        {"vocab_size", "-3", {"vocab_size", "positive"}},
        {"num_heads", "1e19", {"num_heads", "integer in"}},
        {"intermediate_size", "null", {}},  // with the hidden_ratio below
        {"hidden_ratio", "1e300", {"hidden_ratio"}},
    };
    if (family == Family::hgrn_bit) {
      cases.push_back({"expand_ratio", "1e300", {"expand_ratio"}});
      cases.push_back({"rms_norm_eps", "-1", {"rms_norm_eps", "[0, 1)"}});
      cases.push_back({"rms_norm_eps", "1e300", {"rms_norm_eps", "finite"}});
    } else {
      cases.push_back({"expand_k", "1e300", {"expand_k"}});
      cases.push_back({"norm_eps", "-1", {"norm_eps", "[0, 1)"}});
      cases.push_back({"norm_eps", "1e300", {"norm_eps", "finite"}});
    }
    if (family == Family::gsa) {
      // 2^62 + 8 slots: num_kv_heads x num_slots wrapped to the real f_proj rows before.
      cases.push_back({"num_slots", "4611686018427387912", {"num_slots", "absurd"}});
      cases.push_back({"gate_logit_normalizer", "1e300", {"gate_logit_normalizer"}});
      cases.push_back({"gate_logit_normalizer", "0", {"gate_logit_normalizer"}});
    }
    if (family == Family::gla) {
      cases.push_back({"clamp_min", "-1e300", {"clamp_min", "finite"}});
      cases.push_back({"clamp_min", "3", {"clamp_min", "<= 0"}});
    }
    for (const Case& c : cases) {
      if (c.expect.empty()) continue;
      INFO(name_of(family) << ": " << c.field << " = " << c.value_json);
      fresh();
      if (c.field == "hidden_ratio") edit_config(dir.path(), "intermediate_size", nullptr);
      edit_config(dir.path(), c.field, nlohmann::json::parse(c.value_json));
      const std::string msg = load_error(dir.path());
      for (const auto& s : c.expect) CHECK_THAT(msg, Contains(s));
    }

    // eos_token_id: integer ids of the vocabulary only (2.7 became 2).
    for (const char* eos : {"[2.7]", "2.7", "-1", "[1, 1e30]", "\"2\"", "100000"}) {
      INFO(name_of(family) << ": eos_token_id = " << eos);
      fresh();
      edit_config(dir.path(), "eos_token_id", nlohmann::json::parse(eos));
      const linattn::io::Checkpoint ckpt(dir.path());
      CHECK_THROWS_WITH(linattn::models::stop_ids(ckpt, 256), Contains("eos_token_id"));
    }
    fresh();
    edit_config(dir.path(), "eos_token_id", nlohmann::json::parse("[2, 0]"));
    CHECK(linattn::models::stop_ids(linattn::io::Checkpoint(dir.path()), 256) == std::vector<std::int64_t>{2, 0});
  }
}

TEST_CASE("Model loader: weights and shard indexes that disagree are named", "[models][errors][hardening]") {
  using Catch::Matchers::Contains;
  TempDir dir("loader-shards");
  CheckpointSpec spec = linattn::examples::tiny_spec(Family::gla);
  const auto fresh = [&] {
    std::filesystem::remove_all(dir.path());
    linattn::examples::write_checkpoint(spec, dir.path());
  };
  const std::string key = "model.layers.0.attn.q_proj.weight";

  // A NaN weight named (it used to give NaN logits, or an error naming no tensor).
  fresh();
  rewrite(dir.path(), [&](const std::string& n, linattn::io::TensorInfo&, std::vector<std::byte>& bytes) {
    if (n == key) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(bytes.data() + 4 * 7, &nan, 4);
    }
    return true;
  });
  CHECK_THAT(load_error(dir.path()), Contains(key) && Contains("non-finite") && Contains("element 7"));
  // A rank-0 weight where a matrix is read for its shape (libstdc++'s out_of_range text before).
  fresh();
  const std::string gk = "model.layers.0.attn.gk_proj.0.weight";
  rewrite(dir.path(), [&](const std::string& n, linattn::io::TensorInfo& t, std::vector<std::byte>& bytes) {
    if (n == gk) {
      t.shape = {};
      bytes.resize(4);
    }
    return true;
  });
  CHECK_THAT(load_error(dir.path()), Contains(gk) && Contains("shape []"));
  // config.json that is a directory.
  fresh();
  std::filesystem::remove(dir.path() / "config.json");
  std::filesystem::create_directory(dir.path() / "config.json");
  CHECK_THAT(load_error(dir.path()), Contains("config.json") && Contains("not a regular file"));
  // A config key given twice: nlohmann would keep one silently.
  fresh();
  {
    std::string text;
    std::ifstream in(dir.path() / "config.json");
    text.assign(std::istreambuf_iterator<char>(in), {});
    text.insert(text.find('{') + 1, "\"num_heads\": 3,");
    write_text(dir.path(), "config.json", text);
  }
  CHECK_THAT(load_error(dir.path()), Contains("config.json") && Contains("duplicate key") && Contains("num_heads"));

  spec.shards = 2;
  const std::string index = "model.safetensors.index.json", shard1 = "model-00001-of-00002.safetensors",
                    shard2 = "model-00002-of-00002.safetensors";
  fresh();
  REQUIRE(load_error(dir.path()) == "(no error)");
  const nlohmann::json idx = read_json_file(dir.path() / index);
  // The first key of shard 1 and of shard 2.
  std::string in1, in2;
  for (const auto& [k, f] : idx["weight_map"].items()) {
    if (in1.empty() && f == shard1) in1 = k;
    if (in2.empty() && f == shard2) in2 = k;
  }
  REQUIRE(!in1.empty());
  REQUIRE(!in2.empty());

  // A tensor in a shard that the index does not list (silently skipped before).
  {
    nlohmann::json edited = idx;
    edited["weight_map"].erase(in2);
    write_text(dir.path(), index, edited.dump());
    CHECK_THAT(load_error(dir.path()), Contains(shard2) && Contains(in2) && Contains("does not list"));
  }
  // A key listed twice.
  {
    std::string text = idx.dump();
    text.insert(text.find("\"weight_map\":{") + 14, "\"" + in1 + "\":\"" + shard1 + "\",");
    write_text(dir.path(), index, text);
    CHECK_THAT(load_error(dir.path()), Contains(index) && Contains("duplicate key") && Contains(in1));
  }
  // A tensor in two shards.
  write_text(dir.path(), index, idx.dump());
  {
    const linattn::io::SafeTensorsFile f1(dir.path() / shard1);
    const linattn::io::TensorInfo t = f1.info(in1);
    add_to_shard(dir.path() / shard2, in1, t);
  }
  CHECK_THAT(load_error(dir.path()), Contains(in1) && Contains(shard2) && Contains("too"));
  // An index beside a model.safetensors: which one is the checkpoint?
  fresh();
  std::filesystem::copy_file(dir.path() / shard1, dir.path() / "model.safetensors");
  CHECK_THAT(load_error(dir.path()), Contains("both model.safetensors and") && Contains(index));
  // A file name with a NUL: the C API would open the file named by its prefix.
  fresh();
  {
    nlohmann::json edited = idx;
    edited["weight_map"][in1] = shard1 + std::string(1, '\0') + "x";
    write_text(dir.path(), index, edited.dump());
    CHECK_THAT(load_error(dir.path()), Contains(in1) && Contains("not a file in the directory"));
  }
}
