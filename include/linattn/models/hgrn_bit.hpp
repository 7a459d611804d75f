// matmulfreellm's HGRNBitForCausalLM, the MatMul-free LM (SPEC §5.3–5.5, §6), assembled from
// linattn's ternary layers. Every BitLinear weight is ternarised and packed as it is loaded and
// its mapped float pages released, so the float checkpoint is never resident as a whole.
#pragma once

#include <cmath>

#include "linattn/models/common.hpp"

namespace linattn::models {

using HGRNBitModel = lm::CausalLM<nn::MLGRU, nn::GLU, lm::BitLinearHead>;

namespace detail {

// lb = cumsum(softmax(lower_bounds, over layers)) − P_0 (SPEC §6): lb_0 = 0, lb_l = Σ_{i=1..l} P_i.
inline std::vector<std::vector<float>> lower_bounds(const io::FloatTensor& raw) {
  const index_t L = raw.shape[0], D = raw.shape[1];
  std::vector<std::vector<float>> lb(static_cast<std::size_t>(L), std::vector<float>(static_cast<std::size_t>(D)));
  for (index_t d = 0; d < D; ++d) {
    double mx = -INFINITY, sum = 0.0;
    for (index_t l = 0; l < L; ++l) mx = std::max(mx, static_cast<double>(raw.data[l * D + d]));
    for (index_t l = 0; l < L; ++l) sum += std::exp(static_cast<double>(raw.data[l * D + d]) - mx);
    double cum = 0.0;
    for (index_t l = 0; l < L; ++l) {
      if (l > 0) cum += std::exp(static_cast<double>(raw.data[l * D + d]) - mx) / sum;
      lb[static_cast<std::size_t>(l)][static_cast<std::size_t>(d)] = static_cast<float>(cum);
    }
  }
  return lb;
}

}  // namespace detail

inline HGRNBitModel load_hgrn_bit(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  using namespace detail;
  const ConfigReader cfg{ckpt};
  cfg.expect_model_type("hgrn_bit");
  expect_swish(cfg);
  cfg.expect_one_of("attn_mode", "fused_recurrent", {"fused_recurrent", "chunk"});
  if (ckpt.get<bool>("use_short_conv", false))
    ckpt.fail("config.json use_short_conv = true is not supported (the branch is broken upstream, SPEC §5.3)");

  const index_t D = cfg.positive("hidden_size"), L = cfg.positive("num_hidden_layers"), V = cfg.positive("vocab_size");
  const index_t heads = cfg.positive("num_heads", 1);
  const index_t E = heads * cfg.head_dim(D, "expand_ratio", 1.0, heads);
  const index_t I = cfg.intermediate_size(D);
  const float eps = cfg.norm_eps("rms_norm_eps", 1e-6f);
  const bool use_lb = ckpt.get<bool>("use_lower_bound", true);
  if (use_lb && E != D)
    ckpt.fail("config.json expand_ratio = " + std::to_string(ckpt.get<double>("expand_ratio", 1.0)) +
              " with use_lower_bound: the lower bounds are [layers, hidden_size] and gate E = " + std::to_string(E) +
              " features (upstream cannot run this either)");

  nn::BitLinearOptions bl;
  bl.packing = options.packing;
  bl.kernel.threads = options.threads;
  const auto bitlinear = [&](const std::string& p, index_t out, index_t in, const io::FloatTensor* weight = nullptr) {
    const std::string key = p + ".weight";
    nn::BitLinear layer(weight ? weight->matrix() : ckpt.floats(key, {out, in}).matrix(), ckpt.vector(p + ".norm.weight", in), bl);
    if (!weight) ckpt.release(key);
    if (options.dense_reference) layer.keep_dense_weights();
    return layer;
  };

  const io::FloatTensor embeddings = ckpt.floats("model.embeddings.weight", {V, D});
  std::vector<std::vector<float>> lb;
  if (use_lb) lb = lower_bounds(ckpt.floats("model.lower_bounds", {L, D}));
  std::vector<HGRNBitModel::Block> blocks;
  for (index_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", at = p + "attn.";
    nn::MLGRU mixer(bitlinear(at + "i_proj", E, D), bitlinear(at + "f_proj", E, D), bitlinear(at + "g_proj", E, D),
                    bitlinear(at + "o_proj", D, E), ckpt.vector(at + "g_norm.weight", E), eps,
                    use_lb && l > 0 ? lb[static_cast<std::size_t>(l)] : std::vector<float>{});
    nn::GLU mlp(bitlinear(p + "mlp.gate_proj", 2 * I, D), bitlinear(p + "mlp.down_proj", D, I));
    blocks.push_back({load_norm(ckpt, p + "attn_norm.weight", D), load_norm(ckpt, p + "mlp_norm.weight", D),
                      std::move(mixer), std::move(mlp)});
    if (options.progress) options.progress(l + 1, L);
  }
  std::vector<float> norm = load_norm(ckpt, "model.norm.weight", D);
  const bool tied = ckpt.get<bool>("tie_word_embeddings", false) && !ckpt.contains("lm_head.weight");
  lm::BitLinearHead head{bitlinear("lm_head", V, D, tied ? &embeddings : nullptr)};
  expect_all_used(ckpt);
  return HGRNBitModel(embeddings, std::move(blocks), std::move(norm), std::move(head), eps);
}

}  // namespace linattn::models
