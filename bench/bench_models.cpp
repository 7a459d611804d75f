// Whole-model benchmarks (issue: full models): prefill and decode tokens/s of the GLA, GSA and
// MatMul-free LM checkpoints found under $LINATTN_BENCH_MODELS (bench/models.sh makes them with
// linattn-make-checkpoint), next to the two bounds they are judged against, measured in the same
// run with the same thread count:
//   BM_StreamRead/threads:n        read bandwidth of a 1 GiB buffer (the decode bound: weight bytes/token)
//   BM_ProjectionGemm/T:t/threads:n  the model's own projection GEMM shape through nn::Linear (the
//                                  prefill bound: 2·parameters FLOPs per token)
//   BM_Prefill/<model>/prompt:p/threads:n   one forward over a prompt (logits of the last position only)
//   BM_Decode/<model>/threads:n             one decode step after a 16-token prompt
// Environment: LINATTN_BENCH_THREADS, a comma-separated list of thread counts (default 2; each
// benchmark runs once per count, bounds included, the model loaded once); LINATTN_BENCH_PROMPT,
// the prefill prompt length (default 512 for MatMul-free models, 2048 for GLA/GSA);
// LINATTN_BENCH_PREFILL=0 skips prefill, LINATTN_BENCH_DENSE=0 the ":dense" reference runs,
// LINATTN_BENCH_FORM=recurrent|chunk forces the prefill form (default: the layers' automatic choice).
// <model> is the checkpoint folder name; MatMul-free models run twice: integer kernels and
// ":dense" (the float reference path with dequantised fp32 weights).
// Counters: tokens/s; weight_MB (bytes a decode step reads: block weights + lm_head);
// GFLOP_per_token (2 · block and lm_head parameters). bench/summarize_models.py turns them into ratios.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "stream_read.hpp"
#include "linattn/models/any.hpp"

namespace {

using namespace linattn;
using namespace linattn_bench;

// LINATTN_BENCH_THREADS; default {2}, the full-models issue's setting.
std::vector<int> thread_counts() {
  std::vector<int> counts = thread_list_from_env();
  if (counts.empty()) counts.push_back(2);
  return counts;
}

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) != "0" : fallback;
}

struct Loaded {
  std::unique_ptr<io::Checkpoint> ckpt;
  models::AnyModel model;
};

Loaded& model_for(const std::filesystem::path& dir, bool dense) {
  static std::map<std::string, Loaded> cache;
  const std::string key = dir.string() + (dense ? ":dense" : "");
  auto it = cache.find(key);
  if (it == cache.end()) {
    cache.clear();  // one model resident at a time
    Loaded l;
    l.ckpt = std::make_unique<io::Checkpoint>(dir);
    models::LoadOptions opt;
    opt.threads = Threads{0};  // loading only: each run below passes its own count
    opt.dense_reference = dense;
    l.model = models::load_model(*l.ckpt, opt);
    it = cache.emplace(key, std::move(l)).first;
  }
  return it->second;
}

// LINATTN_BENCH_FORM: the prefill form, auto (default), recurrent or chunk.
std::optional<nn::Form> form_from_env() {
  const char* v = std::getenv("LINATTN_BENCH_FORM");
  const std::string f = v ? v : "auto";
  return f == "recurrent" ? nn::Form::recurrent : f == "chunk" ? nn::Form::chunk : std::optional<nn::Form>{};
}

nn::RunOptions run_options(bool dense, int threads) {
  nn::RunOptions run;
  run.form = form_from_env();
  run.threads = Threads{threads};
  run.arithmetic = dense ? nn::Arithmetic::reference : nn::Arithmetic::integer;
  return run;
}

// Bytes one decode step reads (block weights and head) and FLOPs per token of the matrix work
// (2 per weight). Dense layers hold 4 bytes a weight; packed 2-bit ternary ones 1/4 byte, and
// their dense float copies (":dense", the reference path) 16× that.
template <class Model>
void model_counters(benchmark::State& state, const Model& m, bool dense) {
  double bytes = static_cast<double>(m.head().weight_bytes());
  for (const auto& b : m.blocks()) bytes += static_cast<double>(b.attn.weight_bytes() + b.mlp.weight_bytes());
  constexpr bool ternary = std::is_same_v<Model, models::HGRNBitModel>;
  const double params = ternary ? 4.0 * bytes : bytes / 4.0;
  if (ternary && dense) bytes *= 16.0;
  state.counters["weight_MB"] = bytes / 1e6;
  state.counters["GFLOP_per_token"] = 2.0 * params / 1e9;
}

