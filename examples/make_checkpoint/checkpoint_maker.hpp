// Random-initialised Hugging Face checkpoints in the upstream layout, for testing model loaders
// and measuring models of real size without downloading them.
//
// Writes a directory the way `save_pretrained` does for
//   * fla's GLAForCausalLM        (model_type "gla")       SPEC §5.1, §6 "state_dict — GLA"
//   * fla's GSAForCausalLM        (model_type "gsa")       SPEC §5.2, §6 "GSA"
//   * matmulfreellm's HGRNBitForCausalLM ("hgrn_bit")      SPEC §5.3-5.5, §6 "HGRNBit"
// with the key names and shapes of SPEC §6, a config.json with the fields the golden tiny models'
// configs have (tests/data/model_hgrn_bit/config.json), generation_config.json for gla/gsa (as fla
// writes one), and either one model.safetensors or `shards` files model-0000i-of-0000N.safetensors
// plus model.safetensors.index.json.
//
// Initialisation (like the golden tiny models, see tests/data/GOLDEN-README.md):
//   * every 2-D weight (embeddings, projections, lm_head)   ~ N(0, initializer_range)
//   * every norm weight                                      = 1 + norm_noise · N(0, 1)
//   * GLA gk_proj.1.bias, HGRNBit model.lower_bounds        ~ N(0, 1): upstream inits both to 0,
//     the golden models use N(0, 1) so that a loader that drops them is caught; we do the same
//   * short-convolution weights [C, 1, W]                    ~ U(-1/√W, 1/√W) (PyTorch's Conv1d
//     default for fan-in W), so the conv branch is not numerically negligible
// "N(0, 1)" here is an Irwin-Hall sum of four 16-bit uniforms scaled to unit variance (exact mean
// and variance, tails cut at ±3.46σ): one 64-bit xoshiro draw per value, ~10x faster than
// Box-Muller, which matters for a 2.7B-parameter checkpoint. Each tensor has its own random stream
// seeded from (seed, key), so a tensor's values do not depend on dtype, sharding or which other
// options are set: an f32 and a bf16 checkpoint of one spec agree after rounding.
//
// Writing streams: the header is computed from the shapes first, then each tensor is generated
// and written in blocks of 1M elements, so memory stays at a few MiB whatever the model size.
//
// Errors: an unusable spec -> std::invalid_argument naming the field (and the CLI option);
// a file that cannot be written -> std::system_error naming the path.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "linattn/core/random.hpp"
#include "linattn/nn/activation.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/io/safetensors.hpp"
#include "linattn/models/schema.hpp"

