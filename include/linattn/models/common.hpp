// What the three model families share when they load a Hugging Face checkpoint: the load options
// and stop ids (public), and in detail:: config validation, norms, dense projections and the gated
// MLP in both key layouts.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "linattn/linattn.hpp"
#include "linattn/models/schema.hpp"

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

// A tensor of the schema, checked against its shape there.
inline io::FloatTensor read(const io::Checkpoint& ckpt, const TensorSlot& t) { return ckpt.floats(t.key, t.shape); }
inline std::vector<float> read_vector(const io::Checkpoint& ckpt, const TensorSlot& t) { return read(ckpt, t).to_vector(); }
inline nn::Linear read_linear(const io::Checkpoint& ckpt, const TensorSlot& t) { return nn::Linear(read(ckpt, t)); }

// Rows [r0, r0 + rows) of a float matrix, sharing its storage.
inline io::FloatTensor row_slice(const io::FloatTensor& t, index_t r0, index_t rows) {
  io::FloatTensor s = t;
  s.shape = {rows, t.shape[1]};
  s.data = t.data + r0 * t.shape[1];
  return s;
}

// GatedMLP of block l from gate_proj/up_proj/down_proj, or the legacy fused gate_proj [2I, D]
// (SPEC §5.0).
inline nn::GatedMLP load_gated_mlp(const io::Checkpoint& ckpt, const Schema& schema, index_t l) {
  const TensorSlot& gate = schema.at(Role::gate_proj, Part::weight, l);
  nn::Linear down = read_linear(ckpt, schema.at(Role::down_proj, Part::weight, l));
  if (const TensorSlot* up = schema.find(Role::up_proj, Part::weight, l))
    return nn::GatedMLP(read_linear(ckpt, gate), read_linear(ckpt, *up), std::move(down));
  const io::FloatTensor fused = read(ckpt, gate);
  const index_t I = schema.sizes().intermediate;
  return nn::GatedMLP(nn::Linear(row_slice(fused, 0, I)), nn::Linear(row_slice(fused, I, I)), std::move(down));
}

// hidden_act of every MLP here is swish (SPEC §5.0).
inline void expect_swish(const ConfigReader& cfg) { cfg.expect_one_of("hidden_act", "swish", {"swish", "silu"}); }

