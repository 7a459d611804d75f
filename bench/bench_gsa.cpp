// Gated slot attention: prefill (recurrent and chunk forms) and decode (step), M = 64 slots.
//
//   BM_GSA_Recurrent/K:k/T:t/threads:n   B=1, H=4, K=V=k, M=64, T=t tokens
//   BM_GSA_FusedChunk/K:k/T:t/threads:n  same, fused chunk form (state in registers)
//   BM_GSA_Chunk/K:k/T:t/threads:n       same, chunk form (chunk_size 64)
//   BM_GSA_ChunkGQA/K:k/T:t, BM_GSA_FusedChunkGQA/K:k/T:t  the same 4 query heads on one kv head
//   BM_GSA_Step/K:k/threads:n            one decode token, state (K+V)·M per head
//   BM_GSA_ChunkTrainStep/K:k/T:t/threads:n  chunk forward + chunk backward (do, dht given)
//   BM_GSA_ChunkBackward/K:k/T:t/threads:n   the chunk backward alone
//
// Backward counters: "GFLOPS" = 8·M·(K+V)·T·H·B for a backward, 12·M·(K+V)·T·H·B for forward +
// backward (the GLA accounting applied to both passes).
// Counters: "tokens/s"; "GFLOPS" = 4·M·(K+V)·T·H·B per iteration (recurrent-equivalent flops of
// both passes); "state_GB/s" = 2·4·H·(K+V)·M bytes per step. Inputs as the GSA layer makes them
// (SPEC §5.2): f = logsigmoid(N(0,1))/8, s = 1 − e^f, g = f; the layer's scale 1.0.
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>
#include <span>

#include "common.hpp"
#include "linattn/ops/gsa.hpp"

namespace {

using namespace linattn_bench;
using linattn::Array;
using linattn::index_t;
using linattn::Shape;

constexpr index_t kB = 1, kH = 4, kM = 64;

template <std::size_t R>
std::span<float> span_of(Array<float, R>& a) {
  return {a.data(), static_cast<std::size_t>(a.numel())};
}

struct GsaInputs {
  index_t K = 0, T = 0;
  Array<float, 4> q, k, v, s, g;
};

void fill(GsaInputs& in, std::mt19937_64& rng) {
  fill_normal(span_of(in.q), rng);
  fill_normal(span_of(in.k), rng);
  fill_normal(span_of(in.v), rng);
  fill_gla_gates(span_of(in.g), rng, 8.0);
  for (index_t i = 0; i < in.g.numel(); ++i) in.s.data()[i] = 1.0f - std::exp(in.g.data()[i]);
}

const GsaInputs& inputs(index_t K, index_t T) {
  static std::unique_ptr<GsaInputs> cache;  // kept across calls: filling costs more than the kernel
  if (!cache || cache->K != K || cache->T != T) {
    cache.reset();
    auto in = std::make_unique<GsaInputs>();
    in->K = K;
    in->T = T;
    in->q = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->k = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->v = Array<float, 4>(Shape<4>{kB, T, kH, K});
    in->s = Array<float, 4>(Shape<4>{kB, T, kH, kM});
    in->g = Array<float, 4>(Shape<4>{kB, T, kH, kM});
    std::mt19937_64 rng(kSeed);
    fill(*in, rng);
    cache = std::move(in);
  }
  return *cache;
}

template <int Form>  // 0 recurrent, 1 chunk, 2 fused_chunk
void BM_GSA_Prefill(benchmark::State& state) {
  const index_t K = state.range(0), V = K, T = state.range(1);
  const GsaInputs& in = inputs(K, T);
  Array<float, 4> o(Shape<4>{kB, T, kH, V});
  linattn::gsa::State<float> final_state(kB, kH, K, kM, V);
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  opt.threads = linattn::Threads{static_cast<int>(state.range(2))};
  for (auto _ : state) {
    if constexpr (Form == 2)
      linattn::gsa::fused_chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.g.view(), o.view(),
                                       nullptr, &final_state, opt);
    else if constexpr (Form == 1)
      linattn::gsa::chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.g.view(), o.view(), nullptr,
                                 &final_state, opt);
    else
      linattn::gsa::recurrent<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.g.view(), o.view(),
                                     nullptr, &final_state, opt);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  const double tokens = static_cast<double>(kB * T);
  state.counters["tokens/s"] = per_iteration_rate(tokens);
  state.counters["GFLOPS"] = giga_rate(4.0 * static_cast<double>(kM * (K + V) * kH) * tokens);
}

void BM_GSA_Recurrent(benchmark::State& state) { BM_GSA_Prefill<0>(state); }
void BM_GSA_Chunk(benchmark::State& state) { BM_GSA_Prefill<1>(state); }
void BM_GSA_FusedChunk(benchmark::State& state) { BM_GSA_Prefill<2>(state); }

void prefill_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "T", "threads"})->ArgsProduct({{64, 128}, {512, 2048, 8192}, {1, 2}});
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_GSA_Recurrent)->Apply(prefill_args);
BENCHMARK(BM_GSA_Chunk)->Apply(prefill_args);
BENCHMARK(BM_GSA_FusedChunk)->Apply(prefill_args);

