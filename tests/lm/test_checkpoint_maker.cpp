// Tests of examples/make_checkpoint/checkpoint_maker.hpp: what it writes is read back with
// SafeTensorsFile and compared with SPEC §6 (key names, shapes), with the golden tiny HGRNBit
// checkpoint, with SPEC §7's parameter counts, and across dtypes and shardings.
#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "linattn/io/safetensors.hpp"
#include "make_checkpoint/checkpoint_maker.hpp"

namespace fs = std::filesystem;
using namespace linattn;
using namespace linattn::examples;
using Catch::Matchers::Contains;
using linattn::test::TempDir;
using Shapes = std::map<std::string, std::vector<index_t>>;

namespace {

const fs::path kDataDir = LINATTN_TEST_DATA_DIR;

Shapes shapes_in(const io::SafeTensorsFile& f) {
  Shapes s;
  for (const auto& n : f.names()) s[n] = f.info(n).shape;
  return s;
}

Shapes shapes_of(const std::vector<TensorSpec>& t) {
  Shapes s;
  for (const auto& x : t) s[x.key] = x.shape;
  return s;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  REQUIRE(f);
  return nlohmann::json::parse(f);
}

// Writes, reads back, and checks that the file holds exactly checkpoint_tensors(s).
Shapes write_and_read(const CheckpointSpec& s, const TempDir& dir) {
  write_checkpoint(s, dir.path());
  io::SafeTensorsFile f(dir.path() / "model.safetensors");
  const Shapes got = shapes_in(f);
  CHECK(got == shapes_of(checkpoint_tensors(s)));
  for (const auto& n : f.names()) CHECK(f.info(n).dtype == s.dtype);
  return got;
}

// SPEC §6 layer keys of the tiny configurations, written out by hand (not from the maker):
// D 64, I 256; gla H 2, key_dim 32, value_dim 64; gsa H 2, key_dim = value_dim = 64, M 16.
Shapes spec_gla_tiny_layer(const std::string& p) {
  return {{p + "attn_norm.weight", {64}},
          {p + "attn.q_proj.weight", {32, 64}},
          {p + "attn.k_proj.weight", {32, 64}},
          {p + "attn.v_proj.weight", {64, 64}},
          {p + "attn.g_proj.weight", {64, 64}},
          {p + "attn.gk_proj.0.weight", {16, 64}},
          {p + "attn.gk_proj.1.weight", {32, 16}},
          {p + "attn.gk_proj.1.bias", {32}},
          {p + "attn.g_norm_swish_gate.weight", {32}},
          {p + "attn.o_proj.weight", {64, 64}},
          {p + "mlp_norm.weight", {64}},
          {p + "mlp.gate_proj.weight", {256, 64}},
          {p + "mlp.up_proj.weight", {256, 64}},
          {p + "mlp.down_proj.weight", {64, 256}}};
}

Shapes spec_gsa_tiny_layer(const std::string& p) {
  return {{p + "attn_norm.weight", {64}},
          {p + "attn.q_proj.weight", {64, 64}},
          {p + "attn.k_proj.weight", {64, 64}},
          {p + "attn.v_proj.weight", {64, 64}},
          {p + "attn.f_proj.weight", {32, 64}},
          {p + "attn.g_norm.weight", {64}},
          {p + "attn.o_proj.weight", {64, 64}},
          {p + "mlp_norm.weight", {64}},
          {p + "mlp.gate_proj.weight", {256, 64}},
          {p + "mlp.up_proj.weight", {256, 64}},
          {p + "mlp.down_proj.weight", {64, 256}}};
}

Shapes with_model_ends(Shapes s) {
  s["model.embeddings.weight"] = {256, 64};
  s["model.norm.weight"] = {64};
  s["lm_head.weight"] = {256, 64};
  return s;
}

// Runs f and requires std::invalid_argument whose message contains `what` (another exception
// type propagates and fails the test case).
template <class F>
void throws_invalid(F f, const std::string& what) {
  try {
    f();
    FAIL("no exception; expected std::invalid_argument naming " << what);
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(std::string(e.what()), Contains(what));
  }
}

Shapes merge(Shapes a, const Shapes& b) {
  a.insert(b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("checkpoint maker: tiny gla and gsa have SPEC §6's keys and shapes", "[lm][checkpoint_maker]") {
  {
    TempDir dir("ckpt");
    const Shapes got = write_and_read(tiny_spec(Family::gla), dir);
    CHECK(got == with_model_ends(merge(spec_gla_tiny_layer("model.layers.0."), spec_gla_tiny_layer("model.layers.1."))));
  }
  {
    TempDir dir("ckpt");
    const Shapes got = write_and_read(tiny_spec(Family::gsa), dir);
    CHECK(got == with_model_ends(merge(spec_gsa_tiny_layer("model.layers.0."), spec_gsa_tiny_layer("model.layers.1."))));
  }
}

TEST_CASE("checkpoint maker: tiny models match the golden checkpoints' keys, shapes and configs",
          "[lm][checkpoint_maker]") {
  for (Family f : {Family::gla, Family::gsa, Family::hgrn_bit}) {
    const fs::path golden_dir = kDataDir / ("model_" + std::string(family_name(f)));
    INFO(golden_dir);
    TempDir dir("ckpt");
    const Shapes got = write_and_read(tiny_spec(f), dir);
    io::SafeTensorsFile golden(golden_dir / "model.safetensors");
    CHECK(got == shapes_in(golden));
    // Same config fields and values but the transformers version (no transformers wrote ours).
    nlohmann::json want = read_json(golden_dir / "config.json");
    want.erase("transformers_version");
    CHECK(read_json(dir.path() / "config.json") == want);
    // fla writes a generation config, mmfreelm does not.
    CHECK(fs::exists(dir.path() / "generation_config.json") == fs::exists(golden_dir / "generation_config.json"));
    if (fs::exists(golden_dir / "generation_config.json")) {
      nlohmann::json g = read_json(golden_dir / "generation_config.json");
      g.erase("transformers_version");
      CHECK(read_json(dir.path() / "generation_config.json") == g);
    }
  }
}

TEST_CASE("checkpoint maker: config.json fields follow the spec", "[lm][checkpoint_maker]") {
  CheckpointSpec s = tiny_spec(Family::gla);
  s.num_kv_heads = 1;
  s.clamp_min = -0.25;
  s.feature_map = "relu";
  s.fuse_norm = false;
  s.intermediate_size = 100;
  s.tie_word_embeddings = true;
  s.dtype = io::DType::BF16;
  auto c = config_json(s);
  CHECK(c["model_type"] == "gla");
  CHECK(c["architectures"] == nlohmann::json::array({"GLAForCausalLM"}));
  CHECK(c["num_kv_heads"] == 1);
  CHECK(c["clamp_min"] == -0.25);
  CHECK(c["feature_map"] == "relu");
  CHECK(c["fuse_norm"] == false);
  CHECK(c["intermediate_size"] == 100);
  CHECK(c["tie_word_embeddings"] == true);
  CHECK(c["dtype"] == "bfloat16");
  CHECK(c["expand_k"].is_number_float());  // 0.5
  CHECK(c["expand_v"].is_number_integer());  // 1, as Python writes it
  CHECK(c["norm_eps"] == 1e-6);

  auto g = config_json(tiny_spec(Family::gsa));
  CHECK(g["model_type"] == "gsa");
  CHECK(g["num_slots"] == 16);
  CHECK(g["gate_logit_normalizer"] == 8);
  CHECK(g["num_kv_heads"].is_null());
  CHECK(g["intermediate_size"].is_null());
  CHECK_FALSE(g.contains("norm_first"));
  CheckpointSpec legacy = tiny_spec(Family::gsa);
  legacy.legacy_norm = true;
  CHECK(config_json(legacy)["norm_first"] == true);
}

TEST_CASE("checkpoint maker: every option changes the keys and shapes as SPEC §6 says", "[lm][checkpoint_maker]") {
  const std::string p = "model.layers.1.";
  SECTION("gla GQA: k, v and the gate projections shrink by G") {
    CheckpointSpec s = tiny_spec(Family::gla);
    s.num_kv_heads = 1;  // G = 2
    TempDir dir("ckpt");
    const Shapes got = write_and_read(s, dir);
    CHECK(got.at(p + "attn.q_proj.weight") == std::vector<index_t>{32, 64});
    CHECK(got.at(p + "attn.k_proj.weight") == std::vector<index_t>{16, 64});
    CHECK(got.at(p + "attn.v_proj.weight") == std::vector<index_t>{32, 64});
    CHECK(got.at(p + "attn.gk_proj.1.weight") == std::vector<index_t>{16, 16});
    CHECK(got.at(p + "attn.gk_proj.1.bias") == std::vector<index_t>{16});
    CHECK(got.at(p + "attn.g_proj.weight") == std::vector<index_t>{64, 64});
    CHECK(got.at(p + "attn.o_proj.weight") == std::vector<index_t>{64, 64});
  }
  SECTION("gla short conv, no output gate, unfused g_norm, tied embeddings, legacy MLP") {
    CheckpointSpec s = tiny_spec(Family::gla);
    s.use_short_conv = true;
    s.conv_size = 3;
    s.num_kv_heads = 1;
    s.use_output_gate = false;
    s.fuse_norm = false;
    s.tie_word_embeddings = true;
    s.legacy_mlp = true;
    TempDir dir("ckpt");
    const Shapes got = write_and_read(s, dir);
    CHECK(got.at(p + "attn.q_conv1d.weight") == std::vector<index_t>{32, 1, 3});
    CHECK(got.at(p + "attn.k_conv1d.weight") == std::vector<index_t>{16, 1, 3});
    CHECK(got.at(p + "attn.v_conv1d.weight") == std::vector<index_t>{32, 1, 3});
    CHECK(got.count(p + "attn.g_proj.weight") == 0);
    CHECK(got.count(p + "attn.g_norm_swish_gate.weight") == 0);
    CHECK(got.at(p + "attn.g_norm.weight") == std::vector<index_t>{32});  // V = value_dim / H = 64 / 2
    CHECK(got.count("lm_head.weight") == 0);
    CHECK(got.at(p + "mlp.gate_proj.weight") == std::vector<index_t>{512, 64});
    CHECK(got.count(p + "mlp.up_proj.weight") == 0);
    CHECK(got.at(p + "mlp.down_proj.weight") == std::vector<index_t>{64, 256});
  }
  SECTION("gla expand_k / expand_v / intermediate_size / no elementwise affine") {
    CheckpointSpec s = tiny_spec(Family::gla);
    s.expand_k = 1;
    s.expand_v = 2;
    s.num_heads = 4;
    s.intermediate_size = 96;
    s.elementwise_affine = false;
    TempDir dir("ckpt");
    const Shapes got = write_and_read(s, dir);
    CHECK(got.at(p + "attn.q_proj.weight") == std::vector<index_t>{64, 64});
    CHECK(got.at(p + "attn.v_proj.weight") == std::vector<index_t>{128, 64});
    CHECK(got.at(p + "attn.o_proj.weight") == std::vector<index_t>{64, 128});
    CHECK(got.count(p + "attn.g_norm_swish_gate.weight") == 0);
    CHECK(got.at(p + "mlp.gate_proj.weight") == std::vector<index_t>{96, 64});
  }
  SECTION("gsa GQA, t2r feature map, short conv, legacy norms and MLP") {
    CheckpointSpec s = tiny_spec(Family::gsa);
    s.num_heads = 4;
    s.num_kv_heads = 2;
    s.num_slots = 8;
    s.feature_map = "t2r";
    s.use_short_conv = true;
    s.legacy_norm = true;
    s.legacy_mlp = true;
    TempDir dir("ckpt");
    const Shapes got = write_and_read(s, dir);
    CHECK(got.at(p + "attn.k_proj.weight") == std::vector<index_t>{32, 64});
    CHECK(got.at(p + "attn.f_proj.weight") == std::vector<index_t>{16, 64});  // Hkv · M
    CHECK(got.at(p + "attn.feature_map.layer.weight") == std::vector<index_t>{16, 16});  // K = 64 / 4
    CHECK(got.at(p + "attn.v_conv1d.weight") == std::vector<index_t>{32, 1, 4});
    CHECK(got.at(p + "attn.norm.weight") == std::vector<index_t>{64});
    CHECK(got.at(p + "mlp.norm.weight") == std::vector<index_t>{64});
    CHECK(got.count(p + "attn_norm.weight") == 0);
    CHECK(got.count(p + "mlp_norm.weight") == 0);
    CHECK(got.at(p + "mlp.gate_proj.weight") == std::vector<index_t>{512, 64});
    CHECK(got.count(p + "mlp.up_proj.weight") == 0);
  }
  SECTION("hgrn_bit without lower bounds, tied, expand_ratio 2, 2 heads") {
    CheckpointSpec s = tiny_spec(Family::hgrn_bit);
    s.use_lower_bound = false;
    s.tie_word_embeddings = true;
    s.expand_ratio = 2;
    s.num_heads = 2;
    TempDir dir("ckpt");
    const Shapes got = write_and_read(s, dir);
    CHECK(got.count("model.lower_bounds") == 0);
    CHECK(got.count("lm_head.weight") == 0);
    CHECK(got.at("lm_head.norm.weight") == std::vector<index_t>{64});  // the BitLinear keeps its norm
    CHECK(got.at(p + "attn.i_proj.weight") == std::vector<index_t>{128, 64});
    CHECK(got.at(p + "attn.g_norm.weight") == std::vector<index_t>{128});
    CHECK(got.at(p + "attn.o_proj.weight") == std::vector<index_t>{64, 128});
    CHECK(got.at(p + "attn.o_proj.norm.weight") == std::vector<index_t>{128});
    auto c = read_json(dir.path() / "config.json");
    CHECK(c["use_lower_bound"] == false);
    CHECK(c["expand_ratio"] == 2);
  }
}

TEST_CASE("checkpoint maker: presets have SPEC §7's parameter counts and shapes", "[lm][checkpoint_maker]") {
  CHECK(param_count(preset("mmfree-370m")) == 374'108'160);
  CHECK(param_count(preset("mmfree-1.3b")) == 1'364'779'008);
  CHECK(param_count(preset("mmfree-2.7b")) == 2'702'357'504);
  const auto t = shapes_of(checkpoint_tensors(preset("mmfree-2.7b")));
  CHECK(t.at("model.layers.31.mlp.gate_proj.weight") == std::vector<index_t>{2 * 6912, 2560});
  CHECK(t.at("model.lower_bounds") == std::vector<index_t>{32, 2560});
  const auto g = shapes_of(checkpoint_tensors(preset("gla-340m")));
  CHECK(g.at("model.layers.23.attn.k_proj.weight") == std::vector<index_t>{512, 1024});
  CHECK(g.at("model.layers.23.attn.g_norm_swish_gate.weight") == std::vector<index_t>{256});
  CHECK(g.at("model.layers.23.mlp.up_proj.weight") == std::vector<index_t>{2816, 1024});
  const auto s = shapes_of(checkpoint_tensors(preset("gsa-340m")));
  CHECK(s.at("model.layers.0.attn.f_proj.weight") == std::vector<index_t>{4 * 64, 1024});
  // 340M-class: between 300M and 400M with the untied lm_head.
  CHECK(param_count(preset("gla-340m")) > 300'000'000);
  CHECK(param_count(preset("gla-340m")) < 400'000'000);
  CHECK(param_count(preset("gsa-340m")) > 300'000'000);
  CHECK(param_count(preset("gsa-340m")) < 400'000'000);
}

TEST_CASE("checkpoint maker: initial values have the documented distributions", "[lm][checkpoint_maker]") {
  CheckpointSpec s = tiny_spec(Family::hgrn_bit);
  s.norm_noise = 0;
  s.initializer_range = 0.02;
  TempDir dir("ckpt");
  write_checkpoint(s, dir.path());
  io::SafeTensorsFile f(dir.path() / "model.safetensors");
  auto stats = [&](const std::string& key) {
    const auto v = f.read<double>(key);
    double m = 0, q = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) q += (x - m) * (x - m);
    return std::pair{m, std::sqrt(q / static_cast<double>(v.size()))};
  };
  const auto [em, es] = stats("model.embeddings.weight");  // 16384 values
  CHECK(std::abs(em) < 0.02 * 0.05);
  CHECK(es == Approx(0.02).epsilon(0.03));
  const auto [gm, gs] = stats("model.layers.0.mlp.gate_proj.weight");
  CHECK(std::abs(gm) < 0.02 * 0.05);
  CHECK(gs == Approx(0.02).epsilon(0.03));
  const auto [lm, ls] = stats("model.lower_bounds");  // N(0, 1), 128 values
  CHECK(std::abs(lm) < 0.5);
  CHECK(ls == Approx(1.0).epsilon(0.3));
  for (const auto& n : f.names())
    if (n.ends_with("norm.weight"))
      for (float x : f.read<float>(n)) REQUIRE(x == 1.0f);

  // Conv weights within ±1/√W; gk bias ~ N(0, 1).
  CheckpointSpec c = tiny_spec(Family::gla);
  c.use_short_conv = true;
  TempDir dir2("ckpt");
  write_checkpoint(c, dir2.path());
  io::SafeTensorsFile g(dir2.path() / "model.safetensors");
  const auto conv = g.read<float>("model.layers.0.attn.q_conv1d.weight");
  float amax = 0;
  for (float x : conv) amax = std::max(amax, std::abs(x));
  CHECK(amax <= 0.5f);
  CHECK(amax > 0.4f);  // 512 uniform draws reach close to the bound
  const auto bias = g.read<float>("model.layers.0.attn.gk_proj.1.bias");
  double bq = 0;
  for (float x : bias) bq += static_cast<double>(x) * x;
  CHECK(std::sqrt(bq / static_cast<double>(bias.size())) == Approx(1.0).epsilon(0.4));
  // Norm noise 0.1 (the tiny default): not all ones, centred on 1.
  const auto nw = g.read<float>("model.layers.0.attn_norm.weight");
  double nm = 0;
  for (float x : nw) nm += x;
  CHECK(nm / static_cast<double>(nw.size()) == Approx(1.0).margin(0.05));
  CHECK(std::any_of(nw.begin(), nw.end(), [](float x) { return std::abs(x - 1.0f) > 0.02f; }));
}

TEST_CASE("checkpoint maker: values depend on seed and key only; bf16 / f16 are the rounded f32 values",
          "[lm][checkpoint_maker]") {
  CheckpointSpec s = tiny_spec(Family::gla);
  s.use_short_conv = true;
  TempDir d32("ckpt"), d16("ckpt"), dbf("ckpt"), dseed("ckpt");
  write_checkpoint(s, d32.path());
  CheckpointSpec h = s;
  h.dtype = io::DType::F16;
  write_checkpoint(h, d16.path());
  CheckpointSpec b = s;
  b.dtype = io::DType::BF16;
  b.shards = 3;  // sharding must not change any value either
  write_checkpoint(b, dbf.path());
  CheckpointSpec other = s;
  other.seed = 1;
  write_checkpoint(other, dseed.path());

  io::SafeTensorsFile f32(d32.path() / "model.safetensors");
  io::SafeTensorsFile f16(d16.path() / "model.safetensors");
  io::SafeTensorsFile fseed(dseed.path() / "model.safetensors");
  const auto index = read_json(dbf.path() / "model.safetensors.index.json");
  std::map<std::string, io::SafeTensorsFile> bf_files;
  for (const auto& t : checkpoint_tensors(s)) {
    INFO(t.key);
    const auto ref = f32.read<float>(t.key);
    REQUIRE(ref == tensor_values(s, t));
    const auto& h16 = f16.info(t.key);
    REQUIRE(h16.dtype == io::DType::F16);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, h16.bytes.data() + 2 * i, 2);
      REQUIRE(bits == io::float_to_f16_bits(ref[i]));
    }
    const std::string file = index["weight_map"][t.key];
    if (!bf_files.count(file)) bf_files.emplace(file, io::SafeTensorsFile(dbf.path() / file));
    const auto& hb = bf_files.at(file).info(t.key);
    REQUIRE(hb.dtype == io::DType::BF16);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, hb.bytes.data() + 2 * i, 2);
      REQUIRE(bits == io::float_to_bf16_bits(ref[i]));
    }
    // Another seed gives other values wherever the values are random.
    if (t.init != Init::norm || s.norm_noise > 0) CHECK(fseed.read<float>(t.key) != ref);
  }
  CHECK(read_json(d16.path() / "config.json")["dtype"] == "float16");
  CHECK(read_json(dbf.path() / "config.json")["dtype"] == "bfloat16");
}

