// linattn-make-checkpoint: writes a random-initialised Hugging Face checkpoint directory of a
// GLA, GSA or MatMul-free (HGRNBit) LM in the upstream layout. See checkpoint_maker.hpp.
//
//   linattn-make-checkpoint --preset mmfree-370m --dtype bf16 out/mmfree-370m
//   linattn-make-checkpoint --family gla --num-kv-heads 1 --use-short-conv --shards 3 out/gla-tiny
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "make_checkpoint/checkpoint_maker.hpp"

namespace {

using linattn::examples::CheckpointSpec;
using linattn::examples::Family;

constexpr const char* kUsage = R"(usage: linattn-make-checkpoint [options] OUT_DIR

Writes config.json, model.safetensors (or shards + index) with random weights in the upstream
key layout of fla's GLA / GSA or matmulfreellm's HGRNBit causal LM.

Model (start from a preset, or from the golden tiny model of a family: vocab 256, hidden 64, 2 layers):
  --preset NAME            mmfree-370m | mmfree-1.3b | mmfree-2.7b | gla-340m | gsa-340m
  --family NAME            gla | gsa | hgrn_bit (default gla; implied by --preset)
  --vocab-size N --hidden-size N --num-hidden-layers N --num-heads N
  --num-kv-heads N         gla, gsa: grouped-query key/value heads
  --expand-k X --expand-v X  gla, gsa        --expand-ratio X  hgrn_bit
  --num-slots N            gsa               --feature-map NAME  gla (activation) / gsa (swish|relu|t2r)
  --use-short-conv --conv-size N             gla, gsa
  --clamp-min X            gla               --no-output-gate  gla
  --unfused-g-norm         gla: attn.g_norm.weight (fuse_norm false) instead of g_norm_swish_gate
  --no-elementwise-affine  gla, gsa: no g_norm weight
  --intermediate-size N | --hidden-ratio X
  --no-lower-bound         hgrn_bit
  --tie-word-embeddings    no lm_head.weight
  --norm-eps X  --bos-token-id N  --eos-token-id N
  --legacy-mlp             gla, gsa: fused gate_proj [2I, D], no up_proj (2024 checkpoints)
  --legacy-norm            gsa: attn.norm / mlp.norm instead of attn_norm / mlp_norm
Weights and files:
  --dtype f32|bf16|f16     (default f32)
  --seed N                 (default 0)
  --init-range X           std of 2-D weights (default 0.02; tiny default 0.05)
  --norm-noise X           norm weights = 1 + X·N(0,1) (default 0; tiny default 0.1)
  --shards N               model-0000i-of-0000N.safetensors + model.safetensors.index.json
  --dry-run                print the config and tensor list, write nothing
)";

[[noreturn]] void usage_error(const std::string& what) {
  std::cerr << "linattn-make-checkpoint: " << what << " (see --help)\n";
  std::exit(2);
}

long long to_int(const std::string& opt, const std::string& v) {
  long long x = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) usage_error(opt + " expects an integer, got '" + v + "'");
  return x;
}