// Grouped queries: the 4 query heads of the inputs read one kv head (head 0 of k, v, s, g, as a
// strided view). Beside BM_GSA_* at the same K and T (4 query heads on 4 kv heads), the time
// of the same outputs with one state to advance instead of four: the chunk form advances each
// kv state once for its G readers; the recurrent and fused kernels advance it once per reader
// (output and update share one pass over the state tiles). One kv head is one work item: 1 thread.
template <int Form>
void BM_GSA_PrefillGQA(benchmark::State& state) {
  const index_t K = state.range(0), V = K, T = state.range(1);
  const GsaInputs& in = inputs(K, T);
  const auto head0 = [](const Array<float, 4>& a) {
    const auto v = a.view();
    return linattn::TensorView<const float, 4>(a.data(), {v.size(0), v.size(1), 1, v.size(3)},
                                               {v.stride(0), v.stride(1), v.stride(2), v.stride(3)});
  };
  Array<float, 4> o(Shape<4>{kB, T, kH, V});
  linattn::gsa::State<float> final_state(kB, 1, K, kM, V);
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  for (auto _ : state) {
    if constexpr (Form == 2)
      linattn::gsa::fused_chunk<float>(in.q.view(), head0(in.k), head0(in.v), head0(in.s), head0(in.g), o.view(),
                                       nullptr, &final_state, opt);
    else
      linattn::gsa::chunk<float>(in.q.view(), head0(in.k), head0(in.v), head0(in.s), head0(in.g), o.view(), nullptr,
                                 &final_state, opt);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(kB * T));
}
void BM_GSA_ChunkGQA(benchmark::State& state) { BM_GSA_PrefillGQA<1>(state); }
void BM_GSA_FusedChunkGQA(benchmark::State& state) { BM_GSA_PrefillGQA<2>(state); }
void gqa_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "T"})->ArgsProduct({{64, 128}, {2048, 8192}});
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_GSA_ChunkGQA)->Apply(gqa_args);
BENCHMARK(BM_GSA_FusedChunkGQA)->Apply(gqa_args);

template <bool WithForward>
void BM_GSA_Train(benchmark::State& state) {
  const index_t K = state.range(0), V = K, T = state.range(1);
  const GsaInputs& in = inputs(K, T);
  Array<float, 4> o(Shape<4>{kB, T, kH, V}), dout(Shape<4>{kB, T, kH, V});
  Array<float, 4> dq(in.q.shape()), dk(in.k.shape()), dv(in.v.shape()), ds(in.s.shape()), dg(in.g.shape());
  std::mt19937_64 rng(kSeed + 1);
  fill_normal(span_of(dout), rng);
  linattn::gsa::State<float> final_state(kB, kH, K, kM, V), dh0;
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  opt.threads = linattn::Threads{static_cast<int>(state.range(2))};
  const linattn::gsa::Gradients<float> grads{dq.view(), dk.view(), dv.view(), ds.view(), dg.view(), &dh0};
  for (auto _ : state) {
    if constexpr (WithForward)
      linattn::gsa::chunk<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.g.view(), o.view(), nullptr,
                                 &final_state, opt);
    linattn::gsa::chunk_backward<float>(in.q.view(), in.k.view(), in.v.view(), in.s.view(), in.g.view(), dout.view(),
                                        nullptr, &final_state, grads, opt);
    benchmark::DoNotOptimize(dq.data());
    benchmark::ClobberMemory();
  }
  const double tokens = static_cast<double>(kB * T);
  state.counters["tokens/s"] = per_iteration_rate(tokens);
  state.counters["GFLOPS"] = giga_rate((WithForward ? 12.0 : 8.0) * static_cast<double>(kM * (K + V) * kH) * tokens);
}
void BM_GSA_ChunkBackward(benchmark::State& state) { BM_GSA_Train<false>(state); }
void BM_GSA_ChunkTrainStep(benchmark::State& state) { BM_GSA_Train<true>(state); }

void train_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "T", "threads"})->ArgsProduct({{64, 128}, {2048, 8192}, {1, 2}});
  defaults(b);
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_GSA_ChunkBackward)->Apply(train_args);
BENCHMARK(BM_GSA_ChunkTrainStep)->Apply(train_args);

void BM_GSA_Step(benchmark::State& state) {
  const index_t K = state.range(0), V = K;
  GsaInputs in;
  in.q = Array<float, 4>(Shape<4>{kB, 1, kH, K});
  in.k = Array<float, 4>(Shape<4>{kB, 1, kH, K});
  in.v = Array<float, 4>(Shape<4>{kB, 1, kH, V});
  in.s = Array<float, 4>(Shape<4>{kB, 1, kH, kM});
  in.g = Array<float, 4>(Shape<4>{kB, 1, kH, kM});
  std::mt19937_64 rng(kSeed);
  fill(in, rng);
  linattn::gsa::State<float> S(kB, kH, K, kM, V);
  fill_normal(std::span<float>(S.hk.data(), static_cast<std::size_t>(S.hk.view().numel())), rng);
  fill_normal(std::span<float>(S.hv.data(), static_cast<std::size_t>(S.hv.view().numel())), rng);
  Array<float, 3> o(Shape<3>{kB, kH, V});
  auto token = [](const Array<float, 4>& a) {
    return linattn::TensorView<const float, 3>(a.data(), {kB, kH, a.size(3)});
  };
  linattn::gsa::StepOptions opt;
  opt.scale = 1.0;
  opt.threads = linattn::Threads{static_cast<int>(state.range(1))};
  for (auto _ : state) {
    linattn::gsa::step<float>(token(in.q), token(in.k), token(in.v), token(in.s), token(in.g), o.view(), S, opt);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  const double bytes = sizeof(float) * static_cast<double>(kB * kH * (K + V) * kM);
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(kB));
  state.counters["state_GB/s"] = giga_rate(2.0 * bytes);
  state.counters["state_bytes"] = bytes;
}
BENCHMARK(BM_GSA_Step)
    ->ArgNames({"K", "threads"})
    ->ArgsProduct({{64, 128}, {1, 2}})
    ->Apply(defaults)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
