// What the three model families share when they load a Hugging Face checkpoint: the load options
// and stop ids (public), and in detail:: config validation, norms, dense projections and the gated
// MLP in both key layouts.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "linattn/linattn.hpp"

namespace linattn::models {

struct LoadOptions {
  Threads threads;                                    // every projection and recurrence
  ternary::Packing packing = ternary::Packing::bits2; // MatMul-free LM BitLinear weights
  bool dense_reference = false;  // MatMul-free LM: also keep float γ·W_q for the reference path (16× the memory)
  std::function<void(index_t, index_t)> progress;  // (layers loaded, layers in all), after each layer
};

// The ids that end a generation: config.json eos_token_id, an id or a list of ids, each in
// [0, vocab); none when the config has none.
inline std::vector<std::int64_t> stop_ids(const io::Checkpoint& ckpt, index_t vocab) {
  std::vector<std::int64_t> ids;
  if (!ckpt.has("eos_token_id")) return ids;
  const auto& eos = ckpt.config()["eos_token_id"];
  for (const auto& e : eos.is_array() ? eos : nlohmann::json::array({eos})) {
    // Integers only (2.7 is not an id, and a float-to-integer conversion would truncate it).
    const bool in_vocab = e.is_number_unsigned() ? e.get<std::uint64_t>() < static_cast<std::uint64_t>(vocab)
                                                 : false;  // negative, fractional or not a number
    if (!in_vocab)
      ckpt.fail("config.json \"eos_token_id\" " + io::detail::json_excerpt(e) + " is not an id of the vocabulary [0, " +
                std::to_string(vocab) + ")");
    ids.push_back(static_cast<std::int64_t>(e.get<std::uint64_t>()));
  }
  return ids;
}

// What the loaders share; not part of the API.
namespace detail {

// Reads config fields and fails naming the field for values the model cannot honour.
struct ConfigReader {
  const io::Checkpoint& ckpt;

  void expect_model_type(const std::string& want) const {
    const auto got = ckpt.require<std::string>("model_type");
    if (got != want) ckpt.fail("config.json model_type is \"" + got + "\", this loader reads \"" + want + "\"");
  }
  void expect_null(const std::string& field, const std::string& why) const {
    if (ckpt.has(field))
      ckpt.fail("config.json \"" + field + "\" = " + io::detail::json_excerpt(ckpt.config()[field]) + " is not supported: " + why);
  }
  void expect_one_of(const std::string& field, const std::string& fallback, std::initializer_list<const char*> allowed) const {
    const auto v = ckpt.get<std::string>(field, fallback);
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return;
      list += std::string(list.empty() ? "" : ", ") + a;
    }
    ckpt.fail("config.json \"" + field + "\" = \"" + v.substr(0, 64) + "\" is not one of: " + list);
  }
  // A size no model could have (2^31 features, layers or ids) is a corrupt config; below it,
  // products of two sizes still fit index_t, and the weights' shapes catch the rest.
  static constexpr index_t kMaxSize = index_t{1} << 31;
  index_t positive(const std::string& field, index_t fallback) const { return size(field, ckpt.get<index_t>(field, fallback)); }
  index_t positive(const std::string& field) const { return size(field, ckpt.require<index_t>(field)); }
  // A finite real in (0, max].
  double positive_real(const std::string& field, double fallback, double max) const {
    const double v = ckpt.get<double>(field, fallback);
    if (!(v > 0.0 && v <= max))
      ckpt.fail("config.json \"" + field + "\" = " + io::detail::json_excerpt(v) + " must be in (0, " + io::detail::json_excerpt(max) + "]");
    return v;
  }
  // int(D·ratio), which must split evenly over the heads.
  index_t head_dim(index_t hidden, const std::string& field, double fallback, index_t heads) const {
    const double ratio = positive_real(field, fallback, 1024.0);
    const double product = static_cast<double>(hidden) * ratio;
    const auto dim = product < static_cast<double>(kMaxSize) ? static_cast<index_t>(product) : kMaxSize;
    if (dim <= 0 || dim >= kMaxSize || dim % heads != 0)
      ckpt.fail("config.json \"" + field + "\" = " + io::detail::json_excerpt(ratio) + " gives dimension " + std::to_string(dim) +
                ", not a positive multiple of num_heads = " + std::to_string(heads) + " below 2^31");
    return dim / heads;
  }
  index_t intermediate_size(index_t hidden) const {
    if (ckpt.has("intermediate_size")) return positive("intermediate_size");
    const double ratio = positive_real("hidden_ratio", 4.0, 1024.0);
    return size("intermediate_size (from hidden_ratio)", nn::default_intermediate_size(hidden, ratio));
  }
  // An RMSNorm epsilon: finite, >= 0 and below 1 (beyond that it is not a guard but the scale).
  float norm_eps(const std::string& field, float fallback) const {
    const auto v = ckpt.get<float>(field, fallback);
    if (!(v >= 0.0f && v < 1.0f)) ckpt.fail("config.json \"" + field + "\" = " + io::detail::json_excerpt(v) + " must be in [0, 1)");
    return v;
  }

