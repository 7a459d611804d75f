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

  Sizes sizes;
  sizes.vocab = V;
  sizes.hidden = D;
  sizes.layers = L;
  sizes.intermediate = I;
  sizes.heads = heads;
  sizes.expanded = E;
  Layout y;
  y.fused_mlp = true;
  y.lower_bounds = use_lb;
  y.lm_head = stores_head(ckpt, Family::hgrn_bit);
  const Schema schema(Family::hgrn_bit, sizes, y);

  nn::BitLinearOptions bl;
  bl.packing = options.packing;
  bl.kernel.threads = options.threads;
  // The BitLinear of (role, layer); `weight` replaces a tied head's missing weight.
  const auto bitlinear = [&](Role r, index_t l, const io::FloatTensor* weight = nullptr) {
    const TensorSlot* w = weight ? nullptr : &schema.at(r, Part::weight, l);
    nn::BitLinear layer(weight ? weight->matrix() : read(ckpt, *w).matrix(),
                        read_vector(ckpt, schema.at(r, Part::input_norm, l)), bl);
    if (w) ckpt.release(w->key);
    if (options.dense_reference) layer.keep_dense_weights();
    return layer;
  };

  const io::FloatTensor embeddings = read(ckpt, schema.at(Role::embeddings));
  std::vector<std::vector<float>> lb;
  if (use_lb) lb = lower_bounds(read(ckpt, schema.at(Role::lower_bounds)));
  std::vector<HGRNBitModel::Block> blocks;
  for (index_t l = 0; l < L; ++l) {
    nn::MLGRU mixer(bitlinear(Role::i_proj, l), bitlinear(Role::f_proj, l), bitlinear(Role::g_proj, l),
                    bitlinear(Role::o_proj, l), read_vector(ckpt, schema.at(Role::g_norm, Part::weight, l)), eps,
                    use_lb && l > 0 ? lb[static_cast<std::size_t>(l)] : std::vector<float>{});
    nn::GLU mlp(bitlinear(Role::gate_proj, l), bitlinear(Role::down_proj, l));
    blocks.push_back({read_vector(ckpt, schema.at(Role::attn_norm, Part::weight, l)),
                      read_vector(ckpt, schema.at(Role::mlp_norm, Part::weight, l)), std::move(mixer), std::move(mlp)});
    if (options.progress) options.progress(l + 1, L);
  }
  std::vector<float> norm = read_vector(ckpt, schema.at(Role::final_norm));
  lm::BitLinearHead head{bitlinear(Role::lm_head, -1, y.lm_head ? nullptr : &embeddings)};
  expect_all_used(ckpt);
  return HGRNBitModel(embeddings, std::move(blocks), std::move(norm), std::move(head), eps);
}

}  // namespace linattn::models