namespace linattn::examples {

using models::Family;
using models::family_name;

inline Family parse_family(std::string_view s) {
  for (Family f : {Family::gla, Family::gsa, Family::hgrn_bit})
    if (family_name(f) == s) return f;
  throw std::invalid_argument("linattn-make-checkpoint: family (--family) = '" + std::string(s) +
                              "' is unknown (gla, gsa, hgrn_bit)");
}

// Every config field the three model classes read (SPEC §6 table), plus how to write the file.
// Fields that a family does not have are ignored for it (e.g. num_slots for gla).
struct CheckpointSpec {
  Family family = Family::gla;
  index_t vocab_size = 256;
  index_t hidden_size = 64;
  index_t num_hidden_layers = 2;
  index_t num_heads = 2;                // hgrn_bit: only reshapes its state (upstream default 1)
  std::optional<index_t> num_kv_heads;  // gla, gsa: GQA; unset = num_heads
  double expand_k = 0.5;                // gla 0.5, gsa 1 upstream; key_dim = int(D · expand_k)
  double expand_v = 1.0;                // value_dim = int(D · expand_v); gsa requires value_dim = D
  double expand_ratio = 1.0;            // hgrn_bit: E = int(D · expand_ratio)
  index_t num_slots = 64;               // gsa: M
  bool use_short_conv = false;          // gla, gsa (hgrn_bit's conv branch is broken upstream)
  index_t conv_size = 4;
  std::optional<double> clamp_min;      // gla: lower clamp of the log gate
  std::optional<std::string> feature_map;  // gla: ACT2FN name or none; gsa: swish | relu | t2r
  bool use_output_gate = true;          // gla: g_proj + gated norm
  bool fuse_norm = true;                // gla: g_norm_swish_gate.weight (true) or g_norm.weight (false)
  bool elementwise_affine = true;       // gla, gsa: false drops the g_norm weight
  bool tie_word_embeddings = false;     // omit lm_head.weight (hgrn_bit keeps lm_head.norm.weight)
  std::optional<index_t> intermediate_size;  // unset: 256·⌈int(D·hidden_ratio·2/3)/256⌉
  double hidden_ratio = 4;
  bool use_lower_bound = true;          // hgrn_bit: model.lower_bounds [L, D]
  double norm_eps = 1e-6;               // norm_eps (gla, gsa) / rms_norm_eps (hgrn_bit)
  std::int64_t bos_token_id = 1;
  std::int64_t eos_token_id = 2;
  // Legacy layouts of the 2024 fla checkpoints (SPEC §5.0, §6):
  bool legacy_mlp = false;   // gla, gsa: one gate_proj [2I, D] (gate rows, then up rows), no up_proj
  bool legacy_norm = false;  // gsa: attn.norm.weight / mlp.norm.weight instead of attn_norm / mlp_norm
  // Initialisation and output.
  double initializer_range = 0.02;
  double norm_noise = 0.0;
  io::DType dtype = io::DType::F32;  // F32, BF16 or F16
  int shards = 1;
  std::uint64_t seed = 0;
};

// Upstream config defaults of a family (SPEC §6 table): hidden 2048, 24 layers, vocab 32000.
inline CheckpointSpec upstream_defaults(Family f) {
  CheckpointSpec s;
  s.family = f;
  s.vocab_size = 32000;
  s.hidden_size = 2048;
  s.num_hidden_layers = 24;
  switch (f) {
    case Family::gla: s.num_heads = 4; s.expand_k = 0.5; s.expand_v = 1; break;
    case Family::gsa: s.num_heads = 4; s.expand_k = 1; s.expand_v = 1; s.num_slots = 64; s.feature_map = "swish"; break;
    case Family::hgrn_bit: s.num_heads = 1; break;
  }
  return s;
}

// The golden tiny models' configuration (GOLDEN-README.md): vocab 256, hidden 64, 2 layers,
// I = 256; gla 2 heads (K 16, V 32); gsa 2 heads, K = V = 32, 16 slots; hgrn_bit 1 head.
// Norm weights get noise 0.1 and projections std 0.05 as there, so tiny models are not trivial.
inline CheckpointSpec tiny_spec(Family f) {
  CheckpointSpec s = upstream_defaults(f);
  s.vocab_size = 256;
  s.hidden_size = 64;
  s.num_hidden_layers = 2;
  if (f != Family::hgrn_bit) s.num_heads = 2;
  if (f == Family::gsa) s.num_slots = 16;
  s.initializer_range = 0.05;
  s.norm_noise = 0.1;
  return s;
}

inline std::vector<std::string> preset_names() {
  return {"mmfree-370m", "mmfree-1.3b", "mmfree-2.7b", "gla-340m", "gsa-340m"};
}

// Presets of real model sizes (vocab 32000, hidden_ratio 4, init std 0.02, norm weights 1):
//   mmfree-370m / -1.3b / -2.7b  hgrn_bit, 24×1024 / 24×2048 / 32×2560, I 2816 / 5632 / 6912,
//                                1 head: the MMfreeLM model zoo (SPEC §7 table).
//   gla-340m                     gla, 24×1024, 4 heads, expand_k 0.5, expand_v 1 (K 128, V 256),
//                                I 2816: fla's 340M GLA config; 374M parameters with the untied
//                                lm_head (340M-class: fla counts the model the same way).
//   gsa-340m                     gsa, 24×1024, 4 heads, K = V = 256, 64 slots, I 2816:
//                                fla's 340M GSA config; 380M parameters untied.
// Head counts do not change the projection sizes of GLA/GSA (only GSA's f_proj, H·M rows), so 4
// heads, upstream's default, is kept.
inline CheckpointSpec preset(std::string_view name) {
  auto big = [](Family f, index_t d, index_t l) {
    CheckpointSpec s = upstream_defaults(f);
    s.hidden_size = d;
    s.num_hidden_layers = l;
    return s;
  };
  if (name == "mmfree-370m") return big(Family::hgrn_bit, 1024, 24);
  if (name == "mmfree-1.3b") return big(Family::hgrn_bit, 2048, 24);
  if (name == "mmfree-2.7b") return big(Family::hgrn_bit, 2560, 32);
  if (name == "gla-340m") return big(Family::gla, 1024, 24);
  if (name == "gsa-340m") return big(Family::gsa, 1024, 24);
  std::string known;
  for (const auto& p : preset_names()) known += (known.empty() ? "" : ", ") + p;
  throw std::invalid_argument("linattn-make-checkpoint: preset (--preset) = '" + std::string(name) +
                              "' is unknown (" + known + ")");
}

// How a tensor is initialised (see the top of this file).
enum class Init { normal, norm, unit_normal, conv };

struct TensorSpec {
  std::string key;
  std::vector<index_t> shape;
  Init init = Init::normal;

