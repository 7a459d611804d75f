// fla's GLAForCausalLM (SPEC §5.1, §6) assembled from linattn's layers.
#pragma once

#include "linattn/models/common.hpp"

namespace linattn::models {

using GLAModel = lm::CausalLM<nn::GLAAttention, nn::GatedMLP, lm::DenseHead>;

inline GLAModel load_gla(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  using namespace detail;
  const ConfigReader cfg{ckpt};
  const DenseLMShape s = read_dense_lm_shape(cfg, "gla", 0.5);
  cfg.expect_one_of("attn_mode", "chunk", {"chunk", "fused_recurrent", "fused_chunk"});
  if (!ckpt.get<bool>("use_gk", true) || ckpt.get<bool>("use_gv", false))
    ckpt.fail("config.json use_gk = false or use_gv = true is not supported (GLA models gate keys only)");

  nn::GLAAttentionConfig a;
  set_attention_sizes(a, s);
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
  const bool affine = ckpt.get<bool>("elementwise_affine", true);
  const index_t D = s.hidden, HV = s.heads * s.head_v, KVK = s.kv_heads * s.head_k;

  return load_dense_lm<GLAModel>(ckpt, s, options, [&](const std::string& at) {
    nn::GLAAttentionWeights w;
    w.qkv = load_qkv(ckpt, at, s);
    if (a.use_output_gate) w.g_proj = load_linear(ckpt, at + "g_proj.weight", HV, D);
    const auto& gk0 = ckpt.info(at + "gk_proj.0.weight").shape;  // [rank, D]: the low rank is the checkpoint's
    if (gk0.size() != 2)
      ckpt.fail("tensor \"" + at + "gk_proj.0.weight\" has shape " + io::detail::shape_str(gk0) + ", expected [rank, " +
                std::to_string(D) + "]");
    const index_t rank = gk0[0];
    w.gk_proj0 = load_linear(ckpt, at + "gk_proj.0.weight", rank, D);
    w.gk_proj1 = nn::Linear(ckpt.floats(at + "gk_proj.1.weight", {KVK, rank}), ckpt.vector(at + "gk_proj.1.bias", KVK));
    w.o_proj = load_linear(ckpt, at + "o_proj.weight", D, HV);
    if (affine) w.g_norm = ckpt.vector(pick(ckpt, {at + "g_norm_swish_gate.weight", at + "g_norm.weight"}), s.head_v);
    return nn::GLAAttention(a, std::move(w));
  });
}

}  // namespace linattn::models
