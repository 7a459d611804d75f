// The one table of checkpoint tensors (key, shape) per model family (SPEC §6 "state_dict"), read
// by the loaders (models/gla.hpp, gsa.hpp, hgrn_bit.hpp) and by writers of checkpoints
// (examples/make_checkpoint). Keys are spelled only here, so a loader and a writer cannot drift.
//
// A family's table depends on its sizes (from config.json) and on its layout: the variants
// upstream's checkpoints come in (the 2024 fla layouts of SPEC §5.0 and §8.10, optional output
// gate, norm weights, short convolutions and their biases, tied head). A loader finds the layout
// in the checkpoint (detect_layout); a writer chooses it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "linattn/core/tensor.hpp"

namespace linattn::models {

enum class Family { gla, gsa, hgrn_bit };

// config.json's model_type of a family.
constexpr std::string_view family_name(Family f) {
  switch (f) {
    case Family::gla: return "gla";
    case Family::gsa: return "gsa";
    case Family::hgrn_bit: return "hgrn_bit";
  }
  return "?";
}

// What a tensor is in its layer. A role names the same module in each family that has it
// (f_proj is GSA's slot gate and HGRNBit's forget gate).
enum class Role : std::uint8_t {
  embeddings, lower_bounds, final_norm, lm_head,                         // model level
  attn_norm, mlp_norm,                                                   // block pre-norms
  q_proj, k_proj, v_proj, q_conv, k_conv, v_conv,                        // GLA, GSA
  g_proj, gk_proj0, gk_proj1,                                            // GLA (g_proj: HGRNBit too)
  f_proj, t2r,                                                           // GSA (f_proj: HGRNBit too)
  i_proj,                                                                // HGRNBit
  g_norm, o_proj, gate_proj, up_proj, down_proj,
};

// Which tensor of the module: its weight, its bias, or (HGRNBit's BitLinear) the RMSNorm weight
// over its input.
enum class Part : std::uint8_t { weight, bias, input_norm };

// Sizes from config.json (SPEC §6 table). Those a family lacks stay 0.
struct Sizes {
  index_t vocab = 0, hidden = 0, layers = 0, intermediate = 0;
  index_t heads = 0, kv_heads = 0;  // GLA, GSA: query heads and key/value heads (GQA)
  index_t head_k = 0, head_v = 0;   // GLA, GSA: per-head key / value width
  index_t slots = 0;                // GSA: M
  index_t expanded = 0;             // HGRNBit: E = int(hidden · expand_ratio)
};

// The variants of a family's checkpoint.
struct Layout {
  bool legacy_block_norms = false;  // GLA, GSA: attn.norm / mlp.norm instead of attn_norm / mlp_norm (SPEC §8.10)
  bool fused_mlp = false;           // GLA, GSA: one gate_proj [2I, D] and no up_proj (SPEC §5.0); HGRNBit always
  bool output_gate = true;          // GLA: g_proj
  bool g_norm = true;               // GLA, GSA: elementwise_affine (HGRNBit's g_norm is always there)
  bool fused_g_norm = true;         // GLA: the norm weight under g_norm_swish_gate (true) or g_norm (false)
  index_t gk_rank = 16;             // GLA: low rank of gk_proj (16 upstream; loaders take the checkpoint's)
  bool t2r = false;                 // GSA: feature_map t2r has a [K, K] layer
  index_t conv_width = 0;           // GLA, GSA: short convolutions of width W; 0 = none
  bool conv_bias = false;           // ... with biases
  bool lower_bounds = true;         // HGRNBit: model.lower_bounds [L, D]
  bool lm_head = true;              // false: the head is tied to the embeddings and not stored (HGRNBit keeps its norm)
};

struct TensorSlot {
  index_t layer = -1;  // -1: outside the blocks
  Role role{};
  Part part = Part::weight;
  std::string key;
  std::vector<index_t> shape;
};

namespace detail {

// A checkpoint key: "model.layers.{l}." + the module path in the block, or a model-level key.
inline std::string tensor_key(Family f, Role r, Part p, index_t layer, const Layout& layout) {
  const auto suffix = [&]() -> std::string {
    switch (p) {
      case Part::weight: return ".weight";
      case Part::bias: return ".bias";
      case Part::input_norm: return ".norm.weight";
    }
    return "";
  }();
  switch (r) {
    case Role::embeddings: return "model.embeddings.weight";
    case Role::lower_bounds: return "model.lower_bounds";
    case Role::final_norm: return "model.norm.weight";
    case Role::lm_head: return "lm_head" + suffix;
    default: break;
  }
  const std::string block = "model.layers." + std::to_string(layer) + ".";
  const auto module = [&]() -> std::string {
    switch (r) {
      case Role::attn_norm: return layout.legacy_block_norms ? "attn.norm" : "attn_norm";
      case Role::mlp_norm: return layout.legacy_block_norms ? "mlp.norm" : "mlp_norm";
      case Role::q_proj: return "attn.q_proj";
      case Role::k_proj: return "attn.k_proj";
      case Role::v_proj: return "attn.v_proj";
      case Role::q_conv: return "attn.q_conv1d";
      case Role::k_conv: return "attn.k_conv1d";
      case Role::v_conv: return "attn.v_conv1d";
      case Role::g_proj: return "attn.g_proj";
      case Role::gk_proj0: return "attn.gk_proj.0";
      case Role::gk_proj1: return "attn.gk_proj.1";
      case Role::f_proj: return "attn.f_proj";
      case Role::t2r: return "attn.feature_map.layer";
      case Role::i_proj: return "attn.i_proj";
      case Role::g_norm: return f == Family::gla && layout.fused_g_norm ? "attn.g_norm_swish_gate" : "attn.g_norm";
      case Role::o_proj: return "attn.o_proj";
      case Role::gate_proj: return "mlp.gate_proj";
      case Role::up_proj: return "mlp.up_proj";
      case Role::down_proj: return "mlp.down_proj";
      default: return "?";
    }
  }();
  return block + module + suffix;
}

}  // namespace detail

// Every tensor of a checkpoint, in upstream's state_dict order (embeddings; per block the
// attention norm, the token mixer, the MLP norm, the MLP; the final norm; the head).
class Schema {
 public:
  Schema(Family family, const Sizes& s, const Layout& layout) : family_(family), sizes_(s), layout_(layout) {
    add(-1, Role::embeddings, Part::weight, {s.vocab, s.hidden});
    if (family == Family::hgrn_bit && layout.lower_bounds) add(-1, Role::lower_bounds, Part::weight, {s.layers, s.hidden});
    for (index_t l = 0; l < s.layers; ++l) family == Family::hgrn_bit ? add_hgrn_bit_block(l) : add_dense_block(l);
    add(-1, Role::final_norm, Part::weight, {s.hidden});
    if (layout.lm_head) add(-1, Role::lm_head, Part::weight, {s.vocab, s.hidden});
    if (family == Family::hgrn_bit) add(-1, Role::lm_head, Part::input_norm, {s.hidden});
  }