double to_double(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno != 0) usage_error(opt + " expects a number, got '" + v + "'");
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::optional<std::string>>> opts;  // in command-line order
  std::vector<std::string> positional;
  const std::map<std::string, bool> takes_value = {
      {"--preset", true}, {"--family", true}, {"--vocab-size", true}, {"--hidden-size", true},
      {"--num-hidden-layers", true}, {"--num-heads", true}, {"--num-kv-heads", true}, {"--expand-k", true},
      {"--expand-v", true}, {"--expand-ratio", true}, {"--num-slots", true}, {"--feature-map", true},
      {"--use-short-conv", false}, {"--conv-size", true}, {"--clamp-min", true}, {"--no-output-gate", false},
      {"--unfused-g-norm", false}, {"--no-elementwise-affine", false}, {"--intermediate-size", true},
      {"--hidden-ratio", true}, {"--no-lower-bound", false}, {"--tie-word-embeddings", false},
      {"--norm-eps", true}, {"--bos-token-id", true}, {"--eos-token-id", true}, {"--legacy-mlp", false},
      {"--legacy-norm", false}, {"--dtype", true}, {"--seed", true}, {"--init-range", true},
      {"--norm-noise", true}, {"--shards", true}, {"--dry-run", false}, {"--help", false}, {"-h", false}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-') {
      positional.push_back(a);
      continue;
    }
    std::optional<std::string> value;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    const auto it = takes_value.find(a);
    if (it == takes_value.end()) usage_error("unknown option " + a);
    if (it->second && !value) {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      value = argv[++i];
    } else if (!it->second && value) {
      usage_error(a + " takes no value");
    }
    opts.emplace_back(a, value);
  }
  auto has = [&](const char* name) {
    for (const auto& [k, v] : opts)
      if (k == name) return true;
    return false;
  };
  if (has("--help") || has("-h")) {
    std::cout << kUsage;
    return 0;
  }
  const bool dry_run = has("--dry-run");
  if (!dry_run && positional.size() != 1)
    usage_error(positional.empty() ? "missing OUT_DIR" : "expected one OUT_DIR, got " + std::to_string(positional.size()));

  try {
    // The base spec comes first (preset or family), then every other option overrides it.
    CheckpointSpec s = linattn::examples::tiny_spec(Family::gla);
    std::optional<std::string> preset_name;
    for (const auto& [k, v] : opts) {
      if (k == "--preset") preset_name = *v;
    }
    if (preset_name) {
      s = linattn::examples::preset(*preset_name);
      for (const auto& [k, v] : opts)
        if (k == "--family" && linattn::examples::parse_family(*v) != s.family)
          usage_error("--family " + *v + " contradicts --preset " + *preset_name);
    } else {
      for (const auto& [k, v] : opts)
        if (k == "--family") s = linattn::examples::tiny_spec(linattn::examples::parse_family(*v));
    }
    const Family fam = s.family;
    auto only = [&](const std::string& opt, std::initializer_list<Family> fs) {
      for (Family f : fs)
        if (f == fam) return;
      usage_error(opt + " does not apply to family " + std::string(linattn::examples::family_name(fam)));
    };
    for (const auto& [k, vv] : opts) {
      const std::string v = vv.value_or("");
      if (k == "--preset" || k == "--family" || k == "--dry-run") continue;
      else if (k == "--vocab-size") s.vocab_size = to_int(k, v);
      else if (k == "--hidden-size") s.hidden_size = to_int(k, v);
      else if (k == "--num-hidden-layers") s.num_hidden_layers = to_int(k, v);
      else if (k == "--num-heads") s.num_heads = to_int(k, v);
      else if (k == "--num-kv-heads") { only(k, {Family::gla, Family::gsa}); s.num_kv_heads = to_int(k, v); }
      else if (k == "--expand-k") { only(k, {Family::gla, Family::gsa}); s.expand_k = to_double(k, v); }
      else if (k == "--expand-v") { only(k, {Family::gla, Family::gsa}); s.expand_v = to_double(k, v); }
      else if (k == "--expand-ratio") { only(k, {Family::hgrn_bit}); s.expand_ratio = to_double(k, v); }
      else if (k == "--num-slots") { only(k, {Family::gsa}); s.num_slots = to_int(k, v); }
      else if (k == "--feature-map") { only(k, {Family::gla, Family::gsa}); s.feature_map = v; }
      else if (k == "--use-short-conv") { only(k, {Family::gla, Family::gsa}); s.use_short_conv = true; }
      else if (k == "--conv-size") s.conv_size = to_int(k, v);
      else if (k == "--clamp-min") { only(k, {Family::gla}); s.clamp_min = to_double(k, v); }
      else if (k == "--no-output-gate") { only(k, {Family::gla}); s.use_output_gate = false; }
      else if (k == "--unfused-g-norm") { only(k, {Family::gla}); s.fuse_norm = false; }
      else if (k == "--no-elementwise-affine") { only(k, {Family::gla, Family::gsa}); s.elementwise_affine = false; }
      else if (k == "--intermediate-size") s.intermediate_size = to_int(k, v);
      else if (k == "--hidden-ratio") s.hidden_ratio = to_double(k, v);
      else if (k == "--no-lower-bound") { only(k, {Family::hgrn_bit}); s.use_lower_bound = false; }
      else if (k == "--tie-word-embeddings") s.tie_word_embeddings = true;
      else if (k == "--norm-eps") s.norm_eps = to_double(k, v);
      else if (k == "--bos-token-id") s.bos_token_id = to_int(k, v);
      else if (k == "--eos-token-id") s.eos_token_id = to_int(k, v);
      else if (k == "--legacy-mlp") { only(k, {Family::gla, Family::gsa}); s.legacy_mlp = true; }
      else if (k == "--legacy-norm") { only(k, {Family::gsa}); s.legacy_norm = true; }
      else if (k == "--dtype") {
        if (v == "f32" || v == "float32") s.dtype = linattn::io::DType::F32;
        else if (v == "bf16" || v == "bfloat16") s.dtype = linattn::io::DType::BF16;
        else if (v == "f16" || v == "float16") s.dtype = linattn::io::DType::F16;
        else usage_error("--dtype expects f32, bf16 or f16, got '" + v + "'");
      }
      else if (k == "--seed") s.seed = static_cast<std::uint64_t>(to_int(k, v));
      else if (k == "--init-range") s.initializer_range = to_double(k, v);
      else if (k == "--norm-noise") s.norm_noise = to_double(k, v);
      else if (k == "--shards") s.shards = static_cast<int>(to_int(k, v));
    }

    const auto tensors = linattn::examples::checkpoint_tensors(s);  // validates
    const auto params = linattn::examples::param_count(s);
    const double gib = static_cast<double>(params) * static_cast<double>(linattn::io::dtype_size(s.dtype)) / (1u << 30);
    if (dry_run) {
      std::cout << linattn::examples::config_json(s).dump(2) << "\n";
      for (const auto& t : tensors) std::cout << t.key << " " << linattn::io::detail::shape_str(t.shape) << "\n";
      std::printf("%s: %lld parameters, %.2f GiB as %s\n", std::string(linattn::examples::family_name(s.family)).c_str(),
                  static_cast<long long>(params), gib, std::string(linattn::io::dtype_name(s.dtype)).c_str());
      return 0;
    }
    const auto t0 = std::chrono::steady_clock::now();
    linattn::examples::write_checkpoint(s, positional[0], &std::cerr);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %s, %lld parameters in %zu tensors, %.2f GiB as %s, %d file(s), %.1f s\n", positional[0].c_str(),
                std::string(linattn::examples::family_name(s.family)).c_str(), static_cast<long long>(params),
                tensors.size(), gib, std::string(linattn::io::dtype_name(s.dtype)).c_str(), s.shards, secs);
  } catch (const std::invalid_argument& e) {  // a bad spec: the message names the option
    std::cerr << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "linattn-make-checkpoint: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
