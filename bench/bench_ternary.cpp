// Ternary linear layers against dense ones, with cold weights.
//
//   BM_Ternary2/out:o/in:i/tokens:n/threads:t   ternary::linear, 2-bit packed weights
//   BM_Ternary16/...                            the same, base-3 "1.6-bit" packing
//   BM_EigenLinear/...                          fp32 y = W x (tokens 1: GEMV) or Y = X Wᵀ (GEMM), Eigen
//   BM_Int8Gemv/out:o/in:i                      int8 weights × int8 activations, one token, 1 thread
//                                               (vpdpbusd; AVX-512 VNNI builds only)
//   BM_MemoryBandwidth/MiB:m/threads:t          streaming read (sum of uint64 words) of m MiB
//   BM_BitLinearBackward/tokens:n               nn::TrainableBitLinear::backward, 2048 → 5632, 1 thread
//   BM_DenseLinearBackward/tokens:n             the dense fp32 backward of the same shape (Eigen):
//                                               dX = dY·W, dW = dYᵀ·X (warm weights in both)
//
// The ternary time includes quantising the activations (per-token absmax int8) and the float
// scaling of the outputs; Eigen's is the bare product. Weights are cold: every iteration uses
// the next of enough copies (256 MiB in all, as much as BM_MemoryBandwidth reads, against a 32 MiB
// L3) that none is still cached when its turn comes again. Measured (Zen 5, 2-bit GEMV): with 96
// MiB of copies part of them survives in L3 and the GEMV "streams" faster than memory (47 GB/s
// at 5632×2048); with 256 MiB 40 GB/s; with 512 MiB 34 GB/s (page walks). Eigen with 2 threads:
// Eigen::setNbThreads(2) for the GEMM; Eigen never parallelises a GEMV, so with one token the
// rows are split in two halves on two threads.
//
// Counters: "weight_bytes" (one copy: packed buffer, or 4 or 1 bytes a weight), "GB/s" (weight
// bytes streamed per second), "copies", "tokens/s".
#include <Eigen/Core>
#include <benchmark/benchmark.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "common.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/nn/bitlinear_train.hpp"
#include "linattn/ops/ternary.hpp"