  Family family() const { return family_; }
  const Sizes& sizes() const { return sizes_; }
  const Layout& layout() const { return layout_; }
  const std::vector<TensorSlot>& tensors() const { return tensors_; }

  // The slot of (role, part) in `layer` (-1: model level), or nullptr if this layout has none.
  const TensorSlot* find(Role role, Part part = Part::weight, index_t layer = -1) const {
    for (const auto& t : tensors_)
      if (t.role == role && t.part == part && t.layer == layer) return &t;
    return nullptr;
  }
  // As find, for a tensor the caller's layout guarantees.
  const TensorSlot& at(Role role, Part part = Part::weight, index_t layer = -1) const {
    if (const auto* t = find(role, part, layer)) return *t;
    throw std::logic_error("linattn::models::Schema(" + std::string(family_name(family_)) + "): no tensor " +
                           detail::tensor_key(family_, role, part, layer, layout_) + " in this layout");
  }

  index_t parameters() const {
    index_t n = 0;
    for (const auto& t : tensors_) {
      index_t e = 1;
      for (index_t d : t.shape) e = checked_mul(e, d, "checkpoint tensor size");
      n += e;
    }
    return n;
  }

 private:
  void add(index_t layer, Role r, Part p, std::vector<index_t> shape) {
    tensors_.push_back({layer, r, p, detail::tensor_key(family_, r, p, layer, layout_), std::move(shape)});
  }

