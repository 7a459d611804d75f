// Roofline references the kernel benchmarks are compared against (bench/summarize.py):
//   BM_EigenGemm/n:N            fp32 N×N×N GEMM with Eigen on one thread: attainable compute.
//   BM_StateReadWrite/bytes:B   one read+write pass over a B-byte float buffer: the memory
//                               bound of a decode step whose state is B bytes.
#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "common.hpp"

namespace {

using namespace linattn_bench;

void BM_EigenGemm(benchmark::State& state) {
  const auto n = static_cast<Eigen::Index>(state.range(0));
  // Single-threaded Eigen. Restored to 0 ("ask OpenMP") afterwards: linattn's kernels rely on
  // Eigen reading the per-worker OpenMP thread count, which a fixed setNbThreads would override.
  Eigen::setNbThreads(1);
  std::mt19937_64 rng(kSeed);
  Eigen::MatrixXf A(n, n), B(n, n), C(n, n);
  fill_normal(std::span<float>(A.data(), static_cast<std::size_t>(A.size())), rng);
  fill_normal(std::span<float>(B.data(), static_cast<std::size_t>(B.size())), rng);
  C.setZero();
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  Eigen::setNbThreads(0);
  state.counters["GFLOPS"] = giga_rate(2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n));
}
BENCHMARK(BM_EigenGemm)->ArgName("n")->Arg(1024)->Apply(defaults)->Unit(benchmark::kMillisecond);

// s[i] = s[i]·a + b over the whole buffer: every byte read once and written once.
void BM_StateReadWrite(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  std::vector<float> s(bytes / sizeof(float), 1.0f);
  const float a = 0.999f, b = 0.001f;  // fixed point 1: no growth, no denormals
  for (auto _ : state) {
    float* p = s.data();
    benchmark::DoNotOptimize(p);
    for (std::size_t i = 0, n = s.size(); i < n; ++i) p[i] = p[i] * a + b;
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = giga_rate(2.0 * static_cast<double>(bytes));
}
// Decode states, B=1, H=4: GLA K=V ∈ {64, 128} (4·K·V floats); GSA M=64, K=V ∈ {64, 128}
// (4·(K+V)·M floats: 128 KiB, and 256 KiB like GLA's K=V=128).
BENCHMARK(BM_StateReadWrite)
    ->ArgName("bytes")
    ->Arg(4 * 64 * 64 * 4)
    ->Arg(4 * (64 + 64) * 64 * 4)
    ->Arg(4 * 128 * 128 * 4)
    ->Apply(defaults)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
