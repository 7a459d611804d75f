// Every config option of SPEC §6 on a model the test builds with the checkpoint maker: the
// library's GLA and GSA models against a float64 token-by-token transcription of the SPEC
// (tests/support/model_reference.hpp), in the recurrent form and the chunk form (T = 70 > 64).
// The MatMul-free LM has no float64 mirror here (its golden test is upstream's); its options are
// checked integer path vs the dequantised float path, 2-bit vs 1.6-bit packing, and by loading.
#include <catch2/catch.hpp>

#include <functional>

#include "fixtures.hpp"
#include "support/model_reference.hpp"

using namespace model_tests;
using linattn::examples::CheckpointSpec;
using linattn::examples::Family;

namespace {

struct OptionCase {
  const char* name;
  Family family;
  std::function<void(CheckpointSpec&)> tweak;
};

void check_against_reference(const OptionCase& c) {
  TempDir dir(c.name);
  const CheckpointSpec spec = write_tiny_checkpoint(c.family, 11, c.tweak, dir.path());
  const linattn::io::Checkpoint ckpt(dir.path());
  const auto any = linattn::models::load_model(ckpt);
  const auto ids = token_ids(70, spec.vocab_size, 3);
  const auto ref = linattn::testing::ReferenceModel(ckpt).forward(ids);
  std::vector<float> want;
  double scale = 0;
  for (const auto& row : ref)
    for (double v : row) {
      want.push_back(static_cast<float>(v));
      scale = std::max(scale, std::abs(v));
    }
  std::visit(
      [&](const auto& model) {
        for (auto form : {linattn::nn::Form::recurrent, linattn::nn::Form::chunk}) {
          linattn::nn::RunOptions run;
          run.form = form;
          const auto got = full_logits(model, ids, run);
          REQUIRE(got.numel() == static_cast<index_t>(want.size()));
          const double err = max_abs_diff(got.data(), want.data(), got.numel());
          INFO(c.name << (form == linattn::nn::Form::chunk ? " chunk" : " recurrent") << ": max abs err " << err
                      << ", max |logit| " << scale);
          CHECK(err <= 2e-5 * std::max(1.0, scale));
        }
      },
      any);
}

}  // namespace

TEST_CASE("GLA model options match the float64 SPEC transcription", "[models][options]") {
  const std::vector<OptionCase> cases{
      {"gla-default", Family::gla, [](CheckpointSpec&) {}},
      {"gla-gqa", Family::gla, [](CheckpointSpec& s) { s.num_heads = 4; s.num_kv_heads = 2; }},
      {"gla-short-conv", Family::gla, [](CheckpointSpec& s) { s.use_short_conv = true; s.conv_size = 3; }},
      {"gla-clamp-min", Family::gla, [](CheckpointSpec& s) { s.clamp_min = -0.02; }},
      {"gla-tied", Family::gla, [](CheckpointSpec& s) { s.tie_word_embeddings = true; }},
      {"gla-feature-map-relu", Family::gla, [](CheckpointSpec& s) { s.feature_map = "relu"; }},
      {"gla-no-output-gate", Family::gla, [](CheckpointSpec& s) { s.use_output_gate = false; }},
      {"gla-unfused-g-norm", Family::gla, [](CheckpointSpec& s) { s.fuse_norm = false; }},
      {"gla-no-affine", Family::gla, [](CheckpointSpec& s) { s.elementwise_affine = false; }},
      {"gla-legacy-mlp", Family::gla, [](CheckpointSpec& s) { s.legacy_mlp = true; }},
      {"gla-3-layers-4-heads", Family::gla, [](CheckpointSpec& s) { s.num_hidden_layers = 3; s.num_heads = 4; }},
      {"gla-bf16-sharded", Family::gla, [](CheckpointSpec& s) { s.dtype = linattn::io::DType::BF16; s.shards = 3; }},
      {"gla-f16", Family::gla, [](CheckpointSpec& s) { s.dtype = linattn::io::DType::F16; }},
  };
  for (const auto& c : cases) {
    SECTION(c.name) { check_against_reference(c); }
  }
}

