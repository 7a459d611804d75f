// Thread-scaling benchmarks of the kernels (the many-cores issue), registered only when
// LINATTN_BENCH_THREADS lists thread counts ("1,2,4,8,16"); bench/scaling.sh runs them:
//   BM_Scaling/gla_<form>/threads:n      GLA, B=2, H=16, K=V=128, T=4096 (B·H = 32)
//   BM_Scaling/gsa_<form>/threads:n      GSA, same, M=64 slots
//   BM_Scaling/gla340m_<form>/threads:n  GLA as in the 340M-class layer: B=1, H=4, K=128, V=256,
//                                        T=2048 (4 heads for 16 threads: the value columns split)
//   BM_Scaling/ternary2/threads:n        ternary::linear 2-bit, 128 tokens, 5632×2048
//   BM_Scaling/eigen_gemm/threads:n      nn::Linear (Eigen), the same shape: the GEMM bound
//   BM_Scaling/stream_read/threads:n     1 GiB streaming read: the bandwidth bound
// Each count of one benchmark runs back to back; forms are <recurrent|chunk|fused_chunk>.
#include <benchmark/benchmark.h>

#include <compare>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"
#include "stream_read.hpp"
#include "linattn/linattn.hpp"

namespace {

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
using namespace linattn_bench;

constexpr index_t kB = 2, kH = 16, kK = 128, kT = 4096, kM = 64;

template <class T>
std::span<T> span_of(Array<T, 4>& a) {
  return std::span<T>(a.data(), static_cast<std::size_t>(a.numel()));
}

// GLA inputs of one shape [B, T, H, K|V], made once per shape.
struct GlaShape {
  index_t B, T, H, K, V;
  auto operator<=>(const GlaShape&) const = default;
};
constexpr GlaShape kWide{kB, kT, kH, kK, kK};        // B·H = 32
constexpr GlaShape kLayer340m{1, 2048, 4, 128, 256};  // one layer of the 340M-class model

struct GlaInputs {
  Array<float, 4> q, k, v, g;
  explicit GlaInputs(const GlaShape& d)
      : q(Shape<4>{d.B, d.T, d.H, d.K}), k(q.shape()), v(Shape<4>{d.B, d.T, d.H, d.V}), g(q.shape()) {
    std::mt19937_64 rng(kSeed);
    fill_normal(span_of(q), rng);
    fill_normal(span_of(k), rng);
    fill_normal(span_of(v), rng);
    fill_gla_gates(span_of(g), rng);
  }
};

const GlaInputs& gla_inputs(const GlaShape& d) {
  static std::map<GlaShape, std::unique_ptr<GlaInputs>> cache;
  auto& in = cache[d];
  if (!in) in = std::make_unique<GlaInputs>(d);
  return *in;
}

void BM_Gla(benchmark::State& state, GlaShape d, int form, int threads) {
  const GlaInputs& in = gla_inputs(d);
  Array<float, 4> o(Shape<4>{d.B, d.T, d.H, d.V});
  linattn::gla::State<float> fs(d.B, d.H, d.K, d.V);
  linattn::gla::Options opt;
  opt.threads = linattn::Threads{threads};
  const auto run = form == 0 ? linattn::gla::recurrent<float> : form == 1 ? linattn::gla::chunk<float> : linattn::gla::fused_chunk<float>;
  for (auto _ : state) {
    run(in.q.view(), in.k.view(), in.v.view(), in.g.view(), o.view(), nullptr, &fs, opt);
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(d.K * d.V * d.H * d.B * d.T));
}

// GSA inputs: B=2, H=16, K=V=128, M=64, T=4096.
struct GsaInputs {
  Array<float, 4> q{Shape<4>{kB, kT, kH, kK}}, k{Shape<4>{kB, kT, kH, kK}}, v{Shape<4>{kB, kT, kH, kK}};
  Array<float, 4> s{Shape<4>{kB, kT, kH, kM}}, f{Shape<4>{kB, kT, kH, kM}};  // slot writes and log decays
  GsaInputs() {
    std::mt19937_64 rng(kSeed);
    fill_normal(span_of(q), rng);
    fill_normal(span_of(k), rng);
    fill_normal(span_of(v), rng);
    fill_gla_gates(span_of(f), rng, 8.0);
    for (index_t i = 0; i < s.numel(); ++i) s.data()[i] = -std::expm1(f.data()[i]);
  }
};

const GsaInputs& gsa_inputs() {
  static const GsaInputs in;
  return in;
}

void BM_Gsa(benchmark::State& state, int form, int threads) {
  const GsaInputs& in = gsa_inputs();
  Array<float, 4> o(Shape<4>{kB, kT, kH, kK});
  linattn::gsa::State<float> fs(kB, kH, kK, kM, kK);
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    if (form == 0)
      linattn::gsa::recurrent<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.f.view(), o.view(), nullptr, &fs, opt);
    if (form == 1)
      linattn::gsa::chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.f.view(), o.view(), nullptr, &fs, opt);
    if (form == 2)
      linattn::gsa::fused_chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.f.view(), o.view(), nullptr,
                                       &fs, opt);
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(kM * 2 * kK * kH * kB * kT));
}

