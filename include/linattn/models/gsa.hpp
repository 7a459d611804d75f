// fla's GSAForCausalLM (SPEC §5.2, §6) assembled from linattn's layers.
#pragma once

#include "linattn/models/common.hpp"

namespace linattn::models {

using GSAModel = lm::CausalLM<nn::GSAAttention, nn::GatedMLP, lm::DenseHead>;

inline GSAModel load_gsa(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  using namespace detail;
  const ConfigReader cfg{ckpt};
  const DenseLMShape s = read_dense_lm_shape(cfg, "gsa", 1.0);
  if (s.heads * s.head_v != s.hidden)
    ckpt.fail("config.json expand_v must give value_dim = hidden_size (the output norm is [hidden_size], SPEC §8.12)");

  nn::GSAAttentionConfig a;
  set_attention_sizes(a, s);
  a.num_slots = cfg.positive("num_slots", s.head_k);
  // Upstream uses 8 or 16; beyond 10^4 every gate is 1 to float precision.
  a.gate_logit_normalizer = static_cast<float>(cfg.positive_real("gate_logit_normalizer", 8.0, 1e4));
  const std::string fm = ckpt.has("feature_map") ? ckpt.get<std::string>("feature_map", "") : "none";
  if (fm == "swish" || fm == "silu")
    a.feature_map = nn::GSAFeatureMap::swish;
  else if (fm == "relu")
    a.feature_map = nn::GSAFeatureMap::relu;
  else if (fm == "t2r")
    a.feature_map = nn::GSAFeatureMap::t2r;
  else if (fm == "none")
    a.feature_map = nn::GSAFeatureMap::none;
  else
    ckpt.fail("config.json \"feature_map\" = \"" + fm + "\" is not one of: swish, relu, t2r, null");
  const bool affine = ckpt.get<bool>("elementwise_affine", true);
  const index_t D = s.hidden;

  return load_dense_lm<GSAModel>(ckpt, s, options, [&](const std::string& at) {
    nn::GSAAttentionWeights w;
    w.qkv = load_qkv(ckpt, at, s);
    w.f_proj = load_linear(ckpt, at + "f_proj.weight", checked_mul(s.kv_heads, a.num_slots, "num_kv_heads x num_slots"), D);
    w.o_proj = load_linear(ckpt, at + "o_proj.weight", D, D);
    if (a.feature_map == nn::GSAFeatureMap::t2r)
      w.t2r = load_linear(ckpt, at + "feature_map.layer.weight", s.head_k, s.head_k);
    if (affine) w.g_norm = ckpt.vector(at + "g_norm.weight", D);
    return nn::GSAAttention(a, std::move(w));
  });
}

}  // namespace linattn::models
