// Gated linear attention: prefill (recurrent and chunk forms) and decode (step).
//
//   BM_GLA_Recurrent/K:k/T:t/threads:n   B=1, H=4, K=V=k, T=t tokens
//   BM_GLA_FusedChunk/K:k/T:t/threads:n  same, fused chunk form (state in registers)
//   BM_GLA_Chunk/K:k/T:t/threads:n       same, chunk form (chunk_size 64)
//   BM_GLA_Step/K:k/threads:n            one decode token, B=1, H=4, state K=V=k
//   BM_GLA_ChunkBackward/K:k/T:t/threads:n      the chunk backward alone (do, dht given)
//   BM_GLA_RecurrentBackward/K:k/T:t/threads:n  the recurrent (reference) backward alone
//   BM_GLA_ChunkBackwardSaved/K:k/T:t/threads:n the chunk backward from a forward's saved chunk states
//   BM_GLA_ChunkTrainStep/K:k/T:t/threads:n     chunk forward (keeping the chunk states) + chunk
//                                               backward from them: one training step
//
// Backward counters: "GFLOPS" = 8·K·V·T·H·B (twice the forward's) for a backward alone and
// 3 × 4·K·V·T·H·B for forward + backward, the accounting of the backward issue.
// Counters: "tokens/s"; "GFLOPS" = 4·K·V·T·H·B per iteration (recurrent-equivalent flops,
// whatever the form); "state_GB/s" = 2·4·H·K·V bytes per step (state read + written).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <span>

#include "common.hpp"
#include "linattn/ops/gla.hpp"

namespace {

using namespace linattn_bench;
using linattn::Array;
using linattn::index_t;
using linattn::Shape;

constexpr index_t kB = 1;
constexpr index_t kH = 4;

template <std::size_t R>
std::span<float> span_of(Array<float, R>& a) {
  return {a.data(), static_cast<std::size_t>(a.numel())};
}

// Prefill inputs q, k, v ~ N(0,1), gk = logsigmoid(N(0,1))/16, fixed seed. Filling 8192-token
// inputs takes longer than running the kernel, and Google Benchmark calls a benchmark function
// several times (iteration estimate, repetitions), so the last (K, T) is kept: the loops over
// threads run back to back on the same inputs.
struct PrefillInputs {
  index_t K = 0, T = 0;
  Array<float, 4> q, k, v, gk, o;
};

const PrefillInputs& prefill_inputs(index_t K, index_t T) {
  static std::unique_ptr<PrefillInputs> cache;
  if (!cache || cache->K != K || cache->T != T) {
    cache.reset();  // free the previous set before allocating the next
    auto in = std::make_unique<PrefillInputs>();
    in->K = K;
    in->T = T;
    const index_t V = K;
    in->q = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->k = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->gk = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->v = Array<float, 4>(Shape<4>{kB, T, kH, V});
    in->o = Array<float, 4>(Shape<4>{kB, T, kH, V});
    std::mt19937_64 rng(kSeed);
    fill_normal(span_of(in->q), rng);
    fill_normal(span_of(in->k), rng);
    fill_normal(span_of(in->v), rng);
    fill_gla_gates(span_of(in->gk), rng);
    cache = std::move(in);
  }
  return *cache;
}

template <int Form>  // 0 recurrent, 1 chunk, 2 fused_chunk
void BM_GLA_Prefill(benchmark::State& state) {
  const index_t K = state.range(0), V = K, T = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const PrefillInputs& in = prefill_inputs(K, T);
  Array<float, 4> o(Shape<4>{kB, T, kH, V});
  linattn::gla::State<float> final_state(kB, kH, K, V);
  linattn::gla::Options opt;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    if constexpr (Form == 2)
      linattn::gla::fused_chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), o.view(), nullptr,
                                       &final_state, opt);
    else if constexpr (Form == 1)
      linattn::gla::chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), o.view(), nullptr,
                                 &final_state, opt);
    else
      linattn::gla::recurrent<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), o.view(), nullptr,
                                     &final_state, opt);
    benchmark::DoNotOptimize(o.data());
    benchmark::DoNotOptimize(final_state.data());
    benchmark::ClobberMemory();
  }
  const double tokens = static_cast<double>(kB * T);
  state.counters["tokens/s"] = per_iteration_rate(tokens);
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(K * V * kH) * tokens);
}

void BM_GLA_Recurrent(benchmark::State& state) { BM_GLA_Prefill<0>(state); }
void BM_GLA_Chunk(benchmark::State& state) { BM_GLA_Prefill<1>(state); }
void BM_GLA_FusedChunk(benchmark::State& state) { BM_GLA_Prefill<2>(state); }

void prefill_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "T", "threads"})->ArgsProduct({{64, 128}, {512, 2048, 8192}, {1, 2}});
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_GLA_Recurrent)->Apply(prefill_args);
BENCHMARK(BM_GLA_Chunk)->Apply(prefill_args);
BENCHMARK(BM_GLA_FusedChunk)->Apply(prefill_args);