TEST_CASE("checkpoint maker: sharded checkpoints have a consistent index", "[lm][checkpoint_maker]") {
  for (int n : {2, 3, 7}) {
    INFO("shards " << n);
    CheckpointSpec s = tiny_spec(Family::hgrn_bit);
    s.shards = n;
    TempDir dir("ckpt");
    write_checkpoint(s, dir.path());
    CHECK_FALSE(fs::exists(dir.path() / "model.safetensors"));
    const auto index = read_json(dir.path() / "model.safetensors.index.json");
    const auto& map = index.at("weight_map");
    const Shapes want = shapes_of(checkpoint_tensors(s));
    CHECK(map.size() == want.size());

    Shapes seen;
    std::uint64_t bytes = 0;
    std::set<std::string> files_in_map;
    for (auto it = map.begin(); it != map.end(); ++it) files_in_map.insert(it.value().get<std::string>());
    CHECK(files_in_map.size() == static_cast<std::size_t>(n));
    for (int k = 1; k <= n; ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n);
      INFO(name);
      REQUIRE(fs::exists(dir.path() / name));
      io::SafeTensorsFile f(dir.path() / name);
      CHECK(f.size() > 0);
      CHECK(f.metadata_value("format") == std::optional<std::string>("pt"));
      for (const auto& key : f.names()) {
        CHECK(map.at(key) == name);        // the index points at the file that holds it
        CHECK(seen.count(key) == 0);       // and no key is in two files
        seen[key] = f.info(key).shape;
        bytes += f.info(key).bytes.size();
      }
    }
    CHECK(seen == want);
    CHECK(index.at("metadata").at("total_size") == bytes);
  }
}