 private:
  index_t size(const std::string& field, index_t v) const {
    if (v <= 0) ckpt.fail("config.json \"" + field + "\" = " + std::to_string(v) + " must be positive");
    if (v >= kMaxSize) ckpt.fail("config.json \"" + field + "\" = " + std::to_string(v) + " is absurd (limit 2^31)");
    return v;
  }
};

inline std::vector<float> load_norm(const io::Checkpoint& ckpt, const std::string& key, index_t n) {
  return ckpt.vector(key, n);
}

// The first key that exists (legacy layouts); the error names the current one.
inline std::string pick(const io::Checkpoint& ckpt, std::initializer_list<std::string> keys) {
  for (const auto& k : keys)
    if (ckpt.contains(k)) return k;
  ckpt.fail("has no tensor \"" + *keys.begin() + "\"");
}

inline nn::Linear load_linear(const io::Checkpoint& ckpt, const std::string& key, index_t out, index_t in) {
  return nn::Linear(ckpt.floats(key, {out, in}));
}

// Rows [r0, r0 + rows) of a float matrix, sharing its storage.
inline io::FloatTensor row_slice(const io::FloatTensor& t, index_t r0, index_t rows) {
  io::FloatTensor s = t;
  s.shape = {rows, t.shape[1]};
  s.data = t.data + r0 * t.shape[1];
  return s;
}

// GatedMLP from gate_proj/up_proj/down_proj, or the legacy fused gate_proj [2I, D] (SPEC §5.0).
inline nn::GatedMLP load_gated_mlp(const io::Checkpoint& ckpt, const std::string& prefix, index_t D, index_t I) {
  if (ckpt.contains(prefix + "up_proj.weight"))
    return nn::GatedMLP(load_linear(ckpt, prefix + "gate_proj.weight", I, D), load_linear(ckpt, prefix + "up_proj.weight", I, D),
                        load_linear(ckpt, prefix + "down_proj.weight", D, I));
  const io::FloatTensor fused = ckpt.floats(prefix + "gate_proj.weight", {2 * I, D});
  return nn::GatedMLP(nn::Linear(row_slice(fused, 0, I)), nn::Linear(row_slice(fused, I, I)),
                      load_linear(ckpt, prefix + "down_proj.weight", D, I));
}

// hidden_act of every MLP here is swish (SPEC §5.0).
inline void expect_swish(const ConfigReader& cfg) { cfg.expect_one_of("hidden_act", "swish", {"swish", "silu"}); }

// lm_head.weight, or the embeddings when tied (the checkpoint may omit lm_head.weight).
inline io::FloatTensor head_weight(const io::Checkpoint& ckpt, const io::FloatTensor& embeddings, bool tied) {
  if (tied && !ckpt.contains("lm_head.weight")) return embeddings;
  return ckpt.floats("lm_head.weight", embeddings.shape);
}

// Tensors nobody asked for mean the checkpoint is not the model the config describes.
inline void expect_all_used(const io::Checkpoint& ckpt) {
  const auto unused = ckpt.unused_keys();
  if (unused.empty()) return;
  std::string list;
  for (std::size_t i = 0; i < unused.size() && i < 8; ++i) list += (i ? ", " : "") + unused[i];
  if (unused.size() > 8) list += ", ... (" + std::to_string(unused.size()) + " in all)";
  ckpt.fail("tensors not used by the model its config.json describes: " + list);
}

// ---- GLA and GSA: everything around the token mixer -------------------------------------------

// Sizes of fla's GLA and GSA models (SPEC §6 table); expand_k's default differs (0.5 / 1).
struct DenseLMShape {
  index_t hidden = 0, layers = 0, vocab = 0, intermediate = 0;
  index_t heads = 0, kv_heads = 0, head_k = 0, head_v = 0;
  index_t conv_width = 0;  // 0: no short convolutions
  float norm_eps = 1e-6f;
};

inline DenseLMShape read_dense_lm_shape(const ConfigReader& cfg, const std::string& model_type, double expand_k) {
  const io::Checkpoint& ckpt = cfg.ckpt;
  cfg.expect_model_type(model_type);
  cfg.expect_null("attn", "hybrid softmax-attention layers are out of scope");
  cfg.expect_null("attnres_block_size", "attention residual blocks are out of scope");
  expect_swish(cfg);
  DenseLMShape s;
  s.hidden = cfg.positive("hidden_size");
  s.layers = cfg.positive("num_hidden_layers");
  s.vocab = cfg.positive("vocab_size");
  s.intermediate = cfg.intermediate_size(s.hidden);
  s.heads = cfg.positive("num_heads", 4);
  s.kv_heads = cfg.positive("num_kv_heads", s.heads);
  if (s.heads % s.kv_heads != 0)
    ckpt.fail("config.json num_heads = " + std::to_string(s.heads) + " is not a multiple of num_kv_heads = " +
              std::to_string(s.kv_heads));
  s.head_k = cfg.head_dim(s.hidden, "expand_k", expand_k, s.heads);
  s.head_v = cfg.head_dim(s.hidden, "expand_v", 1.0, s.heads);
  if (ckpt.get<bool>("use_short_conv", false)) s.conv_width = cfg.positive("conv_size", 4);
  s.norm_eps = cfg.norm_eps("norm_eps", 1e-6f);
  return s;
}

// The sizes every attention config (GLAAttentionConfig, GSAAttentionConfig) takes from the model's.
template <class AttentionConfig>
void set_attention_sizes(AttentionConfig& a, const DenseLMShape& s) {
  a.hidden_size = s.hidden;
  a.num_heads = s.heads;
  a.num_kv_heads = s.kv_heads;
  a.head_k_dim = s.head_k;
  a.head_v_dim = s.head_v;
}

// q, k, v projections of attention prefix `at` ("model.layers.i.attn."), with their
// convolutions (and conv biases, if the checkpoint has them) when s.conv_width > 0.
inline nn::QKVProjection load_qkv(const io::Checkpoint& ckpt, const std::string& at, const DenseLMShape& s) {
  const index_t q_out = s.heads * s.head_k, k_out = s.kv_heads * s.head_k, v_out = s.kv_heads * s.head_v;
  nn::QKVProjection qkv;
  qkv.q_proj = load_linear(ckpt, at + "q_proj.weight", q_out, s.hidden);
  qkv.k_proj = load_linear(ckpt, at + "k_proj.weight", k_out, s.hidden);
  qkv.v_proj = load_linear(ckpt, at + "v_proj.weight", v_out, s.hidden);
  if (s.conv_width > 0) {
    const auto conv_of = [&](const char* name, index_t channels) {
      const std::string key = at + name + "_conv1d.";
      return nn::ShortConvolution(ckpt.floats(key + "weight", {channels, 1, s.conv_width}),
                                  ckpt.contains(key + "bias") ? ckpt.vector(key + "bias", channels) : std::vector<float>{});
    };
    qkv.q_conv = conv_of("q", q_out);
    qkv.k_conv = conv_of("k", k_out);
    qkv.v_conv = conv_of("v", v_out);
  }
  return qkv;
}

// Embeddings, L blocks (pre-norms under their current or legacy keys, SPEC §8.10; GatedMLP
// current or fused), final norm and the dense head (tied or not). make_mixer(at) loads the
// token mixer of the attention prefix `at`.
template <class Model, class MakeMixer>
Model load_dense_lm(const io::Checkpoint& ckpt, const DenseLMShape& s, const LoadOptions& options, MakeMixer&& make_mixer) {
  const index_t D = s.hidden;
  const io::FloatTensor embeddings = ckpt.floats("model.embeddings.weight", {s.vocab, D});
  std::vector<typename Model::Block> blocks;
  for (index_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", at = p + "attn.";
    blocks.push_back({load_norm(ckpt, pick(ckpt, {p + "attn_norm.weight", at + "norm.weight"}), D),
                      load_norm(ckpt, pick(ckpt, {p + "mlp_norm.weight", p + "mlp.norm.weight"}), D), make_mixer(at),
                      load_gated_mlp(ckpt, p + "mlp.", D, s.intermediate)});
    if (options.progress) options.progress(l + 1, s.layers);
  }
  std::vector<float> norm = load_norm(ckpt, "model.norm.weight", D);
  lm::DenseHead head{nn::Linear(head_weight(ckpt, embeddings, ckpt.get<bool>("tie_word_embeddings", false)))};
  expect_all_used(ckpt);
  return Model(embeddings, std::move(blocks), std::move(norm), std::move(head), s.norm_eps);
}

}  // namespace detail
}  // namespace linattn::models