  index_t numel() const {
    index_t n = 1;
    for (index_t s : shape) n *= s;
    return n;
  }
};

// Derived sizes, after validation.
struct Dims {
  index_t D, L, H, Hkv, G;
  index_t key_dim, value_dim;  // gla, gsa
  index_t K, V;                // per-head key / value width
  index_t E;                   // hgrn_bit
  index_t I;                   // MLP intermediate size
};

namespace detail {

[[noreturn]] inline void bad(const char* field, const std::string& what) {
  std::string opt = field;
  std::replace(opt.begin(), opt.end(), '_', '-');
  throw std::invalid_argument("linattn-make-checkpoint: " + std::string(field) + " (--" + opt + ") " + what);
}

// Python's int(x) of a positive float: truncation.
inline index_t py_int(double x) { return static_cast<index_t>(std::trunc(x)); }

inline bool is_gate_act(const std::string& s) {
  // The parameter-free ACT2FN names GLA takes as feature_map: exactly what the loader accepts.
  try {
    nn::activation_from_name(s);
    return true;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace detail

// Checks the spec and derives the sizes; throws std::invalid_argument naming the field.
inline Dims dims(const CheckpointSpec& s) {
  using detail::bad;
  const Family f = s.family;
  if (s.vocab_size <= 0) bad("vocab_size", "= " + std::to_string(s.vocab_size) + " must be > 0");
  if (s.hidden_size <= 0) bad("hidden_size", "= " + std::to_string(s.hidden_size) + " must be > 0");
  if (s.num_hidden_layers <= 0) bad("num_hidden_layers", "= " + std::to_string(s.num_hidden_layers) + " must be > 0");
  if (s.num_heads <= 0) bad("num_heads", "= " + std::to_string(s.num_heads) + " must be > 0");
  if (!(s.initializer_range >= 0) || !std::isfinite(s.initializer_range))
    bad("initializer_range", "= " + detail::num(s.initializer_range) + " must be finite and >= 0");
  if (!(s.norm_noise >= 0) || !std::isfinite(s.norm_noise))
    bad("norm_noise", "= " + detail::num(s.norm_noise) + " must be finite and >= 0");
  if (!(s.norm_eps > 0) || !std::isfinite(s.norm_eps)) bad("norm_eps", "= " + detail::num(s.norm_eps) + " must be > 0");
  if (s.dtype != io::DType::F32 && s.dtype != io::DType::BF16 && s.dtype != io::DType::F16)
    bad("dtype", "= " + std::string(io::dtype_name(s.dtype)) + " is not one of f32, bf16, f16");
  if (s.shards < 1) bad("shards", "= " + std::to_string(s.shards) + " must be >= 1");
  if (s.bos_token_id < 0 || s.bos_token_id >= s.vocab_size)
    bad("bos_token_id", "= " + std::to_string(s.bos_token_id) + " is outside the vocabulary [0, " + std::to_string(s.vocab_size) + ")");
  if (s.eos_token_id < 0 || s.eos_token_id >= s.vocab_size)
    bad("eos_token_id", "= " + std::to_string(s.eos_token_id) + " is outside the vocabulary [0, " + std::to_string(s.vocab_size) + ")");

  Dims d{};
  d.D = s.hidden_size;
  d.L = s.num_hidden_layers;
  d.H = s.num_heads;
  if (s.intermediate_size) {
    if (*s.intermediate_size <= 0) bad("intermediate_size", "= " + std::to_string(*s.intermediate_size) + " must be > 0");
    d.I = *s.intermediate_size;
  } else {
    if (!(s.hidden_ratio > 0) || !std::isfinite(s.hidden_ratio))
      bad("hidden_ratio", "= " + detail::num(s.hidden_ratio) + " must be > 0");
    // SPEC §5.0: I = 256·⌈int(D·hidden_ratio·2/3)/256⌉ (fla and mmfreelm alike).
    const index_t raw = detail::py_int(static_cast<double>(d.D) * s.hidden_ratio * 2.0 / 3.0);
    d.I = 256 * ((raw + 255) / 256);
    if (d.I <= 0) bad("hidden_ratio", "= " + detail::num(s.hidden_ratio) + " gives intermediate size 0");
  }

  if (f == Family::hgrn_bit) {
    if (s.num_kv_heads) bad("num_kv_heads", "is not a hgrn_bit option");
    if (s.use_short_conv) bad("use_short_conv", "is not supported for hgrn_bit (the upstream branch is broken, SPEC §5.3)");
    if (s.legacy_mlp) bad("legacy_mlp", "does not apply to hgrn_bit (its MLP is always the fused gate_proj [2I, D])");
    if (s.legacy_norm) bad("legacy_norm", "applies to gsa only");
    if (s.feature_map) bad("feature_map", "is not a hgrn_bit option");
    if (!(s.expand_ratio > 0) || !std::isfinite(s.expand_ratio))
      bad("expand_ratio", "= " + detail::num(s.expand_ratio) + " must be > 0");
    d.E = detail::py_int(static_cast<double>(d.D) * s.expand_ratio);
    if (d.E <= 0) bad("expand_ratio", "= " + detail::num(s.expand_ratio) + " gives E = 0");
    if (d.E % d.H != 0)
      bad("num_heads", "= " + std::to_string(d.H) + " does not divide E = " + std::to_string(d.E));
    d.Hkv = d.H;
    d.G = 1;
    return d;
  }

  if (s.legacy_norm && f != Family::gsa) bad("legacy_norm", "applies to gsa only (gla always has attn_norm / mlp_norm)");
  d.Hkv = s.num_kv_heads.value_or(d.H);
  if (d.Hkv <= 0) bad("num_kv_heads", "= " + std::to_string(d.Hkv) + " must be > 0");
  if (d.H % d.Hkv != 0)
    bad("num_kv_heads", "= " + std::to_string(d.Hkv) + " does not divide num_heads = " + std::to_string(d.H));
  d.G = d.H / d.Hkv;
  if (!(s.expand_k > 0) || !std::isfinite(s.expand_k)) bad("expand_k", "= " + detail::num(s.expand_k) + " must be > 0");
  if (!(s.expand_v > 0) || !std::isfinite(s.expand_v)) bad("expand_v", "= " + detail::num(s.expand_v) + " must be > 0");
  d.key_dim = detail::py_int(static_cast<double>(d.D) * s.expand_k);
  d.value_dim = detail::py_int(static_cast<double>(d.D) * s.expand_v);
  if (d.key_dim <= 0 || d.key_dim % d.H != 0)
    bad("num_heads", "= " + std::to_string(d.H) + " does not divide key_dim = int(hidden_size · expand_k) = " +
                         std::to_string(d.key_dim));
  if (d.value_dim <= 0 || d.value_dim % d.H != 0)
    bad("num_heads", "= " + std::to_string(d.H) + " does not divide value_dim = int(hidden_size · expand_v) = " +
                         std::to_string(d.value_dim));
  d.K = d.key_dim / d.H;
  d.V = d.value_dim / d.H;
  if (s.use_short_conv && s.conv_size <= 0) bad("conv_size", "= " + std::to_string(s.conv_size) + " must be > 0");
  if (f == Family::gla) {
    if (s.feature_map && !detail::is_gate_act(*s.feature_map))
      bad("feature_map", "= '" + *s.feature_map + "' is not a parameter-free activation (relu, swish, silu, sigmoid, tanh, gelu, elu, identity)");
    if (s.clamp_min && !std::isfinite(*s.clamp_min)) bad("clamp_min", "must be finite");
  } else {
    if (s.num_slots <= 0) bad("num_slots", "= " + std::to_string(s.num_slots) + " must be > 0");
    const std::string fm = s.feature_map.value_or("swish");
    if (fm != "swish" && fm != "relu" && fm != "t2r")
      bad("feature_map", "= '" + fm + "' is not a gsa feature map (swish, relu, t2r)");
    if (s.clamp_min) bad("clamp_min", "is ignored by gsa upstream; not writing it");
    if (d.value_dim != d.D)
      bad("expand_v", "= " + detail::num(s.expand_v) + ": gsa's output norm g_norm.weight is [hidden_size], so value_dim = " +
                          std::to_string(d.value_dim) + " must equal hidden_size = " + std::to_string(d.D) + " (SPEC §5.2)");
  }
  return d;
}

// The schema (linattn/models/schema.hpp, the table the loaders read) of a spec's checkpoint.
inline models::Schema schema(const CheckpointSpec& s) {
  const Dims d = dims(s);
  models::Sizes z;
  z.vocab = s.vocab_size;
  z.hidden = d.D;
  z.layers = d.L;
  z.intermediate = d.I;
  z.heads = d.H;
  z.kv_heads = d.Hkv;
  z.head_k = d.K;
  z.head_v = d.V;
  z.slots = s.num_slots;
  z.expanded = d.E;
  models::Layout y;
  y.legacy_block_norms = s.family == Family::gsa && s.legacy_norm;
  y.fused_mlp = s.family == Family::hgrn_bit || s.legacy_mlp;
  y.output_gate = s.use_output_gate;
  y.g_norm = s.elementwise_affine;
  y.fused_g_norm = s.fuse_norm;
  y.gk_rank = 16;  // fixed upstream
  y.t2r = s.family == Family::gsa && s.feature_map.value_or("swish") == "t2r";
  y.conv_width = s.use_short_conv ? s.conv_size : 0;
  y.lower_bounds = s.use_lower_bound;
  y.lm_head = !s.tie_word_embeddings;
  return models::Schema(s.family, z, y);
}

// How a tensor of the schema is initialised (see the top of this file).
inline Init init_of(const models::TensorSlot& t) {
  using models::Part;
  using models::Role;
  if (t.part == Part::input_norm) return Init::norm;
  switch (t.role) {
    case Role::attn_norm: case Role::mlp_norm: case Role::g_norm: case Role::final_norm: return Init::norm;
    case Role::lower_bounds: return Init::unit_normal;
    case Role::q_conv: case Role::k_conv: case Role::v_conv: return Init::conv;
    case Role::gk_proj1: return t.part == Part::bias ? Init::unit_normal : Init::normal;
    default: return Init::normal;
  }
}

// Every tensor the checkpoint holds, in the order it is written (the state_dict order:
// embeddings, then per layer attention norm, attention, MLP norm, MLP, then final norm, lm_head).
inline std::vector<TensorSpec> checkpoint_tensors(const CheckpointSpec& s) {
  const models::Schema table = schema(s);  // named: a range-for over schema(s).tensors() would dangle
  std::vector<TensorSpec> t;
  for (const auto& slot : table.tensors()) t.push_back({slot.key, slot.shape, init_of(slot)});
  return t;
}

inline index_t param_count(const CheckpointSpec& s) {
  index_t n = 0;
  for (const auto& t : checkpoint_tensors(s)) n += t.numel();
  return n;
}

inline std::string dtype_config_name(io::DType d) {
  return d == io::DType::BF16 ? "bfloat16" : d == io::DType::F16 ? "float16" : "float32";
}

// config.json: the fields of the golden configs (fla / mmfreelm as saved by transformers, which
// sorts the keys; nlohmann::json keeps them sorted too); transformers_version is left out (no
// transformers wrote this file).
inline nlohmann::json config_json(const CheckpointSpec& s) {
  const Dims d = dims(s);
  using J = nlohmann::json;
  // Integral values are written as JSON integers, as Python writes `1` for expand_v = 1.
  auto number = [](double v) -> J {
    if (v == std::floor(v) && std::abs(v) < 1e15) return J(static_cast<std::int64_t>(v));
    return J(v);
  };
  auto opt_int = [](const std::optional<index_t>& v) -> J { return v ? J(*v) : J(nullptr); };
  // Every family.
  J c = {{"bos_token_id", s.bos_token_id},
         {"conv_size", s.conv_size},
         {"dtype", dtype_config_name(s.dtype)},
         {"eos_token_id", s.eos_token_id},
         {"fuse_cross_entropy", true},
         {"hidden_act", "swish"},
         {"hidden_ratio", number(s.hidden_ratio)},
         {"hidden_size", d.D},
         {"initializer_range", s.initializer_range},
         {"intermediate_size", opt_int(s.intermediate_size)},
         {"max_position_embeddings", 2048},
         {"model_type", std::string(family_name(s.family))},
         {"num_heads", d.H},
         {"num_hidden_layers", d.L},
         {"pad_token_id", nullptr},
         {"tie_word_embeddings", s.tie_word_embeddings},
         {"use_cache", true},
         {"vocab_size", s.vocab_size}};
  if (s.family == Family::hgrn_bit) {
    c.update(J{{"architectures", J::array({"HGRNBitForCausalLM"})},
               {"attn_mode", "fused_recurrent"},
               {"expand_ratio", number(s.expand_ratio)},
               {"rms_norm_eps", s.norm_eps},
               {"share_conv_kernel", true},
               {"use_lower_bound", s.use_lower_bound},
               {"use_short_conv", false}});
    return c;
  }
  // fla's GLA and GSA.
  c.update(J{{"attn", nullptr},
             {"attnres_block_size", nullptr},
             {"elementwise_affine", s.elementwise_affine},
             {"expand_k", number(s.expand_k)},
             {"expand_v", number(s.expand_v)},
             {"fuse_linear_cross_entropy", false},
             {"fuse_swiglu", true},
             {"norm_eps", s.norm_eps},
             {"num_kv_heads", opt_int(s.num_kv_heads)},
             {"use_l2warp", false},
             {"use_short_conv", s.use_short_conv}});
  if (s.family == Family::gla) {
    c.update(J{{"architectures", J::array({"GLAForCausalLM"})},
               {"attn_mode", "chunk"},
               {"clamp_min", s.clamp_min ? J(*s.clamp_min) : J(nullptr)},
               {"feature_map", s.feature_map ? J(*s.feature_map) : J(nullptr)},
               {"fuse_norm", s.fuse_norm},
               {"use_gk", true},
               {"use_gv", false},
               {"use_output_gate", s.use_output_gate}});
  } else {
    c.update(J{{"architectures", J::array({"GSAForCausalLM"})},
               {"clamp_max", nullptr},
               {"clamp_min", nullptr},
               {"feature_map", s.feature_map.value_or("swish")},
               {"fuse_norm", true},
               {"gate_logit_normalizer", 8},
               {"num_slots", s.num_slots},
               {"use_norm", true},
               {"use_output_gate", false}});
    // Legacy GSA configs (fla before 2025-02-06) carry norm_first = true: the pre-norms lived
    // inside attn / mlp (attn.norm.weight, mlp.norm.weight).
    if (s.legacy_norm) c["norm_first"] = true;
  }
  return c;
}

namespace detail {

// The library's xoshiro256** with the two distributions the initialisers draw from.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  // Approximately N(0, 1): Irwin-Hall sum of four 16-bit uniforms (u + 1/2) / 2^16, centred and
  // scaled by sqrt(3) (the sum's variance is 4/12). Exact mean 0 and variance 1 - 2^-32.
  float normal() {
    const std::uint64_t r = gen_.next();
    const std::uint32_t sum = static_cast<std::uint32_t>(r & 0xFFFF) + static_cast<std::uint32_t>((r >> 16) & 0xFFFF) +
                              static_cast<std::uint32_t>((r >> 32) & 0xFFFF) + static_cast<std::uint32_t>(r >> 48);
    // (sum + 2) / 2^16 - 2, times sqrt(3)
    return static_cast<float>((static_cast<double>(sum) + 2.0 - 131072.0) * (1.7320508075688772 / 65536.0));
  }
  // Uniform in [-1, 1).
  float symmetric_uniform() { return static_cast<float>(2.0 * gen_.uniform() - 1.0); }

 private:
  Xoshiro256ss gen_;
};

// FNV-1a: the tensor's name picks its random stream.
inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// The values of one tensor, produced block by block in order.
class TensorGenerator {
 public:
  TensorGenerator(const CheckpointSpec& s, const TensorSpec& t)
      : rng_(seed_of(s.seed, t.key)),
        init_(t.init),
        std_(static_cast<float>(s.initializer_range)),
        noise_(static_cast<float>(s.norm_noise)),
        bound_(t.init == Init::conv ? 1.0f / std::sqrt(static_cast<float>(t.shape.back())) : 0.0f) {}

  void fill(float* v, std::size_t m) {
    switch (init_) {
      case Init::normal: for (std::size_t j = 0; j < m; ++j) v[j] = std_ * rng_.normal(); break;
      case Init::norm: for (std::size_t j = 0; j < m; ++j) v[j] = noise_ == 0 ? 1.0f : 1.0f + noise_ * rng_.normal(); break;
      case Init::unit_normal: for (std::size_t j = 0; j < m; ++j) v[j] = rng_.normal(); break;
      case Init::conv: for (std::size_t j = 0; j < m; ++j) v[j] = bound_ * rng_.symmetric_uniform(); break;
    }
  }

 private:
  static std::uint64_t seed_of(std::uint64_t seed, std::string_view key) {
    std::uint64_t x = seed ^ fnv1a(key);
    return splitmix64(x);
  }
  Rng rng_;
  Init init_;
  float std_, noise_, bound_;
};

struct Shard {
  std::string file;
  std::vector<std::size_t> tensors;  // indices into checkpoint_tensors()
  std::uint64_t bytes = 0;
};

// Contiguous split into n non-empty shards of roughly equal size (HF fills shards in state_dict
// order too). Each shard closes once it reaches its share of what is left.
inline std::vector<Shard> plan_shards(const std::vector<TensorSpec>& t, std::size_t esize, int n) {
  if (static_cast<std::size_t>(n) > t.size())
    bad("shards", "= " + std::to_string(n) + " is more than the " + std::to_string(t.size()) + " tensors of the model");
  std::uint64_t left = 0;
  for (const auto& x : t) left += static_cast<std::uint64_t>(x.numel()) * esize;
  std::vector<Shard> out(static_cast<std::size_t>(n));
  std::size_t cur = 0;
  std::uint64_t target = left / static_cast<std::uint64_t>(n);
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::uint64_t b = static_cast<std::uint64_t>(t[i].numel()) * esize;
    out[cur].tensors.push_back(i);
    out[cur].bytes += b;
    left -= b;
    const std::size_t shards_after = out.size() - cur - 1;
    const std::size_t tensors_after = t.size() - i - 1;
    if (shards_after > 0 && (out[cur].bytes >= target || tensors_after == shards_after)) {
      ++cur;
      target = left / shards_after;
    }
  }
  char name[64];
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (n == 1) {
      out[k].file = "model.safetensors";
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05d.safetensors", k + 1, n);
      out[k].file = name;
    }
  }
  return out;
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) throw std::system_error(errno, std::generic_category(), "linattn-make-checkpoint: cannot create " + p.string());
  f << text;
  f.close();
  if (!f) throw std::system_error(errno, std::generic_category(), "linattn-make-checkpoint: write failed: " + p.string());
}

// Reports progress for checkpoints above 256 MiB, one line per 10 %.
class Progress {
 public:
  Progress(std::ostream* os, std::uint64_t total) : os_(total >= (256ull << 20) ? os : nullptr), total_(total) {}
  void advance(std::uint64_t bytes, const std::string& file) {
    done_ += bytes;
    if (os_ == nullptr) return;
    const int tenth = static_cast<int>(done_ * 10 / total_);
    if (tenth > reported_) {
      reported_ = tenth;
      *os_ << "linattn-make-checkpoint: " << tenth * 10 << "% (" << done_ / (1u << 20) << " / " << total_ / (1u << 20)
           << " MiB, " << file << ")\n"
           << std::flush;
    }
  }

