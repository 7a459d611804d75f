// Text generation with a CausalLM (or anything with its forward/step/new_cache interface):
// each prompt is prefilled on its own (the chunk form beyond 64 tokens), then all unfinished
// sequences decode together, one step per token, their projections batched. Every sequence
// owns its cache and its sampler (seeded alike), so a batch generates exactly what each
// prompt would alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/lm/sampling.hpp"
#include "linattn/nn/options.hpp"

namespace linattn::lm {

struct GenerationOptions {
  index_t max_new_tokens = 32;        // budget per sequence, including the token after the prompt
  SamplingOptions sampling;           // default: greedy
  std::vector<std::int64_t> stop_ids; // e.g. eos; generated, then the sequence stops
  // > 0: sample among ids [0, sample_vocab) only. Checkpoints often pad the embedding rows past
  // the tokenizer's vocabulary; ids there have no text.
  index_t sample_vocab = 0;
  nn::RunOptions run;
};

struct GenerationStats {
  index_t prompt_tokens = 0;     // prefilled
  index_t decode_tokens = 0;     // produced by single-token steps (the first token comes from prefill)
  double prefill_seconds = 0.0;  // prefill forward passes and their sampling
  double decode_seconds = 0.0;   // decode steps and their sampling
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0; }
};

struct GenerationResult {
  std::vector<std::vector<std::int64_t>> tokens;  // generated ids per prompt (the prompt excluded)
  GenerationStats stats;
};

// Called as soon as a token is chosen: (prompt index, token id).
using TokenCallback = std::function<void(std::size_t, std::int64_t)>;

template <class Model>
GenerationResult generate(const Model& model, const std::vector<std::vector<std::int64_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_token = {}) {
  constexpr const char* where = "linattn::lm::generate";
  using Clock = std::chrono::steady_clock;
  linattn::detail::require(options.max_new_tokens >= 0, where, "max_new_tokens must be >= 0");
  for (std::size_t p = 0; p < prompts.size(); ++p)
    linattn::detail::require(!prompts[p].empty(), where, "prompt " + std::to_string(p) + " is empty");
  const std::size_t B = prompts.size();
  const index_t vocab = model.vocab_size();
  linattn::detail::require(options.sample_vocab >= 0 && options.sample_vocab <= vocab, where,
                           "sample_vocab must be in [0, vocab_size = " + std::to_string(vocab) + "]");
  const auto sampled = static_cast<std::size_t>(options.sample_vocab > 0 ? options.sample_vocab : vocab);
  GenerationResult result;
  result.tokens.resize(B);
  if (options.max_new_tokens == 0) return result;

  std::vector<typename Model::Cache> caches;
  std::vector<Sampler> samplers;
  caches.reserve(B);
  samplers.reserve(B);
  std::vector<bool> done(B, false);
  const auto stops = [&](std::int64_t id) {
    for (std::int64_t s : options.stop_ids)
      if (s == id) return true;
    return false;
  };
  const auto emit = [&](std::size_t b, std::int64_t id) {
    result.tokens[b].push_back(id);
    if (on_token) on_token(b, id);
    if (stops(id) || static_cast<index_t>(result.tokens[b].size()) >= options.max_new_tokens) done[b] = true;
  };

  Array<float, 2> last(Shape<2>{1, vocab});
  for (std::size_t b = 0; b < B; ++b) {
    const auto t0 = Clock::now();
    caches.push_back(model.new_cache());
    samplers.emplace_back(options.sampling);
    model.forward(std::span<const std::int64_t>(prompts[b]), caches.back(), last.view(), options.run);
    const std::int64_t id = samplers.back().sample(std::span<const float>(last.data(), sampled));
    result.stats.prefill_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    result.stats.prompt_tokens += static_cast<index_t>(prompts[b].size());
    emit(b, id);
  }

  std::vector<std::size_t> active;
  std::vector<std::int64_t> ids, chosen;
  std::vector<typename Model::Cache*> cache_ptrs;
  std::vector<float> logits;  // [N, vocab], reused across steps
  for (;;) {
    active.clear();
    for (std::size_t b = 0; b < B; ++b)
      if (!done[b]) active.push_back(b);
    if (active.empty()) break;
    const auto t0 = Clock::now();
    ids.clear();
    cache_ptrs.clear();
    for (std::size_t b : active) {
      ids.push_back(result.tokens[b].back());
      cache_ptrs.push_back(&caches[b]);
    }
    const index_t N = static_cast<index_t>(active.size());
    logits.resize(static_cast<std::size_t>(N * vocab));
    model.step(std::span<const std::int64_t>(ids), std::span<typename Model::Cache* const>(cache_ptrs),
               TensorView<float, 2>(logits.data(), {N, vocab}), options.run);
    chosen.resize(active.size());
    for (std::size_t j = 0; j < active.size(); ++j)
      chosen[j] = samplers[active[j]].sample(
          std::span<const float>(logits.data() + static_cast<index_t>(j) * vocab, sampled));
    result.stats.decode_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    result.stats.decode_tokens += N;
    for (std::size_t j = 0; j < active.size(); ++j) emit(active[j], chosen[j]);
  }
  return result;
}

}  // namespace linattn::lm
