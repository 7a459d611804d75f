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

#include <cstdlib>
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

struct Inputs {
  Array<float, 4> q{Shape<4>{kB, kT, kH, kK}}, k{Shape<4>{kB, kT, kH, kK}}, v{Shape<4>{kB, kT, kH, kK}};
  Array<float, 4> g{Shape<4>{kB, kT, kH, kK}};          // GLA key gates
  Array<float, 4> s{Shape<4>{kB, kT, kH, kM}}, f{Shape<4>{kB, kT, kH, kM}};  // GSA slot writes and log decays
  Inputs() {
    std::mt19937_64 rng(kSeed);
    fill_normal(span_of(q), rng);
    fill_normal(span_of(k), rng);
    fill_normal(span_of(v), rng);
    fill_gla_gates(span_of(g), rng);
    fill_gla_gates(span_of(f), rng, 8.0);
    for (index_t i = 0; i < s.numel(); ++i) s.data()[i] = -std::expm1(f.data()[i]);
  }
};

const Inputs& inputs() {
  static const Inputs in;
  return in;
}

void BM_Gla(benchmark::State& state, int form, int threads) {
  const Inputs& in = inputs();
  Array<float, 4> o(Shape<4>{kB, kT, kH, kK});
  linattn::gla::State<float> fs(kB, kH, kK, kK);
  linattn::gla::Options opt;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    if (form == 0) linattn::gla::recurrent<float>(in.q.view(), in.k.view(), in.v.view(), in.g.view(), o.view(), nullptr, &fs, opt);
    if (form == 1) linattn::gla::chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.g.view(), o.view(), nullptr, &fs, opt);
    if (form == 2)
      linattn::gla::fused_chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.g.view(), o.view(), nullptr, &fs, opt);
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(kK * kK * kH * kB * kT));
}

// One GLA layer of the 340M-class model: B=1, H=4, K=128, V=256, T=2048.
void BM_Gla340m(benchmark::State& state, int form, int threads) {
  constexpr index_t B = 1, H = 4, K = 128, V = 256, T = 2048;
  static const auto make = [](index_t d, bool gate) {
    Array<float, 4> a(Shape<4>{B, T, H, d});
    std::mt19937_64 rng(kSeed + static_cast<std::uint64_t>(d) + (gate ? 1 : 0));
    if (gate)
      fill_gla_gates(span_of(a), rng);
    else
      fill_normal(span_of(a), rng);
    return a;
  };
  static const Array<float, 4> q = make(K, false), k = make(K, false), v = make(V, false), g = make(K, true);
  Array<float, 4> o(Shape<4>{B, T, H, V});
  linattn::gla::State<float> fs(B, H, K, V);
  linattn::gla::Options opt;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    if (form == 0) linattn::gla::recurrent<float>(q.view(), k.view(), v.view(), g.view(), o.view(), nullptr, &fs, opt);
    if (form == 1) linattn::gla::chunk<float>(q.view(), k.view(), v.view(), g.view(), o.view(), nullptr, &fs, opt);
    if (form == 2) linattn::gla::fused_chunk<float>(q.view(), k.view(), v.view(), g.view(), o.view(), nullptr, &fs, opt);
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(K * V * H * B * T));
}

void BM_Gsa(benchmark::State& state, int form, int threads) {
  const Inputs& in = inputs();
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
  for (int f = 0; f < 3; ++f) add(std::string("gla_") + forms[f], BM_Gla, f);
  for (int f = 0; f < 3; ++f) add(std::string("gsa_") + forms[f], BM_Gsa, f);
  for (int f = 0; f < 3; ++f) add(std::string("gla340m_") + forms[f], BM_Gla340m, f);
  return true;
}();

}  // namespace
