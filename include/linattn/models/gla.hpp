// fla's GLAForCausalLM (SPEC §5.1, §6) assembled from linattn's layers.
#pragma once

#include "linattn/models/common.hpp"

namespace linattn::models {

using GLAModel = lm::CausalLM<nn::GLAAttention, nn::GatedMLP, lm::DenseHead>;

inline GLAModel load_gla(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  using namespace detail;
  const ConfigReader cfg{ckpt};
  const DenseLMShape s = read_dense_lm_shape(cfg, Family::gla, 0.5);
  cfg.expect_one_of("attn_mode", "chunk", {"chunk", "fused_recurrent", "fused_chunk"});
  if (!ckpt.get<bool>("use_gk", true) || ckpt.get<bool>("use_gv", false))
    ckpt.fail("config.json use_gk = false or use_gv = true is not supported (GLA models gate keys only)");

  nn::GLAAttentionConfig a;
  set_attention_sizes(a, s.sizes);
  a.use_output_gate = ckpt.get<bool>("use_output_gate", true);
  if (ckpt.has("clamp_min")) {
    a.clamp_min = ckpt.get<float>("clamp_min", 0.0f);
    // The clamp bounds a log-gate from below; above 0 every gate would exceed 1 and grow the state.
    if (!(*a.clamp_min <= 0.0f)) ckpt.fail("config.json \"clamp_min\" = " + std::to_string(*a.clamp_min) + " must be <= 0");
  }
  if (ckpt.has("feature_map")) {
    try {
      a.feature_map = nn::activation_from_name(ckpt.get<std::string>("feature_map", ""));
    } catch (const std::invalid_argument& e) {
      ckpt.fail(std::string("config.json \"feature_map\": ") + e.what());
    }
  }
  a.norm_eps = s.norm_eps;
  Layout y;
  y.output_gate = a.use_output_gate;
  y.g_norm = ckpt.get<bool>("elementwise_affine", true);
  y.conv_width = s.conv_width;
  const Schema schema(Family::gla, s.sizes, detect_dense_layout(ckpt, Family::gla, y));

  return load_dense_lm<GLAModel>(ckpt, schema, s.norm_eps, options, [&](index_t l) {
    const auto slot = [&](Role r, Part p = Part::weight) -> const TensorSlot& { return schema.at(r, p, l); };
    nn::GLAAttentionWeights w;
    w.qkv = load_qkv(ckpt, schema, l);
    if (const TensorSlot* g = schema.find(Role::g_proj, Part::weight, l)) w.g_proj = read_linear(ckpt, *g);
    w.gk_proj0 = read_linear(ckpt, slot(Role::gk_proj0));
    w.gk_proj1 = nn::Linear(read(ckpt, slot(Role::gk_proj1)), read_vector(ckpt, slot(Role::gk_proj1, Part::bias)));
    w.o_proj = read_linear(ckpt, slot(Role::o_proj));
    if (const TensorSlot* n = schema.find(Role::g_norm, Part::weight, l)) w.g_norm = read_vector(ckpt, *n);
    return nn::GLAAttention(a, std::move(w));
  });
}

}  // namespace linattn::models