namespace {

using namespace linattn_bench;
using linattn::Array;
using linattn::index_t;
using linattn::Shape;
namespace ternary = linattn::ternary;
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr std::size_t kColdBytes = std::size_t(256) << 20;  // = BM_MemoryBandwidth's buffer

// Cheap deterministic fills (xorshift): the weight sets are hundreds of MB, and the kernels have
// no data-dependent branches, so the distribution does not matter for the timing.
struct XorShift {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

std::size_t copies_for(std::size_t bytes) { return std::max<std::size_t>(1, (kColdBytes + bytes - 1) / bytes); }

// One set of weight copies is alive at a time (the arguments run shape by shape, family by
// family): asking for another kind or shape frees the previous set first.
struct Key {
  int kind = -1;  // 0 2-bit, 1 base-3, 2 fp32
  index_t out = 0, in = 0;
  bool operator==(const Key&) const = default;
};
Key current;
std::vector<ternary::PackedWeights> packed_set;
std::vector<Matrix> dense_set;

bool switch_to(const Key& k) {
  if (current == k) return false;
  packed_set = {};
  dense_set = {};
  current = k;
  return true;
}

// Packed copies of one random ternary matrix.
const std::vector<ternary::PackedWeights>& ternary_copies(ternary::Packing p, index_t out, index_t in) {
  auto& copies = packed_set;
  if (switch_to({p == ternary::Packing::bits2 ? 0 : 1, out, in})) {
    Array<std::int8_t, 2> codes(Shape<2>{out, in});
    XorShift rng{kSeed};
    for (auto& c : codes.vector()) c = static_cast<std::int8_t>(static_cast<int>(rng.next() % 3) - 1);
    ternary::PackedWeights w(codes.cview(), 0.01f, p);
    copies.assign(copies_for(w.bytes()), w);
  }
  return copies;
}

const std::vector<Matrix>& dense_copies(index_t out, index_t in) {
  auto& copies = dense_set;
  if (switch_to({2, out, in})) {
    Matrix w(out, in);
    XorShift rng{kSeed};
    for (index_t k = 0; k < w.size(); ++k)
      w.data()[k] = static_cast<float>(static_cast<std::int32_t>(rng.next() >> 32)) * (1.0f / 2147483648.0f);
    copies.assign(copies_for(static_cast<std::size_t>(w.size()) * sizeof(float)), w);
  }
  return copies;
}

Array<float, 2> activations(index_t tokens, index_t in) {
  Array<float, 2> x(Shape<2>{tokens, in});
  std::mt19937_64 rng(kSeed + 1);
  fill_normal(std::span<float>(x.data(), static_cast<std::size_t>(x.numel())), rng);
  return x;
}

void set_counters(benchmark::State& state, double weight_bytes, std::size_t copies, index_t tokens) {
  state.counters["weight_bytes"] = weight_bytes;
  state.counters["GB/s"] = giga_rate(weight_bytes);
  state.counters["copies"] = static_cast<double>(copies);
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(tokens));
}

template <ternary::Packing P>
void BM_Ternary(benchmark::State& state) {
  const index_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto& w = ternary_copies(P, out, in);
  const auto x = activations(tokens, in);
  Array<float, 2> y(Shape<2>{tokens, out});
  ternary::Options opt;
  opt.threads = linattn::Threads{threads};
  std::size_t k = 0;
  for (auto _ : state) {
    ternary::linear(w[k], x.cview(), y.view(), opt);
    benchmark::DoNotOptimize(y.data());
    if (++k == w.size()) k = 0;
  }
  set_counters(state, static_cast<double>(w[0].bytes()), w.size(), tokens);
  // Against BM_Int8DotPeak (bench_roofline.cpp): the many-token path's compute bound.
  state.counters["GMAC/s"] = giga_rate(static_cast<double>(tokens) * static_cast<double>(out) * static_cast<double>(in));
}

void BM_EigenLinear(benchmark::State& state) {
  const index_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto& w = dense_copies(out, in);
  const auto xa = activations(tokens, in);
  const Eigen::Map<const Matrix> x(xa.data(), tokens, in);
  Matrix y(tokens, out);
  Eigen::setNbThreads(threads);
  std::size_t k = 0;
  for (auto _ : state) {
    const Matrix& wk = w[k];
    if (tokens == 1 && threads > 1) {
      // Eigen's GEMV is single-threaded: one half of the rows per thread.
      const index_t half = (out + 1) / 2;
      linattn::detail::parallel_for(2, linattn::Threads{2}, [&](index_t part) {
        const index_t r0 = part * half, n = std::min(out, r0 + half) - r0;
        y.row(0).segment(r0, n).noalias() = (wk.middleRows(r0, n) * x.row(0).transpose()).transpose();
      });
    } else if (tokens == 1) {
      y.row(0).noalias() = (wk * x.row(0).transpose()).transpose();
    } else {
      y.noalias() = x * wk.transpose();
    }
    benchmark::DoNotOptimize(y.data());
    if (++k == w.size()) k = 0;
  }
  Eigen::setNbThreads(0);  // back to "ask OpenMP" (see bench_roofline.cpp)
  set_counters(state, 4.0 * static_cast<double>(out) * static_cast<double>(in), w.size(), tokens);
}

// Shapes (out × in) of the 370M and 1.3B models (SPEC §7): attention/MLP projections, the fused
// gate+up (2I × D), down (D × I), and the vocabulary head (32000 × 1024).
constexpr index_t kShapes[][2] = {{1024, 1024}, {2816, 1024},  {1024, 2816}, {2048, 2048},
                                  {5632, 2048}, {11264, 2048}, {2048, 5632}, {32000, 1024}};

bool many_token_shape(index_t out, index_t in) {  // 128 tokens: the targets' shapes and a few
  return (out == 2048 && in == 5632) || (out == 5632 && in == 2048) || (out == 1024 && in == 1024) ||
         (out == 1024 && in == 2816);
}

void linear_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"out", "in", "tokens", "threads"});
  for (const auto& s : kShapes)
    for (const index_t tokens : {1, 16, 128}) {
      if (tokens == 128 && !many_token_shape(s[0], s[1])) continue;
      for (const index_t threads : {1, 2}) b->Args({s[0], s[1], tokens, threads});
    }
  defaults(b);
  b->Unit(benchmark::kMicrosecond);
}

