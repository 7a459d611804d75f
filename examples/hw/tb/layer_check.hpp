// Drives the Verilated core through layers and tokens and compares every output word (the
// residual x after each layer, each layer's state h) with linattn::fixed::IntegerLayer::step.
#pragma once

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core_driver.hpp"
#include "cycle_model.hpp"
#include "linattn/nn/bitlinear.hpp"

namespace hw {

// A random HGRNBit layer through the library: latent weights ~ N(0, 0.02) quantised by
// nn::BitLinear (absmean ternary), norm weights 1 + 0.1 N(0, 1), lower bounds U[0, 1) after layer 0.
inline linattn::fixed::IntegerLayer random_layer(int d, int inter, int layer, std::uint32_t seed) {
  std::mt19937 rng(seed * 7919u + static_cast<std::uint32_t>(layer));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto bitlinear = [&](int out, int in) {
    linattn::Array<float, 2> w({out, in});
    for (linattn::index_t k = 0; k < w.numel(); ++k) w.data()[k] = 0.02f * nd(rng);
    std::vector<float> n(static_cast<std::size_t>(in));
    for (auto& v : n) v = 1.0f + 0.1f * nd(rng);
    return linattn::nn::BitLinear(w.cview(), n);
  };
  auto norm = [&](int n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = 1.0f + 0.1f * nd(rng);
    return v;
  };
  const auto i = bitlinear(d, d), f = bitlinear(d, d), g = bitlinear(d, d), o = bitlinear(d, d);
  const auto gate = bitlinear(2 * inter, d), down = bitlinear(d, inter);
  const auto an = norm(d), mn = norm(d), gn = norm(d);
  std::vector<float> lb;
  if (layer > 0) {
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    lb.resize(static_cast<std::size_t>(d));
    for (auto& v : lb) v = u(rng);
  }
  return linattn::fixed::IntegerLayer(i, f, g, o, gate, down, an, mn, gn, lb);
}

inline std::vector<std::int32_t> random_x(int d, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::int32_t> x(static_cast<std::size_t>(d));
  for (auto& v : x) v = linattn::fixed::to_q16(nd(rng), "random_x");
  return x;
}

struct RunResult {
  long long words_checked = 0, mismatches = 0;
  long long max_abs_diff = 0;
  std::string first_mismatch;
  std::vector<std::uint64_t> layer_cycles;  // every layer run
  std::vector<std::uint64_t> token_bytes;   // weight bytes read per token
  std::size_t packed_bytes_per_token = 0;
  bool err_reserved = false;

  // One line in the shape of ternip's gate artifact (HW-NOTES §3.1).
  void print(const std::string& name, std::uint32_t seed) const {
    std::printf("{\"test\":\"%s\",\"seed\":%u,\"status\":\"%s\",\"words_checked\":%lld,\"mismatch_count\":%lld,"
                "\"max_abs_diff\":%lld,\"first_mismatch\":\"%s\"}\n",
                name.c_str(), seed, mismatches == 0 ? "pass" : "fail", words_checked, mismatches, max_abs_diff,
                first_mismatch.c_str());
  }
};

template <class V>
RunResult run_and_check(const CoreConfig& cfg, int tokens, std::uint32_t seed, bool stall = false) {
  std::vector<linattn::fixed::IntegerLayer> layers;
  for (int l = 0; l < cfg.layers; ++l) layers.push_back(random_layer(cfg.d, cfg.inter, l, seed));
  Core<V> core(cfg, seed);
  core.top().wstall = stall;
  RunResult r;
  for (int l = 0; l < cfg.layers; ++l) {
    core.load_layer(l, layers[static_cast<std::size_t>(l)].params());
    r.packed_bytes_per_token += packed_bytes(layers[static_cast<std::size_t>(l)].params());
  }
  std::vector<std::vector<std::int32_t>> h(static_cast<std::size_t>(cfg.layers),
                                           std::vector<std::int32_t>(static_cast<std::size_t>(cfg.d), 0));
  for (int l = 0; l < cfg.layers; ++l) core.write_h(l, h[static_cast<std::size_t>(l)]);  // states start at 0
  std::mt19937 rng(seed);
  auto compare = [&](const std::vector<std::int32_t>& got, const std::vector<std::int32_t>& want, const char* what,
                     int t, int l) {
    for (std::size_t j = 0; j < want.size(); ++j) {
      ++r.words_checked;
      if (got[j] == want[j]) continue;
      const long long diff = std::llabs(static_cast<long long>(got[j]) - want[j]);
      r.max_abs_diff = std::max(r.max_abs_diff, diff);
      if (r.mismatches++ == 0)
        r.first_mismatch = std::string(what) + " token " + std::to_string(t) + " layer " + std::to_string(l) +
                           " [" + std::to_string(j) + "]: rtl " + std::to_string(got[j]) + ", library " +
                           std::to_string(want[j]);
    }
  };
  for (int t = 0; t < tokens; ++t) {
    auto x = random_x(cfg.d, rng);
    core.write_x(x);
    const std::uint64_t bytes0 = core.top().wbytes;
    for (int l = 0; l < cfg.layers; ++l) {
      r.layer_cycles.push_back(core.run_layer(l));
      linattn::fixed::IntegerLayerTrace trace;
      layers[static_cast<std::size_t>(l)].step(x, h[static_cast<std::size_t>(l)], &trace);
      compare(core.read_x(), x, "x", t, l);
      compare(core.read_z(), trace.z_mlp, "z (GLU)", t, l);
      compare(core.read_h(l), h[static_cast<std::size_t>(l)], "h", t, l);
    }
    r.token_bytes.push_back(core.top().wbytes - bytes0);
  }
  r.err_reserved = core.top().err_reserved;
  return r;
}

}  // namespace hw
