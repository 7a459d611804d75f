// fla's GSAForCausalLM (SPEC §5.2, §6) assembled from linattn's layers.
#pragma once

#include "models/common.hpp"

namespace linattn::examples {

using GSAModel = lm::CausalLM<nn::GSAAttention, nn::GatedMLP, lm::DenseHead>;

inline GSAModel load_gsa(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  const ConfigReader cfg{ckpt};
  cfg.expect_model_type("gsa");
  cfg.expect_null("attn", "hybrid softmax-attention layers are out of scope");
  cfg.expect_null("attnres_block_size", "attention residual blocks are out of scope");
  expect_swish(cfg);

  const index_t D = cfg.positive("hidden_size"), L = cfg.positive("num_hidden_layers"), V = cfg.positive("vocab_size");
  nn::GSAAttentionConfig a;
  a.hidden_size = D;
  a.num_heads = cfg.positive("num_heads", 4);
  a.num_kv_heads = cfg.positive("num_kv_heads", a.num_heads);
  if (a.num_heads % a.num_kv_heads != 0)
    ckpt.fail("config.json num_heads = " + std::to_string(a.num_heads) + " is not a multiple of num_kv_heads = " +
              std::to_string(a.num_kv_heads));
  a.head_k_dim = cfg.head_dim(D, "expand_k", 1.0, a.num_heads);
  a.head_v_dim = cfg.head_dim(D, "expand_v", 1.0, a.num_heads);
  if (a.num_heads * a.head_v_dim != D)
    ckpt.fail("config.json expand_v must give value_dim = hidden_size (the output norm is [hidden_size], SPEC §8.12)");
  a.num_slots = cfg.positive("num_slots", a.head_k_dim);
  a.gate_logit_normalizer = ckpt.get<float>("gate_logit_normalizer", 8.0f);
  if (!(a.gate_logit_normalizer > 0.0f)) ckpt.fail("config.json \"gate_logit_normalizer\" must be positive");
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
  const float eps = ckpt.get<float>("norm_eps", 1e-6f);
  const bool affine = ckpt.get<bool>("elementwise_affine", true);
  const bool conv = ckpt.get<bool>("use_short_conv", false);
  const index_t W = conv ? cfg.positive("conv_size", 4) : 0;
  const index_t I = cfg.intermediate_size(D);
  const index_t Hkv = a.num_kv_heads, KD = a.num_heads * a.head_k_dim;

  const io::FloatTensor embeddings = ckpt.floats("model.embeddings.weight", {V, D});
  std::vector<GSAModel::Block> blocks;
  for (index_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", at = p + "attn.";
    nn::GSAAttentionWeights w;
    w.q_proj = load_linear(ckpt, at + "q_proj.weight", KD, D);
    w.k_proj = load_linear(ckpt, at + "k_proj.weight", Hkv * a.head_k_dim, D);
    w.v_proj = load_linear(ckpt, at + "v_proj.weight", Hkv * a.head_v_dim, D);
    w.f_proj = load_linear(ckpt, at + "f_proj.weight", Hkv * a.num_slots, D);
    w.o_proj = load_linear(ckpt, at + "o_proj.weight", D, D);
    if (a.feature_map == nn::GSAFeatureMap::t2r)
      w.t2r = load_linear(ckpt, at + "feature_map.layer.weight", a.head_k_dim, a.head_k_dim);
    if (affine) w.g_norm = ckpt.vector(at + "g_norm.weight", D);
    if (conv) {
      const auto conv_of = [&](const char* name, index_t channels) {
        const std::string key = at + name + "_conv1d.";
        return nn::ShortConvolution(ckpt.floats(key + "weight", {channels, 1, W}),
                                    ckpt.contains(key + "bias") ? ckpt.vector(key + "bias", channels) : std::vector<float>{});
      };
      w.q_conv = conv_of("q", KD);
      w.k_conv = conv_of("k", Hkv * a.head_k_dim);
      w.v_conv = conv_of("v", Hkv * a.head_v_dim);
    }
    // Legacy (norm_first) checkpoints keep the pre-norms inside attn.norm / mlp.norm (SPEC §8.10).
    blocks.push_back({load_norm(ckpt, pick(ckpt, {p + "attn_norm.weight", at + "norm.weight"}), D),
                      load_norm(ckpt, pick(ckpt, {p + "mlp_norm.weight", p + "mlp.norm.weight"}), D),
                      nn::GSAAttention(a, std::move(w)), load_gated_mlp(ckpt, p + "mlp.", D, I)});
    if (options.progress) options.progress(l + 1, L);
  }
  std::vector<float> norm = load_norm(ckpt, "model.norm.weight", D);
  lm::DenseHead head{nn::Linear(head_weight(ckpt, embeddings, ckpt.get<bool>("tie_word_embeddings", false)))};
  expect_all_used(ckpt);
  return GSAModel(embeddings, std::move(blocks), std::move(norm), std::move(head), eps);
}

}  // namespace linattn::examples