TEST_CASE("checkpoint maker: rewriting a directory removes the other layout's weight files", "[lm][checkpoint_maker]") {
  TempDir dir("ckpt");
  CheckpointSpec s = tiny_spec(Family::gsa);
  s.shards = 3;
  write_checkpoint(s, dir.path());
  { std::ofstream(dir.path() / "tokenizer.model") << "not ours"; }
  CHECK(fs::exists(dir.path() / "model-00003-of-00003.safetensors"));
  s.shards = 2;
  write_checkpoint(s, dir.path());
  CHECK_FALSE(fs::exists(dir.path() / "model-00003-of-00003.safetensors"));
  CHECK(fs::exists(dir.path() / "model-00002-of-00002.safetensors"));
  s.shards = 1;
  write_checkpoint(s, dir.path());
  CHECK_FALSE(fs::exists(dir.path() / "model.safetensors.index.json"));
  CHECK_FALSE(fs::exists(dir.path() / "model-00001-of-00002.safetensors"));
  CHECK(fs::exists(dir.path() / "model.safetensors"));
  CHECK(fs::exists(dir.path() / "tokenizer.model"));  // anything else is left alone
}

TEST_CASE("checkpoint maker: bad specs throw std::invalid_argument naming the option", "[lm][checkpoint_maker]") {
  auto fails = [](CheckpointSpec s, const std::string& option) {
    throws_invalid([&] { checkpoint_tensors(s); }, option);
  };
  CheckpointSpec gla = tiny_spec(Family::gla), gsa = tiny_spec(Family::gsa), hb = tiny_spec(Family::hgrn_bit);
  auto with = [](CheckpointSpec s, auto f) {
    f(s);
    return s;
  };
  fails(with(gla, [](auto& s) { s.num_heads = 3; }), "num_heads");
  fails(with(gla, [](auto& s) { s.num_kv_heads = 3; }), "num_kv_heads");
  fails(with(gla, [](auto& s) { s.hidden_size = 0; }), "hidden_size");
  fails(with(gla, [](auto& s) { s.vocab_size = -1; }), "vocab_size");
  fails(with(gla, [](auto& s) { s.num_hidden_layers = 0; }), "num_hidden_layers");
  fails(with(gla, [](auto& s) { s.feature_map = "t2r"; }), "feature_map");
  fails(with(gla, [](auto& s) { s.legacy_norm = true; }), "legacy_norm");
  fails(with(gla, [](auto& s) { s.intermediate_size = 0; }), "intermediate_size");
  fails(with(gla, [](auto& s) { s.dtype = io::DType::I8; }), "dtype");
  fails(with(gla, [](auto& s) { s.shards = 0; }), "shards");
  fails(with(gla, [](auto& s) { s.bos_token_id = 256; }), "bos_token_id");
  fails(with(gla, [](auto& s) { s.use_short_conv = true; s.conv_size = 0; }), "conv_size");
  fails(with(gsa, [](auto& s) { s.expand_v = 0.5; }), "expand_v");
  fails(with(gsa, [](auto& s) { s.num_slots = 0; }), "num_slots");
  fails(with(gsa, [](auto& s) { s.feature_map = "elu"; }), "feature_map");
  fails(with(hb, [](auto& s) { s.use_short_conv = true; }), "use_short_conv");
  fails(with(hb, [](auto& s) { s.legacy_mlp = true; }), "legacy_mlp");
  fails(with(hb, [](auto& s) { s.num_heads = 3; }), "num_heads");
  fails(with(hb, [](auto& s) { s.num_kv_heads = 1; }), "num_kv_heads");

  throws_invalid([] { parse_family("rwkv"); }, "family");
  throws_invalid([] { preset("gla-1b"); }, "preset");
  TempDir dir("ckpt");
  throws_invalid([&] { write_checkpoint(with(hb, [](auto& s) { s.shards = 1000; }), dir.path()); }, "shards");
  CHECK_FALSE(fs::exists(dir.path() / "config.json"));  // nothing written for a bad spec
}
