// fla's GLAForCausalLM (SPEC §5.1, §6) assembled from linattn's layers.
#pragma once

#include "models/common.hpp"

namespace linattn::examples {

using GLAModel = lm::CausalLM<nn::GLAAttention, nn::GatedMLP, lm::DenseHead>;

inline GLAModel load_gla(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  const ConfigReader cfg{ckpt};
  cfg.expect_model_type("gla");
  cfg.expect_null("attn", "hybrid softmax-attention layers are out of scope");
  cfg.expect_null("attnres_block_size", "attention residual blocks are out of scope");
  expect_swish(cfg);
  cfg.expect_one_of("attn_mode", "chunk", {"chunk", "fused_recurrent", "fused_chunk"});
  if (!ckpt.get<bool>("use_gk", true) || ckpt.get<bool>("use_gv", false))
    ckpt.fail("config.json use_gk = false or use_gv = true is not supported (GLA models gate keys only)");

  const index_t D = cfg.positive("hidden_size"), L = cfg.positive("num_hidden_layers"), V = cfg.positive("vocab_size");
  nn::GLAAttentionConfig a;
  a.hidden_size = D;
  a.num_heads = cfg.positive("num_heads", 4);
  a.num_kv_heads = cfg.positive("num_kv_heads", a.num_heads);
  if (a.num_heads % a.num_kv_heads != 0)
    ckpt.fail("config.json num_heads = " + std::to_string(a.num_heads) + " is not a multiple of num_kv_heads = " +
              std::to_string(a.num_kv_heads));
  a.head_k_dim = cfg.head_dim(D, "expand_k", 0.5, a.num_heads);
  a.head_v_dim = cfg.head_dim(D, "expand_v", 1.0, a.num_heads);
  a.use_output_gate = ckpt.get<bool>("use_output_gate", true);
  if (ckpt.has("clamp_min")) a.clamp_min = ckpt.get<float>("clamp_min", 0.0f);
  if (ckpt.has("feature_map")) {
    try {
      a.feature_map = nn::activation_from_name(ckpt.get<std::string>("feature_map", ""));
    } catch (const std::invalid_argument& e) {
      ckpt.fail(std::string("config.json \"feature_map\": ") + e.what());
    }
  }
  a.norm_eps = ckpt.get<float>("norm_eps", 1e-6f);
  const bool affine = ckpt.get<bool>("elementwise_affine", true);
  const bool conv = ckpt.get<bool>("use_short_conv", false);
  const index_t W = conv ? cfg.positive("conv_size", 4) : 0;
  const index_t I = cfg.intermediate_size(D);
  const index_t G = a.num_heads / a.num_kv_heads, KD = a.num_heads * a.head_k_dim, VD = a.num_heads * a.head_v_dim;

  const io::FloatTensor embeddings = ckpt.floats("model.embeddings.weight", {V, D});
  std::vector<GLAModel::Block> blocks;
  for (index_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", at = p + "attn.";
    nn::GLAAttentionWeights w;
    w.q_proj = load_linear(ckpt, at + "q_proj.weight", KD, D);
    w.k_proj = load_linear(ckpt, at + "k_proj.weight", KD / G, D);
    w.v_proj = load_linear(ckpt, at + "v_proj.weight", VD / G, D);
    if (a.use_output_gate) w.g_proj = load_linear(ckpt, at + "g_proj.weight", VD, D);
    const index_t rank = ckpt.info(at + "gk_proj.0.weight").shape.at(0);
    w.gk_proj0 = load_linear(ckpt, at + "gk_proj.0.weight", rank, D);
    w.gk_proj1 = nn::Linear(ckpt.floats(at + "gk_proj.1.weight", {KD / G, rank}), ckpt.vector(at + "gk_proj.1.bias", KD / G));
    w.o_proj = load_linear(ckpt, at + "o_proj.weight", D, VD);
    if (affine)
      w.g_norm = ckpt.vector(pick(ckpt, {at + "g_norm_swish_gate.weight", at + "g_norm.weight"}), a.head_v_dim);
    if (conv) {
      const auto conv_of = [&](const char* name, index_t channels) {
        const std::string key = at + name + "_conv1d.";
        return nn::ShortConvolution(ckpt.floats(key + "weight", {channels, 1, W}),
                                    ckpt.contains(key + "bias") ? ckpt.vector(key + "bias", channels) : std::vector<float>{});
      };
      w.q_conv = conv_of("q", KD);
      w.k_conv = conv_of("k", KD / G);
      w.v_conv = conv_of("v", VD / G);
    }
    blocks.push_back({load_norm(ckpt, pick(ckpt, {p + "attn_norm.weight", at + "norm.weight"}), D),
                      load_norm(ckpt, pick(ckpt, {p + "mlp_norm.weight", p + "mlp.norm.weight"}), D),
                      nn::GLAAttention(a, std::move(w)), load_gated_mlp(ckpt, p + "mlp.", D, I)});
    if (options.progress) options.progress(l + 1, L);
  }
  std::vector<float> norm = load_norm(ckpt, "model.norm.weight", D);
  lm::DenseHead head{nn::Linear(head_weight(ckpt, embeddings, ckpt.get<bool>("tie_word_embeddings", false)))};
  expect_all_used(ckpt);
  return GLAModel(embeddings, std::move(blocks), std::move(norm), std::move(head), a.norm_eps);
}

}  // namespace linattn::examples