// lm_head.weight, or the embeddings when the schema has no head (tied and not stored).
inline io::FloatTensor head_weight(const io::Checkpoint& ckpt, const Schema& schema, const io::FloatTensor& embeddings) {
  const TensorSlot* head = schema.find(Role::lm_head);
  return head ? read(ckpt, *head) : embeddings;
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

// The head is stored unless config.json ties it and the checkpoint leaves it out.
inline bool stores_head(const io::Checkpoint& ckpt, Family f) {
  return !ckpt.get<bool>("tie_word_embeddings", false) || ckpt.contains(detail::tensor_key(f, Role::lm_head, Part::weight, -1, {}));
}

// ---- GLA and GSA: everything around the token mixer -------------------------------------------

// Sizes of fla's GLA and GSA models (SPEC §6 table); expand_k's default differs (0.5 / 1).
struct DenseLMShape {
  Sizes sizes;
  index_t conv_width = 0;  // 0: no short convolutions
  float norm_eps = 1e-6f;
};

inline DenseLMShape read_dense_lm_shape(const ConfigReader& cfg, Family family, double expand_k) {
  const io::Checkpoint& ckpt = cfg.ckpt;
  cfg.expect_model_type(std::string(family_name(family)));
  cfg.expect_null("attn", "hybrid softmax-attention layers are out of scope");
  cfg.expect_null("attnres_block_size", "attention residual blocks are out of scope");
  expect_swish(cfg);
  DenseLMShape d;
  Sizes& s = d.sizes;
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
  if (ckpt.get<bool>("use_short_conv", false)) d.conv_width = cfg.positive("conv_size", 4);
  d.norm_eps = cfg.norm_eps("norm_eps", 1e-6f);
  return d;
}

// Completes a GLA/GSA layout the config fixed (output gate, g_norm, convolutions, t2r) with the
// variants only the tensors show, read from block 0: the legacy block norms and fused MLP
// (SPEC §5.0, §8.10), GLA's norm key and gk_proj rank, convolution biases, a stored tied head.
inline Layout detect_dense_layout(const io::Checkpoint& ckpt, Family f, Layout y) {
  const auto has = [&](Role r, Part p, const Layout& v) { return ckpt.contains(detail::tensor_key(f, r, p, 0, v)); };
  Layout legacy = y;
  legacy.legacy_block_norms = true;
  y.legacy_block_norms = !has(Role::attn_norm, Part::weight, y) && has(Role::attn_norm, Part::weight, legacy);
  y.fused_mlp = !has(Role::up_proj, Part::weight, y);
  y.conv_bias = y.conv_width > 0 && has(Role::q_conv, Part::bias, y);
  if (f == Family::gla) {
    Layout unfused = y;
    unfused.fused_g_norm = false;
    y.fused_g_norm = !(y.g_norm && !has(Role::g_norm, Part::weight, y) && has(Role::g_norm, Part::weight, unfused));
    // The low rank is the checkpoint's: gk_proj.0.weight is [rank, hidden].
    const std::string gk0 = detail::tensor_key(f, Role::gk_proj0, Part::weight, 0, y);
    if (ckpt.contains(gk0)) {
      const auto& shape = ckpt.info(gk0).shape;
      if (shape.size() != 2 || shape[0] <= 0 || shape[0] >= ConfigReader::kMaxSize)
        ckpt.fail("tensor \"" + gk0 + "\" has shape " + io::detail::shape_str(shape) + ", expected [rank, hidden_size]");
      y.gk_rank = shape[0];
    }
  }
  y.lm_head = stores_head(ckpt, f);
  return y;
}

// The sizes every attention config (GLAAttentionConfig, GSAAttentionConfig) takes from the model's.
template <class AttentionConfig>
void set_attention_sizes(AttentionConfig& a, const Sizes& s) {
  a.hidden_size = s.hidden;
  a.num_heads = s.heads;
  a.num_kv_heads = s.kv_heads;
  a.head_k_dim = s.head_k;
  a.head_v_dim = s.head_v;
}

// q, k, v projections of block l, with their short convolutions (and biases) when the layout has them.
inline nn::QKVProjection load_qkv(const io::Checkpoint& ckpt, const Schema& schema, index_t l) {
  nn::QKVProjection qkv;
  qkv.q_proj = read_linear(ckpt, schema.at(Role::q_proj, Part::weight, l));
  qkv.k_proj = read_linear(ckpt, schema.at(Role::k_proj, Part::weight, l));
  qkv.v_proj = read_linear(ckpt, schema.at(Role::v_proj, Part::weight, l));
  if (schema.layout().conv_width > 0) {
    const auto conv_of = [&](Role r) {
      const TensorSlot* bias = schema.find(r, Part::bias, l);
      return nn::ShortConvolution(read(ckpt, schema.at(r, Part::weight, l)), bias ? read_vector(ckpt, *bias) : std::vector<float>{});
    };
    qkv.q_conv = conv_of(Role::q_conv);
    qkv.k_conv = conv_of(Role::k_conv);
    qkv.v_conv = conv_of(Role::v_conv);
  }
  return qkv;
}

// Embeddings, L blocks (pre-norms, the token mixer, the gated MLP), final norm and the dense head
// (tied or not). make_mixer(l) loads the token mixer of block l.
template <class Model, class MakeMixer>
Model load_dense_lm(const io::Checkpoint& ckpt, const Schema& schema, float norm_eps, const LoadOptions& options,
                    MakeMixer&& make_mixer) {
  const index_t L = schema.sizes().layers;
  const io::FloatTensor embeddings = read(ckpt, schema.at(Role::embeddings));
  std::vector<typename Model::Block> blocks;
  for (index_t l = 0; l < L; ++l) {
    blocks.push_back({read_vector(ckpt, schema.at(Role::attn_norm, Part::weight, l)),
                      read_vector(ckpt, schema.at(Role::mlp_norm, Part::weight, l)), make_mixer(l),
                      load_gated_mlp(ckpt, schema, l)});
    if (options.progress) options.progress(l + 1, L);
  }
  std::vector<float> norm = read_vector(ckpt, schema.at(Role::final_norm));
  lm::DenseHead head{nn::Linear(head_weight(ckpt, schema, embeddings))};
  expect_all_used(ckpt);
  return Model(embeddings, std::move(blocks), std::move(norm), std::move(head), norm_eps);
}

}  // namespace detail
}  // namespace linattn::models