constexpr index_t kOut = 5632, kIn = 2048, kTokens = 128;

Array<float, 2> random_matrix(index_t rows, index_t cols) {
  Array<float, 2> a(Shape<2>{rows, cols});
  std::mt19937_64 rng(kSeed + static_cast<std::uint64_t>(rows));
  fill_normal(std::span<float>(a.data(), static_cast<std::size_t>(a.numel())), rng);
  return a;
}

void BM_Ternary(benchmark::State& state, int threads) {
  static const Array<float, 2> w = random_matrix(kOut, kIn), x = random_matrix(kTokens, kIn);
  static const linattn::ternary::PackedWeights packed(w.cview(), linattn::ternary::Packing::bits2);
  Array<float, 2> y(Shape<2>{kTokens, kOut});
  linattn::ternary::Options opt;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    linattn::ternary::linear(packed, x.cview(), y.view(), opt);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPS"] = giga_rate(2.0 * static_cast<double>(kOut * kIn * kTokens));
}

void BM_Gemm(benchmark::State& state, int threads) {
  static const Array<float, 2> x = random_matrix(kTokens, kIn);
  static const linattn::nn::Linear lin = linattn::nn::Linear::from_array(random_matrix(kOut, kIn));
  Array<float, 2> y(Shape<2>{kTokens, kOut});
  for (auto _ : state) {
    lin.forward(x.cview(), y.view(), linattn::Threads{threads});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] = giga_rate(2.0 * static_cast<double>(kOut * kIn * kTokens));
}

void BM_Stream(benchmark::State& state, int threads) { stream_read_1gib(state, threads); }

const bool registered = [] {
  const auto counts = thread_list_from_env();
  if (counts.empty()) return false;
  const char* forms[] = {"recurrent", "chunk", "fused_chunk"};
  const auto add = [&](const std::string& name, auto fn, auto... args) {
    for (int t : counts)
      benchmark::RegisterBenchmark(("BM_Scaling/" + name + "/threads:" + std::to_string(t)).c_str(), fn, args..., t)
          ->Apply(defaults)
          ->Unit(benchmark::kMillisecond);
  };
  add("stream_read", BM_Stream);
  add("eigen_gemm", BM_Gemm);
  add("ternary2", BM_Ternary);
  for (int f = 0; f < 3; ++f) add(std::string("gla_") + forms[f], BM_Gla, kWide, f);
  for (int f = 0; f < 3; ++f) add(std::string("gsa_") + forms[f], BM_Gsa, f);
  for (int f = 0; f < 3; ++f) add(std::string("gla340m_") + forms[f], BM_Gla, kLayer340m, f);
  return true;
}();

}  // namespace
