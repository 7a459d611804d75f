// Each layer alone against the float64 SPEC transcription (tests/support/model_reference.hpp):
// GLAAttention and GSAAttention in every form and token by token through step, GatedMLP (both
// key layouts) and ShortConvolution, on random inputs, with the weights of tiny checkpoints the
// checkpoint maker writes for each config option. The model tests check the same layers only
// through whole models, where one layer's error can hide behind another's.
#include <catch2/catch.hpp>

#include <functional>
#include <random>
#include <type_traits>

#include "fixtures.hpp"
#include "support/model_reference.hpp"

using namespace model_tests;
using linattn::examples::CheckpointSpec;
using linattn::examples::Family;
using Mat = linattn::testing::ReferenceModel::Mat;

namespace {

Mat random_rows(index_t T, index_t D, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Mat x(static_cast<std::size_t>(T), Mat::value_type(static_cast<std::size_t>(D)));
  for (auto& row : x)
    for (double& e : row) e = static_cast<float>(normal(rng));  // exactly representable in float
  return x;
}

Array<float, 2> to_array(const Mat& x) {
  Array<float, 2> a(Shape<2>{static_cast<index_t>(x.size()), static_cast<index_t>(x[0].size())});
  for (std::size_t t = 0; t < x.size(); ++t)
    for (std::size_t j = 0; j < x[t].size(); ++j) a(static_cast<index_t>(t), static_cast<index_t>(j)) = static_cast<float>(x[t][j]);
  return a;
}

// max |got − want| / max(1, max |want|)
double rel_err(const Array<float, 2>& got, const Mat& want) {
  REQUIRE(got.size(0) == static_cast<index_t>(want.size()));
  REQUIRE(got.size(1) == static_cast<index_t>(want[0].size()));
  double diff = 0, scale = 1;
  for (index_t t = 0; t < got.size(0); ++t)
    for (index_t j = 0; j < got.size(1); ++j) {
      const double w = want[static_cast<std::size_t>(t)][static_cast<std::size_t>(j)];
      diff = std::max(diff, std::abs(static_cast<double>(got(t, j)) - w));
      scale = std::max(scale, std::abs(w));
    }
  return diff / scale;
}

struct LayerCase {
  const char* name;
  Family family;
  std::function<void(CheckpointSpec&)> tweak;
};

constexpr double kTolerance = 2e-5;  // float layers against float64, relative to the largest output

// Attention of layer 0 over T tokens: the three forms from a fresh state, and step by step.
template <class Attention>
void check_attention(const Attention& attn, const linattn::testing::ReferenceModel& ref, index_t T, index_t D) {
  const Mat x = random_rows(T, D, static_cast<std::uint32_t>(T));
  const Array<float, 2> xa = to_array(x);
  const Mat want = ref.attention(x, "model.layers.0.attn.");
  for (const auto form : {linattn::Form::recurrent, linattn::Form::chunk, linattn::Form::fused_chunk}) {
    CAPTURE(linattn::form_name(form), T);
    linattn::nn::RunOptions run;
    run.form = form;
    Array<float, 2> out(Shape<2>{T, D});
    auto state = attn.initial_state();
    attn.forward(xa.cview(), out.view(), state, run);
    CHECK(rel_err(out, want) <= kTolerance);
  }
  CAPTURE("step", T);
  Array<float, 2> out(Shape<2>{T, D});
  auto state = attn.initial_state();
  decltype(state)* states[] = {&state};
  for (index_t t = 0; t < T; ++t)
    attn.step(TensorView<const float, 2>(xa.cview().ptr(t), {1, D}), TensorView<float, 2>(out.view().ptr(t), {1, D}),
              states);
  CHECK(rel_err(out, want) <= kTolerance);
}

void check_layers(const LayerCase& c) {
  TempDir dir(c.name);
  const CheckpointSpec spec = write_tiny_checkpoint(c.family, 5, c.tweak, dir.path());
  const linattn::io::Checkpoint ckpt(dir.path());
  const linattn::testing::ReferenceModel ref(ckpt);
  const auto any = linattn::models::load_model(ckpt);
  std::visit(
      [&](const auto& model) {
        if constexpr (std::is_same_v<std::decay_t<decltype(model)>, linattn::models::HGRNBitModel>) {
          FAIL("the layer tests take GLA and GSA checkpoints");
        } else {
        const auto& block = model.blocks().front();
        const index_t D = model.hidden_size();
        for (index_t T : {1, 5, 70})  // one token, fewer than a chunk, more than the 64 of the automatic rule
          check_attention(block.attn, ref, T, D);

        const Mat x = random_rows(37, D, 7);
        Array<float, 2> out(Shape<2>{37, D});
        block.mlp.forward(to_array(x).cview(), out.view());
        CHECK(rel_err(out, ref.mlp(x, "model.layers.0.mlp.")) <= kTolerance);
        }
      },
      any);

  if (spec.use_short_conv) {
    // The q convolution of layer 0, alone: the prefill over 9 tokens from a zero history, then
    // 4 more through the cache it left (the decode path).
    const std::string key = "model.layers.0.attn.q_conv1d.weight";
    const auto& shape = ckpt.info(key).shape;  // [C, 1, W]
    const linattn::nn::ShortConvolution conv(ckpt.floats(key, shape));
    const index_t C = shape[0];
    const Mat x = random_rows(13, C, 3);
    const Mat want = ref.conv(x, key);
    const Array<float, 2> xa = to_array(x);
    Array<float, 2> y(Shape<2>{13, C});
    auto cache = conv.initial_cache();
    conv.forward(TensorView<const float, 2>(xa.cview().ptr(0), {9, C}), TensorView<float, 2>(y.view().ptr(0), {9, C}), cache);
    conv.forward(TensorView<const float, 2>(xa.cview().ptr(9), {4, C}), TensorView<float, 2>(y.view().ptr(9), {4, C}), cache);
    CHECK(rel_err(y, want) <= kTolerance);
  }
}

}  // namespace

TEST_CASE("GLA layers match the float64 SPEC transcription", "[nn][layers]") {
  const std::vector<LayerCase> cases{
      {"layer-gla", Family::gla, [](CheckpointSpec&) {}},
      {"layer-gla-gqa-conv", Family::gla,
       [](CheckpointSpec& s) {
         s.num_heads = 4;
         s.num_kv_heads = 2;
         s.use_short_conv = true;
         s.conv_size = 3;
       }},
      {"layer-gla-relu-clamp-nogate", Family::gla,
       [](CheckpointSpec& s) {
         s.feature_map = "relu";
         s.clamp_min = -0.05;
         s.use_output_gate = false;
         s.legacy_mlp = true;
       }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    check_layers(c);
  }
}

TEST_CASE("GSA layers match the float64 SPEC transcription", "[nn][layers]") {
  const std::vector<LayerCase> cases{
      {"layer-gsa", Family::gsa, [](CheckpointSpec&) {}},
      {"layer-gsa-gqa-conv", Family::gsa,
       [](CheckpointSpec& s) {
         s.num_heads = 4;
         s.num_kv_heads = 2;
         s.use_short_conv = true;
       }},
      {"layer-gsa-t2r", Family::gsa, [](CheckpointSpec& s) { s.feature_map = "t2r"; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    check_layers(c);
  }
}
