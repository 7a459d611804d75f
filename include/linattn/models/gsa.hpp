// fla's GSAForCausalLM (SPEC §5.2, §6) assembled from linattn's layers.
#pragma once

#include "linattn/models/common.hpp"

namespace linattn::models {

using GSAModel = lm::CausalLM<nn::GSAAttention, nn::GatedMLP, lm::DenseHead>;

inline GSAModel load_gsa(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  using namespace detail;
  const ConfigReader cfg{ckpt};
  const DenseLMShape s = read_dense_lm_shape(cfg, Family::gsa, 1.0);
  if (s.sizes.heads * s.sizes.head_v != s.sizes.hidden)
    ckpt.fail("config.json expand_v must give value_dim = hidden_size (the output norm is [hidden_size], SPEC §8.12)");

  nn::GSAAttentionConfig a;
  set_attention_sizes(a, s.sizes);
  a.num_slots = cfg.positive("num_slots", s.sizes.head_k);
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
  Sizes sizes = s.sizes;
  sizes.slots = a.num_slots;
  Layout y;
  y.g_norm = ckpt.get<bool>("elementwise_affine", true);
  y.t2r = a.feature_map == nn::GSAFeatureMap::t2r;
  y.conv_width = s.conv_width;
  const Schema schema(Family::gsa, sizes, detect_dense_layout(ckpt, Family::gsa, y));

  return load_dense_lm<GSAModel>(ckpt, schema, s.norm_eps, options, [&](index_t l) {
    nn::GSAAttentionWeights w;
    w.qkv = load_qkv(ckpt, schema, l);
    w.f_proj = read_linear(ckpt, schema.at(Role::f_proj, Part::weight, l));
    w.o_proj = read_linear(ckpt, schema.at(Role::o_proj, Part::weight, l));
    if (const TensorSlot* t2r = schema.find(Role::t2r, Part::weight, l)) w.t2r = read_linear(ckpt, *t2r);
    if (const TensorSlot* n = schema.find(Role::g_norm, Part::weight, l)) w.g_norm = read_vector(ckpt, *n);
    return nn::GSAAttention(a, std::move(w));
  });
}

}  // namespace linattn::models