// Backward (Form 0 recurrent, 1 chunk recomputing the chunk states, 3 chunk from saved states)
// alone, or (Form 2) chunk forward keeping the states + chunk backward from them.
template <int Form>
void BM_GLA_Train(benchmark::State& state) {
  const index_t K = state.range(0), V = K, T = state.range(1);
  const PrefillInputs& in = prefill_inputs(K, T);
  Array<float, 4> o(Shape<4>{kB, T, kH, V}), dout(Shape<4>{kB, T, kH, V});
  Array<float, 4> dq(in.q.shape()), dk(in.q.shape()), dv(in.v.shape()), dgk(in.q.shape());
  std::mt19937_64 rng(kSeed + 1);
  fill_normal(span_of(dout), rng);
  linattn::gla::State<float> final_state(kB, kH, K, V), dh0;
  linattn::gla::Options opt;
  opt.threads = linattn::Threads{static_cast<int>(state.range(2))};
  const linattn::gla::Gradients<float> grads{dq.view(), dk.view(), dv.view(), dgk.view(), &dh0};
  linattn::gla::ChunkStates<float> saved;
  linattn::gla::chunk_train<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), o.view(), nullptr,
                                   &final_state, saved, opt);
  for (auto _ : state) {
    if constexpr (Form == 2)
      linattn::gla::chunk_train<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), o.view(), nullptr,
                                       &final_state, saved, opt);
    if constexpr (Form == 0)
      linattn::gla::recurrent_backward<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), dout.view(),
                                              nullptr, &final_state, grads, opt);
    else
      linattn::gla::chunk_backward<float>(in.q.view(), in.k.view(), in.v.view(), in.gk.view(), dout.view(), nullptr,
                                          &final_state, grads, opt, Form == 1 ? nullptr : &saved);
    benchmark::DoNotOptimize(dq.data());
    benchmark::DoNotOptimize(dgk.data());
    benchmark::ClobberMemory();
  }
  const double tokens = static_cast<double>(kB * T);
  state.counters["tokens/s"] = per_iteration_rate(tokens);
  state.counters["GFLOPS"] = giga_rate((Form == 2 ? 12.0 : 8.0) * static_cast<double>(K * V * kH) * tokens);
  state.counters["inputs_MB"] = static_cast<double>(kB * T * kH * (3 * K + 2 * V)) * 4.0 / 1e6;
  if constexpr (Form == 1) {
    // Recomputing: nothing is kept from the forward; while it runs, each (sequence, head) in
    // flight holds ⌈T / 64⌉ + 1 states.
    const double in_flight = static_cast<double>(std::min<index_t>(kB * kH, state.range(2)));
    state.counters["workspace_MB"] = in_flight * static_cast<double>(((T + 63) / 64 + 1) * K * V) * 4.0 / 1e6;
  }
  if constexpr (Form >= 2) state.counters["kept_MB"] = static_cast<double>(saved.bytes()) / 1e6;  // between the two
}

void BM_GLA_RecurrentBackward(benchmark::State& state) { BM_GLA_Train<0>(state); }
void BM_GLA_ChunkBackward(benchmark::State& state) { BM_GLA_Train<1>(state); }
void BM_GLA_ChunkTrainStep(benchmark::State& state) { BM_GLA_Train<2>(state); }
void BM_GLA_ChunkBackwardSaved(benchmark::State& state) { BM_GLA_Train<3>(state); }

void train_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "T", "threads"})->ArgsProduct({{64, 128}, {2048, 8192}, {1, 2}});
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_GLA_ChunkBackward)->Apply(train_args);
BENCHMARK(BM_GLA_ChunkBackwardSaved)->Apply(train_args);
BENCHMARK(BM_GLA_ChunkTrainStep)->Apply(train_args);
BENCHMARK(BM_GLA_RecurrentBackward)->Apply(train_args);

void BM_GLA_Step(benchmark::State& state) {
  const index_t K = state.range(0), V = K;
  const int threads = static_cast<int>(state.range(1));
  Array<float, 3> q(Shape<3>{kB, kH, K}), k(Shape<3>{kB, kH, K}), gk(Shape<3>{kB, kH, K});
  Array<float, 3> v(Shape<3>{kB, kH, V}), o(Shape<3>{kB, kH, V});
  std::mt19937_64 rng(kSeed);
  fill_normal(span_of(q), rng);
  fill_normal(span_of(k), rng);
  fill_normal(span_of(v), rng);
  fill_gla_gates(span_of(gk), rng);
  // A state that is not all zeros: random, of the magnitude a long prefill leaves.
  linattn::gla::State<float> S(kB, kH, K, V);
  fill_normal(std::span<float>(S.data(), static_cast<std::size_t>(kB * kH * K * V)), rng);
  linattn::gla::StepOptions opt;
  opt.threads = linattn::Threads{threads};
  for (auto _ : state) {
    linattn::gla::step<float>(q.view(), k.view(), v.view(), gk.view(), o.view(), S, opt);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(kB));
  state.counters["state_GB/s"] = giga_rate(2.0 * sizeof(float) * static_cast<double>(kB * kH * K * V));
  state.counters["state_bytes"] = static_cast<double>(sizeof(float) * kB * kH * K * V);
}
BENCHMARK(BM_GLA_Step)
    ->ArgNames({"K", "threads"})
    ->ArgsProduct({{64, 128}, {1, 2}})
    ->Apply(defaults)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