 private:
  std::ostream* os_;
  std::uint64_t total_, done_ = 0;
  int reported_ = 0;
};

inline void write_shard(const std::filesystem::path& path, const CheckpointSpec& s, const std::vector<TensorSpec>& all,
                        const Shard& shard, Progress& progress) {
  const std::size_t esize = io::dtype_size(s.dtype);
  // Header first, from the shapes alone. One dtype for all tensors, so every offset is aligned
  // to the element size once the header is padded to 8 bytes (as the reference writer does).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  for (std::size_t i : shard.tensors) {
    const auto& t = all[i];
    const std::uint64_t b = static_cast<std::uint64_t>(t.numel()) * esize;
    header[t.key] = {{"dtype", std::string(io::dtype_name(s.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + b}}};
    offset += b;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::system_error(errno, std::generic_category(), "linattn-make-checkpoint: cannot create " + path.string());
  const std::uint64_t n = text.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));

  // Generated and written in blocks: memory stays at 1M elements whatever the tensor size.
  constexpr std::size_t kBlock = 1u << 20;
  std::vector<float> vals(kBlock);
  std::vector<std::uint16_t> half(s.dtype == io::DType::F32 ? 0 : kBlock);
  for (std::size_t i : shard.tensors) {
    const auto& t = all[i];
    TensorGenerator gen(s, t);
    for (index_t done = 0, total = t.numel(); done < total;) {
      const std::size_t m = static_cast<std::size_t>(std::min<index_t>(total - done, static_cast<index_t>(kBlock)));
      gen.fill(vals.data(), m);
      if (s.dtype == io::DType::F32) {
        f.write(reinterpret_cast<const char*>(vals.data()), static_cast<std::streamsize>(m * 4));
      } else {
        const bool bf = s.dtype == io::DType::BF16;
        for (std::size_t j = 0; j < m; ++j) half[j] = bf ? io::float_to_bf16_bits(vals[j]) : io::float_to_f16_bits(vals[j]);
        f.write(reinterpret_cast<const char*>(half.data()), static_cast<std::streamsize>(m * 2));
      }
      done += static_cast<index_t>(m);
      progress.advance(m * esize, path.filename().string());
    }
  }
  f.close();
  if (!f) throw std::system_error(errno, std::generic_category(), "linattn-make-checkpoint: write failed: " + path.string());
}

}  // namespace detail

