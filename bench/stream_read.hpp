// The streaming-read bound of the thread sweeps (bench_models.cpp, bench_scaling.cpp): the sum of
// a 1 GiB buffer on `threads` threads of the library's own team, in contiguous parts of 1 MiB
// claimed as a model's weight rows are: the bandwidth a weight stream can have.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "common.hpp"
#include "linattn/core/threading.hpp"

namespace linattn_bench {

inline void stream_read_1gib(benchmark::State& state, int threads) {
  const std::size_t n = (std::size_t(1) << 30) / sizeof(std::uint32_t);
  constexpr std::size_t kPart = (std::size_t(1) << 20) / sizeof(std::uint32_t);
  // Integer words: an integer sum vectorises (a float sum would be one dependent add chain
  // without -ffast-math, compute-bound at a fraction of the bandwidth).
  static const std::vector<std::uint32_t> buf(n, 1u);
  std::vector<std::uint32_t> partial(n / kPart);
  for (auto _ : state) {
    linattn::detail::parallel_for(static_cast<linattn::index_t>(n / kPart), linattn::Threads{threads},
                                  [&](linattn::index_t p) {
                                    std::uint32_t total = 0;
                                    const std::uint32_t* b = buf.data() + static_cast<std::size_t>(p) * kPart;
                                    for (std::size_t i = 0; i < kPart; ++i) total += b[i];
                                    partial[static_cast<std::size_t>(p)] = total;
                                  });
    benchmark::DoNotOptimize(partial.data());
  }
  state.counters["GB/s"] = giga_rate(static_cast<double>(n * sizeof(std::uint32_t)));
}

}  // namespace linattn_bench