// A streaming read of the whole buffer (sum of uint64 words), split in equal parts over the
// threads: the memory bandwidth the GEMV's GB/s is compared with. It prefetches 16 KiB ahead in
// software as the ternary GEMV does (measured: 36-38 GB/s on one Zen 5 core, 33-35 without), so
// the ratio compares like with like. Registered before the linear layers, so that it runs right
// before the kernels it is compared with (the memory of this VM is shared with other tenants).
__attribute__((noinline)) std::uint64_t stream_sum(const std::uint64_t* p, std::size_t n) {
  constexpr std::size_t kAhead = (16 << 10) / sizeof(std::uint64_t);
  std::uint64_t s = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p + i) + kAhead * 8));
    for (std::size_t k = 0; k < 8; ++k) s += p[i + k];
  }
  for (; i < n; ++i) s += p[i];
  return s;
}

void BM_MemoryBandwidth(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0)) << 20;
  const int threads = static_cast<int>(state.range(1));
  const std::size_t n = bytes / sizeof(std::uint64_t);
  std::vector<std::uint64_t> buf(n);
  for (std::size_t i = 0; i < n; ++i) buf[i] = i;
  std::uint64_t total = 0;
  for (int pass = 0; pass < 4; ++pass) total += stream_sum(buf.data(), n);  // warm-up (TLB, page state)
  for (auto _ : state) {
    std::uint64_t sums[2] = {0, 0};
    const std::size_t part_n = n / static_cast<std::size_t>(threads);
    linattn::detail::parallel_for(threads, linattn::Threads{threads}, [&](index_t part) {
      const std::size_t b = part_n * static_cast<std::size_t>(part);
      sums[part] = stream_sum(buf.data() + b, part + 1 == threads ? n - b : part_n);
    });
    total += sums[0] + sums[1];
    benchmark::DoNotOptimize(total);
  }
  state.counters["GB/s"] = giga_rate(static_cast<double>(bytes));
}
BENCHMARK(BM_MemoryBandwidth)
    ->ArgNames({"MiB", "threads"})
    ->Args({256, 1})
    ->Args({256, 2})
    ->Apply(defaults)
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_Ternary<ternary::Packing::bits2>)->Name("BM_Ternary2")->Apply(linear_args);
BENCHMARK(BM_Ternary<ternary::Packing::base3>)->Name("BM_Ternary16")->Apply(linear_args);
BENCHMARK(BM_EigenLinear)->Apply(linear_args);

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
// int8 weights (row-major [out, in], stored as w + 128, unsigned) × int8 activations, one token:
// acc = Σ (w+128)·x − 128·Σx with vpdpbusd, four rows at a time. The dense int8 roofline point
// between fp32 (4 bytes a weight) and 2-bit (1/4 byte).
void int8_gemv(const std::uint8_t* w, const std::int8_t* x, index_t out, index_t in, std::int32_t* y) {
  std::int32_t xsum = 0;
  for (index_t j = 0; j < in; ++j) xsum += x[j];
  for (index_t r = 0; r < out; r += 4) {
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (index_t j = 0; j < in; j += 64) {
      const __m512i xv = _mm512_loadu_si512(x + j);
      for (int i = 0; i < 4; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_loadu_si512(w + (r + i) * in + j), xv);
    }
    for (int i = 0; i < 4; ++i) y[r + i] = _mm512_reduce_add_epi32(acc[i]) - 128 * xsum;
  }
}