  void add_dense_block(index_t l) {
    const Sizes& s = sizes_;
    const Layout& y = layout_;
    const index_t D = s.hidden;
    const index_t q_dim = checked_mul(s.heads, s.head_k, "num_heads x head_k");
    const index_t k_dim = checked_mul(s.kv_heads, s.head_k, "num_kv_heads x head_k");
    const index_t v_dim = checked_mul(s.kv_heads, s.head_v, "num_kv_heads x head_v");
    const index_t value_dim = checked_mul(s.heads, s.head_v, "num_heads x head_v");
    add(l, Role::attn_norm, Part::weight, {D});
    add(l, Role::q_proj, Part::weight, {q_dim, D});
    add(l, Role::k_proj, Part::weight, {k_dim, D});
    add(l, Role::v_proj, Part::weight, {v_dim, D});
    if (family_ == Family::gla) {
      if (y.output_gate) add(l, Role::g_proj, Part::weight, {value_dim, D});
      add(l, Role::gk_proj0, Part::weight, {y.gk_rank, D});
      add(l, Role::gk_proj1, Part::weight, {k_dim, y.gk_rank});
      add(l, Role::gk_proj1, Part::bias, {k_dim});
    } else {
      add(l, Role::f_proj, Part::weight, {checked_mul(s.kv_heads, s.slots, "num_kv_heads x num_slots"), D});
      if (y.t2r) add(l, Role::t2r, Part::weight, {s.head_k, s.head_k});
    }
    if (y.conv_width > 0) {
      const std::pair<Role, index_t> convs[] = {{Role::q_conv, q_dim}, {Role::k_conv, k_dim}, {Role::v_conv, v_dim}};
      for (const auto& [role, channels] : convs) {
        add(l, role, Part::weight, {channels, 1, y.conv_width});
        if (y.conv_bias) add(l, role, Part::bias, {channels});
      }
    }
    // GLA normalises each head's V values; GSA's norm runs over all of hidden (SPEC §8.12).
    if (y.g_norm) add(l, Role::g_norm, Part::weight, {family_ == Family::gla ? s.head_v : D});
    add(l, Role::o_proj, Part::weight, {D, value_dim});
    add(l, Role::mlp_norm, Part::weight, {D});
    add_mlp(l, y.fused_mlp);
  }

  void add_mlp(index_t l, bool fused) {
    const index_t D = sizes_.hidden, I = sizes_.intermediate;
    if (fused) {
      add(l, Role::gate_proj, Part::weight, {checked_mul(2, I, "2 x intermediate_size"), D});
    } else {
      add(l, Role::gate_proj, Part::weight, {I, D});
      add(l, Role::up_proj, Part::weight, {I, D});
    }
    add(l, Role::down_proj, Part::weight, {D, I});
  }

  // Every BitLinear carries the RMSNorm weight over its input (SPEC §5.5).
  void add_bitlinear(index_t l, Role r, index_t out, index_t in) {
    add(l, r, Part::weight, {out, in});
    add(l, r, Part::input_norm, {in});
  }

  void add_hgrn_bit_block(index_t l) {
    const index_t D = sizes_.hidden, E = sizes_.expanded, I = sizes_.intermediate;
    add(l, Role::attn_norm, Part::weight, {D});
    for (Role r : {Role::i_proj, Role::f_proj, Role::g_proj}) add_bitlinear(l, r, E, D);
    add(l, Role::g_norm, Part::weight, {E});
    add_bitlinear(l, Role::o_proj, D, E);
    add(l, Role::mlp_norm, Part::weight, {D});
    add_bitlinear(l, Role::gate_proj, checked_mul(2, I, "2 x intermediate_size"), D);
    add_bitlinear(l, Role::down_proj, D, I);
  }

  Family family_;
  Sizes sizes_;
  Layout layout_;
  std::vector<TensorSlot> tensors_;  // state_dict order
};

}  // namespace linattn::models
