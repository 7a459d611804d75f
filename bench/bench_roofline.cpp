// Roofline references the kernel benchmarks are compared against (bench/summarize.py):
//   BM_EigenGemm/n:N            fp32 N×N×N GEMM with Eigen on one thread: attainable compute.
//   BM_StateReadWrite/bytes:B   one read+write pass over a B-byte float buffer: the memory
//                               bound of a decode step whose state is B bytes.
//   BM_Int8DotPeak              vpdpbusd on registers only (AVX-512 VNNI builds): the int8
//                               multiply-add peak of one core, the ternary GEMM's compute bound.
#include <Eigen/Core>
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#endif
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

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
// 16 independent vpdpbusd chains (more than latency × issue width: measured 2 a cycle on Zen 5),
// 64 multiply-adds each. Named accumulators: with an array GCC keeps them in memory.
void BM_Int8DotPeak(benchmark::State& state) {
#define LINATTN_BENCH_16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define LINATTN_BENCH_DECL(i) __m512i a##i = _mm512_set1_epi32(i);
// GCC 12 copies the tied accumulator of the builtin in and out of every call (half the peak
// measured); the instruction itself, as kernels_avx512.hpp does.
#define LINATTN_BENCH_DOT(i) __asm__("vpdpbusd %2, %1, %0" : "+v"(a##i) : "v"(x), "v"(y));
#define LINATTN_BENCH_SUM(i) sum = _mm512_add_epi32(sum, a##i);
  LINATTN_BENCH_16(LINATTN_BENCH_DECL)
  const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(2);
  constexpr std::int64_t kSteps = 1 << 16;  // 16 · 64 · 2^16 multiply-adds an iteration
  for (auto _ : state) {
    for (std::int64_t n = 0; n < kSteps; ++n) {
      LINATTN_BENCH_16(LINATTN_BENCH_DOT)
    }
  }
  __m512i sum = _mm512_setzero_si512();
  LINATTN_BENCH_16(LINATTN_BENCH_SUM)
  benchmark::DoNotOptimize(sum);
#undef LINATTN_BENCH_SUM
#undef LINATTN_BENCH_DOT
#undef LINATTN_BENCH_DECL
#undef LINATTN_BENCH_16
  state.counters["GMAC/s"] = giga_rate(16.0 * 64.0 * static_cast<double>(kSteps));
}
BENCHMARK(BM_Int8DotPeak)->Apply(defaults)->Unit(benchmark::kMicrosecond);
#endif

}  // namespace