void BM_Int8Gemv(benchmark::State& state) {
  const index_t out = state.range(0), in = state.range(1);  // out % 4 == 0, in % 64 == 0
  const std::size_t bytes = static_cast<std::size_t>(out * in);
  const std::size_t copies = copies_for(bytes);
  std::vector<std::uint8_t> w(bytes * copies);
  XorShift rng{kSeed};
  for (std::size_t i = 0; i < bytes; ++i) w[i] = static_cast<std::uint8_t>(rng.next());
  for (std::size_t c = 1; c < copies; ++c) std::memcpy(w.data() + c * bytes, w.data(), bytes);
  std::vector<std::int8_t> x(static_cast<std::size_t>(in));
  for (auto& v : x) v = static_cast<std::int8_t>(rng.next());
  std::vector<std::int32_t> y(static_cast<std::size_t>(out));
  std::size_t k = 0;
  for (auto _ : state) {
    int8_gemv(w.data() + k * bytes, x.data(), out, in, y.data());
    benchmark::DoNotOptimize(y.data());
    if (++k == copies) k = 0;
  }
  set_counters(state, static_cast<double>(bytes), copies, 1);
}
BENCHMARK(BM_Int8Gemv)
    ->ArgNames({"out", "in"})
    ->Args({2048, 5632})
    ->Args({5632, 2048})
    ->Args({32000, 1024})
    ->Apply(defaults)
    ->Unit(benchmark::kMicrosecond);
#endif


// ---- training: BitLinear's straight-through backward against a dense one -------------------
constexpr index_t kTrainIn = 2048, kTrainOut = 5632;

// Eigen's GEMM thread count for one benchmark's scope (it defaults to OpenMP's, here 2).
struct EigenThreads {
  int saved = Eigen::nbThreads();
  explicit EigenThreads(int n) { Eigen::setNbThreads(n); }
  ~EigenThreads() { Eigen::setNbThreads(saved); }
};

void BM_BitLinearBackward(benchmark::State& state) {
  const EigenThreads one(1);  // one thread for both, whatever OpenMP offers
  const index_t N = state.range(0);
  std::mt19937_64 rng(kSeed);
  linattn::Array<float, 2> W(linattn::Shape<2>{kTrainOut, kTrainIn}), x(linattn::Shape<2>{N, kTrainIn}),
      y(linattn::Shape<2>{N, kTrainOut}), dy(linattn::Shape<2>{N, kTrainOut});
  fill_normal(std::span<float>(W.data(), static_cast<std::size_t>(W.numel())), rng);
  fill_normal(std::span<float>(x.data(), static_cast<std::size_t>(x.numel())), rng);
  fill_normal(std::span<float>(dy.data(), static_cast<std::size_t>(dy.numel())), rng);
  const linattn::nn::TrainableBitLinear layer(W, std::vector<float>(static_cast<std::size_t>(kTrainIn), 1.0f));
  linattn::nn::BitLinearSaved saved;
  layer.forward(x.cview(), y.view(), &saved);
  linattn::nn::BitLinearGradients grads;
  for (auto _ : state) {
    layer.backward(saved, dy.cview(), grads);
    benchmark::DoNotOptimize(grads.dx.data());
    benchmark::DoNotOptimize(grads.dweight.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(N));
}

void BM_DenseLinearBackward(benchmark::State& state) {
  const EigenThreads one(1);  // one thread for both, whatever OpenMP offers
  const index_t N = state.range(0);
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Mat W = Mat::Random(kTrainOut, kTrainIn), X = Mat::Random(N, kTrainIn), dY = Mat::Random(N, kTrainOut);
  Mat dX(N, kTrainIn), dW(kTrainOut, kTrainIn);
  for (auto _ : state) {
    dX.noalias() = dY * W;
    dW.noalias() = dY.transpose() * X;
    benchmark::DoNotOptimize(dX.data());
    benchmark::DoNotOptimize(dW.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(N));
}

void train_linear_args(benchmark::internal::Benchmark* b) {
  b->ArgName("tokens")->Arg(1)->Arg(128);
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_BitLinearBackward)->Apply(train_linear_args);
BENCHMARK(BM_DenseLinearBackward)->Apply(train_linear_args);

}  // namespace