void BM_Prefill(benchmark::State& state, std::filesystem::path dir, bool dense, index_t prompt, int threads) {
  Loaded& l = model_for(dir, dense);
  const nn::RunOptions run = run_options(dense, threads);
  std::visit(
      [&](const auto& m) {
        std::vector<std::int64_t> ids(static_cast<std::size_t>(prompt));
        for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>((i * 7919 + 13) % m.vocab_size());
        Array<float, 2> logits(Shape<2>{1, m.vocab_size()});
        for (auto _ : state) {
          auto cache = m.new_cache();
          m.forward(std::span<const std::int64_t>(ids), cache, logits.view(), run);
          benchmark::DoNotOptimize(logits.data());
        }
        model_counters(state, m, dense);
      },
      l.model);
  state.counters["tokens/s"] = per_iteration_rate(static_cast<double>(prompt));
}

void BM_Decode(benchmark::State& state, std::filesystem::path dir, bool dense, int threads) {
  Loaded& l = model_for(dir, dense);
  const nn::RunOptions run = run_options(dense, threads);
  std::visit(
      [&](const auto& m) {
        std::vector<std::int64_t> prompt(16, 1);
        auto cache = m.new_cache();
        Array<float, 2> logits(Shape<2>{1, m.vocab_size()});
        m.forward(std::span<const std::int64_t>(prompt), cache, logits.view(), run);
        std::int64_t id = 5;
        auto* c = &cache;
        for (auto _ : state) {
          m.step(std::span<const std::int64_t>(&id, 1), std::span<decltype(c) const>(&c, 1), logits.view(), run);
          id = (id * 31 + 7) % m.vocab_size();
        }
        model_counters(state, m, dense);
      },
      l.model);
  state.counters["tokens/s"] = per_iteration_rate(1.0);
}

// The decode bound: a 1 GiB streaming read on `threads` threads (stream_read.hpp).
void BM_StreamRead(benchmark::State& state, int threads) { stream_read_1gib(state, threads); }

// [T, 1024] · [2816, 1024]ᵀ through nn::Linear on `threads` threads: the MLP projection of the
// 340M-class models, the attainable GEMM rate for their prefill.
void BM_ProjectionGemm(benchmark::State& state, int threads) {
  const index_t T = state.range(0), in = 1024, out = 2816;
  Array<float, 2> w(Shape<2>{out, in}), x(Shape<2>{T, in}), y(Shape<2>{T, out});
  std::mt19937_64 rng(kSeed);
  fill_normal(std::span<float>(w.vector()), rng);
  fill_normal(std::span<float>(x.vector()), rng);
  const nn::Linear lin = nn::Linear::from_array(w);
  for (auto _ : state) {
    lin.forward(x.cview(), y.view(), Threads{threads});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] = giga_rate(2.0 * static_cast<double>(T * in * out));
}

void register_bounds(int threads) {
  const std::string t = "/threads:" + std::to_string(threads);
  benchmark::RegisterBenchmark(("BM_StreamRead" + t).c_str(), BM_StreamRead, threads)
      ->Apply(defaults)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(20);
  benchmark::RegisterBenchmark(("BM_ProjectionGemm/T:2048" + t).c_str(), BM_ProjectionGemm, threads)
      ->Arg(2048)
      ->Apply(defaults)
      ->Unit(benchmark::kMillisecond);
}

void register_models() {
  const auto counts = thread_counts();
  for (int t : counts) register_bounds(t);  // first: the bounds of every thread count the runs use
  const char* root = std::getenv("LINATTN_BENCH_MODELS");
  if (!root) return;
  std::vector<std::filesystem::path> dirs;
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (std::filesystem::exists(e.path() / "config.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const auto type = io::Checkpoint(dir).require<std::string>("model_type");
    const std::string name = dir.filename().string();
    const bool ternary = type == "hgrn_bit";
    const char* prompt_env = std::getenv("LINATTN_BENCH_PROMPT");
    const index_t prompt = prompt_env ? std::max(1, std::atoi(prompt_env)) : ternary ? 512 : 2048;
    const bool with_dense = ternary && env_flag("LINATTN_BENCH_DENSE", true);
    for (bool dense : with_dense ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
      const std::string label = name + (dense ? ":dense" : "");
      // Every thread count of one model back to back: one load per model.
      for (int t : counts) {
        const std::string threads = "/threads:" + std::to_string(t);
        if (env_flag("LINATTN_BENCH_PREFILL", true))
          benchmark::RegisterBenchmark(("BM_Prefill/" + label + "/prompt:" + std::to_string(prompt) + threads).c_str(),
                                       BM_Prefill, dir, dense, prompt, t)
              ->Apply(defaults)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1);
        benchmark::RegisterBenchmark(("BM_Decode/" + label + threads).c_str(), BM_Decode, dir, dense, t)
            ->Apply(defaults)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(2.0);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_models();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
