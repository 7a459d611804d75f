// Helpers shared by the translation units of linattn-bench.
//
// Counter conventions (see bench/summarize.py):
//   "GFLOPS", "GB/s", "state_GB/s": values already in units of 1e9 per second (the JSON
//       holds GFLOPS / GB/s directly; the console prints them as "x/s").
//   "tokens/s": tokens per second.
// All rates are over real (wall) time: every benchmark calls UseRealTime().
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace linattn_bench {

inline constexpr std::uint64_t kSeed = 20240601;
inline constexpr double kGiga = 1e9;

// A rate counter from an amount of work done per iteration.
inline benchmark::Counter per_iteration_rate(double amount) {
  return benchmark::Counter(amount, benchmark::Counter::kIsIterationInvariantRate);
}
// The same, in units of 1e9 (GFLOPS, GB/s).
inline benchmark::Counter giga_rate(double amount) { return per_iteration_rate(amount / kGiga); }

// x ~ N(0, 1).
template <class T>
void fill_normal(std::span<T> x, std::mt19937_64& rng) {
  std::normal_distribution<double> dist(0.0, 1.0);
  for (auto& e : x) e = static_cast<T>(dist(rng));
}

// GLA layer gate distribution: gk = logsigmoid(N(0, 1)) / 16 (always < 0: a decay).
template <class T>
void fill_gla_gates(std::span<T> x, std::mt19937_64& rng, double normaliser = 16.0) {
  std::normal_distribution<double> dist(0.0, 1.0);
  for (auto& e : x) {
    const double z = dist(rng);
    const double logsigmoid = std::min(z, 0.0) - std::log1p(std::exp(-std::abs(z)));
    e = static_cast<T>(logsigmoid / normaliser);
  }
}

// Settings every benchmark of this binary shares: rates over wall-clock time (the kernels run
// on several threads). The minimum time per run and the repetitions are not set here but
// defaulted by bench_main.cpp as command-line flags (--benchmark_min_time=0.2,
// --benchmark_repetitions=3, aggregates only on the console), so that a caller can override
// them: a per-benchmark MinTime()/Repetitions() would take precedence over the flags.
inline void defaults(benchmark::internal::Benchmark* b) { b->UseRealTime(); }

// LINATTN_BENCH_THREADS="1,2,4" → {1, 2, 4}: the thread counts of a scaling sweep (empty when unset).
inline std::vector<int> thread_list_from_env() {
  std::vector<int> counts;
  const char* env = std::getenv("LINATTN_BENCH_THREADS");
  if (!env) return counts;
  const std::string s(env);
  for (std::size_t pos = 0; pos < s.size();) {
    const std::size_t end = std::min(s.find(',', pos), s.size());
    counts.push_back(std::max(1, std::atoi(s.substr(pos, end - pos).c_str())));
    pos = end + 1;
  }
  return counts;
}

}  // namespace linattn_bench
