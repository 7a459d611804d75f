// Model-level invariants for the three families (checkpoints from the checkpoint maker):
// prefill + single steps = one full pass; a batch of prompts of different lengths generates
// exactly what each prompt generates alone (greedy and sampled); a cache is a value (snapshot and
// restore); the loader and the model reject bad input with messages that name the problem.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
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
      const auto any = linattn::examples::load_model(linattn::io::Checkpoint(dir.path()));
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
      const auto any = linattn::examples::load_model(linattn::io::Checkpoint(dir.path()));
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
    linattn::examples::load_model(linattn::io::Checkpoint(dir));
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
  const auto model = linattn::examples::load_gla(linattn::io::Checkpoint(dir.path()));
  auto cache = model.new_cache();
  Array<float, 2> logits(Shape<2>{1, model.vocab_size()});
  const std::vector<std::int64_t> bad{5, 256};
  Array<float, 2> two(Shape<2>{2, model.vocab_size()});
  CHECK_THROWS_WITH(model.forward(std::span<const std::int64_t>(bad), cache, two.view()), Contains("256") && Contains("vocabulary"));
}

TEST_CASE("Model loader: hostile files (FIFOs, deep JSON) and a checkpoint shared by threads", "[models][errors][hardening]") {
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
      for (int r = 0; r < 20; ++r) (void)linattn::examples::load_model(ckpt);
    });
  for (auto& th : loaders) th.join();
  CHECK(ckpt.unused_keys().empty());
}