// The values write_checkpoint() stores for one tensor, as float before any bf16/f16 rounding
// (for tests: a tensor's values depend only on the seed, its key and its init kind).
inline std::vector<float> tensor_values(const CheckpointSpec& s, const TensorSpec& t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  detail::TensorGenerator(s, t).fill(out.data(), out.size());
  return out;
}

// Writes config.json (+ generation_config.json for gla/gsa) and the weights into `dir` (created
// if missing). Weight files of an earlier checkpoint in `dir` that this one does not overwrite
// (model.safetensors, model-*-of-*.safetensors, model.safetensors.index.json) are deleted, as
// save_pretrained does, so a loader never sees two checkpoints at once. `progress`, if given,
// gets a line per 10 % for checkpoints above 256 MiB.
inline void write_checkpoint(const CheckpointSpec& s, const std::filesystem::path& dir, std::ostream* progress = nullptr) {
  namespace fs = std::filesystem;
  const auto tensors = checkpoint_tensors(s);  // validates the spec
  const std::size_t esize = io::dtype_size(s.dtype);
  const auto shards = detail::plan_shards(tensors, esize, s.shards);

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::system_error(ec, "linattn-make-checkpoint: cannot create directory " + dir.string());
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool ours = std::any_of(shards.begin(), shards.end(), [&](const detail::Shard& x) { return x.file == name; });
    const bool weights = name == "model.safetensors" || name == "model.safetensors.index.json" ||
                         (name.starts_with("model-") && name.ends_with(".safetensors") &&
                          name.find("-of-") != std::string::npos);
    if (weights && !ours) fs::remove(e.path());
  }

  detail::write_text(dir / "config.json", config_json(s).dump(2) + "\n");
  if (s.family != Family::hgrn_bit) {
    // fla's models have a generation config (GOLDEN-README: model_gla/, model_gsa/); mmfreelm's not.
    nlohmann::ordered_json g = {{"_from_model_config", true},  {"bos_token_id", s.bos_token_id},
                                {"eos_token_id", s.eos_token_id}, {"output_attentions", false},
                                {"output_hidden_states", false},  {"use_cache", true}};
    detail::write_text(dir / "generation_config.json", g.dump(2) + "\n");
  }

  std::uint64_t total = 0;
  for (const auto& sh : shards) total += sh.bytes;
  detail::Progress prog(progress, total);
  for (const auto& sh : shards) detail::write_shard(dir / sh.file, s, tensors, sh, prog);

  if (shards.size() > 1) {
    nlohmann::ordered_json idx;
    idx["metadata"] = {{"total_size", total}};  // tensor bytes, not file bytes (as transformers)
    auto& map = idx["weight_map"] = nlohmann::ordered_json::object();
    for (const auto& sh : shards)
      for (std::size_t i : sh.tensors) map[tensors[i].key] = sh.file;
    detail::write_text(dir / "model.safetensors.index.json", idx.dump(2) + "\n");
  }
}

}  // namespace linattn::examples