TEST_CASE("GSA model options match the float64 SPEC transcription", "[models][options]") {
  const std::vector<OptionCase> cases{
      {"gsa-default", Family::gsa, [](CheckpointSpec&) {}},
      {"gsa-gqa", Family::gsa, [](CheckpointSpec& s) { s.num_heads = 4; s.num_kv_heads = 2; }},
      {"gsa-short-conv", Family::gsa, [](CheckpointSpec& s) { s.use_short_conv = true; }},
      {"gsa-8-slots", Family::gsa, [](CheckpointSpec& s) { s.num_slots = 8; }},
      {"gsa-64-slots", Family::gsa, [](CheckpointSpec& s) { s.num_slots = 64; }},
      {"gsa-t2r", Family::gsa, [](CheckpointSpec& s) { s.feature_map = "t2r"; }},
      {"gsa-relu", Family::gsa, [](CheckpointSpec& s) { s.feature_map = "relu"; }},
      {"gsa-legacy", Family::gsa, [](CheckpointSpec& s) { s.legacy_norm = true; s.legacy_mlp = true; }},
      {"gsa-tied", Family::gsa, [](CheckpointSpec& s) { s.tie_word_embeddings = true; }},
      {"gsa-3-layers-4-heads", Family::gsa, [](CheckpointSpec& s) { s.num_hidden_layers = 3; s.num_heads = 4; }},
      {"gsa-no-affine-bf16", Family::gsa, [](CheckpointSpec& s) { s.elementwise_affine = false; s.dtype = linattn::io::DType::BF16; }},
  };
  for (const auto& c : cases) {
    SECTION(c.name) { check_against_reference(c); }
  }
}

TEST_CASE("MatMul-free LM options: integer path vs float path, 2-bit vs 1.6-bit", "[models][options]") {
  const std::vector<OptionCase> cases{
      {"hgrn-default", Family::hgrn_bit, [](CheckpointSpec&) {}},
      {"hgrn-tied", Family::hgrn_bit, [](CheckpointSpec& s) { s.tie_word_embeddings = true; }},
      {"hgrn-no-lower-bound", Family::hgrn_bit, [](CheckpointSpec& s) { s.use_lower_bound = false; }},
      {"hgrn-3-layers-4-heads", Family::hgrn_bit, [](CheckpointSpec& s) { s.num_hidden_layers = 3; s.num_heads = 4; }},
      {"hgrn-expand-2-bf16", Family::hgrn_bit, [](CheckpointSpec& s) { s.expand_ratio = 2; s.use_lower_bound = false; s.dtype = linattn::io::DType::BF16; }},
      {"hgrn-intermediate-96", Family::hgrn_bit, [](CheckpointSpec& s) { s.intermediate_size = 96; }},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      TempDir dir(c.name);
      const CheckpointSpec spec = write_tiny_checkpoint(c.family, 5, c.tweak, dir.path());
      const linattn::io::Checkpoint ckpt(dir.path());
      const auto two = linattn::models::load_hgrn_bit(ckpt);
      linattn::models::LoadOptions base3;
      base3.packing = linattn::ternary::Packing::base3;
      const auto one_six = linattn::models::load_hgrn_bit(linattn::io::Checkpoint(dir.path()), base3);
      const auto ids = token_ids(70, spec.vocab_size, 4);
      const auto a = full_logits(two, ids);
      // Same ternary codes, other packing: the integer sums, hence the logits, are identical.
      CHECK(a == full_logits(one_six, ids));
      linattn::nn::RunOptions reference;
      reference.arithmetic = linattn::nn::Arithmetic::reference;
      const auto b = full_logits(two, ids, reference);
      double mean = 0;
      for (index_t i = 0; i < a.numel(); ++i) mean += std::abs(a.data()[i] - b.data()[i]);
      mean /= static_cast<double>(a.numel());
      // Same codes and scales, other summation order: the logits differ in the last bits, except
      // where that flips an int8 activation on a near-tie in a later layer (GOLDEN-README: the
      // same effect bounds two correct implementations to mean abs 1e-3).
      INFO(c.name << ": integer vs float path mean abs " << mean);
      CHECK(mean <= 1e-3);
      CHECK(a.size(0) == 70);
    }
  }
}
