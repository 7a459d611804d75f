// Checks a model against an upstream golden folder (tests/data/GOLDEN-README.md, "Model-level
// folders"): config.json + model.safetensors + golden.safetensors with the reference
// layer_outputs, logits (full forward, long forward), decode_logits and greedy generated_ids.
// Used by the tests and by linattn-conformance (kinds model.gla, model.gsa, model.hgrn_bit).
//
// Tolerances are the README's: GLA/GSA max abs error 1e-3 (logits_long, computed upstream with
// fla's reduced-precision chunk kernels, 5e-3). The MatMul-free LM rounds activations to int8,
// so two correct float32 implementations can differ by one code on a near-tie: its block outputs
// pass when ≥ 99.9 % of elements are within 1e-4, its logits on mean abs ≤ 1e-3 and max ≤ 5e-2.
#pragma once

#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "linattn/models/any.hpp"

namespace linattn::examples {

struct GoldenResult {
  std::string check;   // e.g. "logits[chunk]"
  bool passed = false;
  std::string detail;  // measured errors and the limit
};

namespace detail {

struct Errors {
  double max_abs = 0, mean_abs = 0, frac_within = 1, argmax_agree = 1;
};

// a vs b over rows of width V (argmax agreement per row), frac_within: share of |a−b| ≤ within.
inline Errors errors(const float* a, const float* b, index_t n, index_t V, double within) {
  Errors e;
  double sum = 0;
  index_t ok = 0, rows = 0, agree = 0;
  for (index_t i = 0; i < n; ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (std::isnan(d)) return {INFINITY, INFINITY, 0, 0};
    e.max_abs = std::max(e.max_abs, d);
    sum += d;
    ok += d <= within;
  }
  for (index_t r = 0; V > 0 && r < n / V; ++r, ++rows) {
    const float* ar = a + r * V;
    const float* br = b + r * V;
    agree += std::max_element(ar, ar + V) - ar == std::max_element(br, br + V) - br;
  }
  e.mean_abs = n ? sum / static_cast<double>(n) : 0;
  e.frac_within = n ? static_cast<double>(ok) / static_cast<double>(n) : 1;
  e.argmax_agree = rows ? static_cast<double>(agree) / static_cast<double>(rows) : 1;
  return e;
}

inline std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace detail

inline std::vector<GoldenResult> check_golden_model(const std::filesystem::path& dir, Threads threads = {}) {
  const io::Checkpoint ckpt(dir);
  const io::SafeTensorsFile golden(dir / "golden.safetensors");
  models::LoadOptions load;
  load.threads = threads;
  const models::AnyModel any = models::load_model(ckpt, load);
  const bool ternary_model = std::holds_alternative<models::HGRNBitModel>(any);
  std::vector<GoldenResult> out;

  // Judges a comparison by the model's tolerance class; `loose` is logits_long.
  const auto judge = [&](const std::string& name, const float* got, const float* want, index_t n, index_t V, bool loose,
                         bool block) {
    const detail::Errors e = detail::errors(got, want, n, V, 1e-4);
    GoldenResult r{name, false, ""};
    if (!ternary_model) {
      const double limit = loose ? 5e-3 : 1e-3;
      r.passed = e.max_abs <= limit;
      r.detail = "max_abs=" + detail::fmt(e.max_abs) + " (<= " + detail::fmt(limit) + ")";
    } else if (block) {
      r.passed = e.frac_within >= 0.999;
      r.detail = "within_1e-4=" + detail::fmt(100 * e.frac_within) + "% (>= 99.9%) max_abs=" + detail::fmt(e.max_abs);
    } else {
      const double mean_limit = loose ? 5e-3 : 1e-3, max_limit = loose ? 1e-1 : 5e-2;
      r.passed = e.mean_abs <= mean_limit && e.max_abs <= max_limit && (!loose || e.argmax_agree >= 0.98);
      r.detail = "mean_abs=" + detail::fmt(e.mean_abs) + " (<= " + detail::fmt(mean_limit) + ") max_abs=" +
                 detail::fmt(e.max_abs) + " (<= " + detail::fmt(max_limit) + ")" +
                 (loose ? " argmax_agree=" + detail::fmt(100 * e.argmax_agree) + "% (>= 98%)" : "");
    }
    out.push_back(std::move(r));
  };

  std::visit(
      [&](const auto& model) {
        const index_t V = model.vocab_size(), D = model.hidden_size();
        nn::RunOptions run;
        run.threads = threads;
        // Full forward of every row of an ids tensor [B, T] in one form → logits [B, T, V].
        const auto full = [&](const std::string& ids_key, std::optional<nn::Form> form) {
          const auto ids = golden.read_array<std::int64_t, 2>(ids_key);
          const index_t B = ids.size(0), T = ids.size(1);
          Array<float, 3> logits(Shape<3>{B, T, V});
          nn::RunOptions r = run;
          r.form = form;
          for (index_t b = 0; b < B; ++b) {
            auto cache = model.new_cache();
            model.forward(std::span<const std::int64_t>(ids.data() + b * T, static_cast<std::size_t>(T)), cache,
                          TensorView<float, 2>(logits.view().ptr(b), {T, V}), r);
          }
          return logits;
        };

        // layer_outputs: block i on the golden input of that block.
        if (golden.contains("layer_outputs")) {
          const auto ids = golden.read_array<std::int64_t, 2>("input_ids");
          const index_t B = ids.size(0), T = ids.size(1), L = model.num_layers();
          const auto layers = golden.read_array<float, 4>("layer_outputs", {L, B, T, D});
          for (index_t i = 0; i < L; ++i) {
            Array<float, 3> h(Shape<3>{B, T, D});
            for (index_t b = 0; b < B; ++b) {
              TensorView<float, 2> hb(h.view().ptr(b), {T, D});
              if (i == 0)
                model.embed(std::span<const std::int64_t>(ids.data() + b * T, static_cast<std::size_t>(T)), hb);
              else
                std::copy_n(layers.cview().ptr(i - 1, b), T * D, hb.data());
              auto state = model.blocks()[static_cast<std::size_t>(i)].attn.initial_state();
              model.block_forward(i, hb, state, run);
            }
            judge("layer_outputs[" + std::to_string(i) + "]", h.data(), layers.cview().ptr(i), B * T * D, 0, false, true);
          }
        }
        // logits in each form.
        const auto want = golden.read_array<float, 3>("logits");
        for (const auto& [form, name] : {std::pair{nn::Form::recurrent, "recurrent"}, std::pair{nn::Form::chunk, "chunk"},
                                                 std::pair{nn::Form::fused_chunk, "fused_chunk"}}) {
          const auto got = full("input_ids", form);
          if (got.shape() != want.shape()) throw std::runtime_error("golden logits have shape " + shape_string(want.shape()));
          judge(std::string("logits[") + name + "]", got.data(), want.data(), got.numel(), V, false, false);
        }
        if (golden.contains("logits_long_recurrent")) {
          const auto got = full("long_input_ids", nn::Form::recurrent);
          const auto w = golden.read_array<float, 3>("logits_long_recurrent", got.shape());
          judge("logits_long_recurrent", got.data(), w.data(), got.numel(), V, false, false);
        }
        if (golden.contains("logits_long")) {
          const auto got = full("long_input_ids", std::nullopt);
          const auto w = golden.read_array<float, 3>("logits_long", got.shape());
          judge("logits_long", got.data(), w.data(), got.numel(), V, true, false);
        }
        // decode_logits: prefill the prompt, then feed the golden tokens one step at a time.
        if (golden.contains("prompt_ids") && golden.contains("generated_ids")) {
          const auto prompt = golden.read_array<std::int64_t, 2>("prompt_ids");
          const auto gen = golden.read_array<std::int64_t, 2>("generated_ids");
          const index_t P = prompt.size(0), G = gen.size(1);
          if (gen.size(0) != P) throw std::runtime_error("prompt_ids and generated_ids have different batch sizes");
          if (golden.contains("decode_logits")) {
            // [G, V] for one prompt, [P, G, V] in general.
            const std::vector<float> w = golden.read<float>("decode_logits");
            if (static_cast<index_t>(w.size()) != P * G * V)
              throw std::runtime_error("decode_logits has " + std::to_string(w.size()) + " values, expected " +
                                       std::to_string(P * G * V));
            std::vector<float> got(static_cast<std::size_t>(P * G * V));
            for (index_t p = 0; p < P; ++p) {
              auto cache = model.new_cache();
              const std::span<const std::int64_t> ids(prompt.data() + p * prompt.size(1), static_cast<std::size_t>(prompt.size(1)));
              model.forward(ids, cache, TensorView<float, 2>(got.data() + p * G * V, {1, V}), run);
              for (index_t j = 1; j < G; ++j) {
                const std::int64_t id = gen(p, j - 1);
                auto* c = &cache;
                model.step(std::span<const std::int64_t>(&id, 1), std::span<decltype(c) const>(&c, 1),
                           TensorView<float, 2>(got.data() + (p * G + j) * V, {1, V}), run);
              }
            }
            judge("decode_logits", got.data(), w.data(), P * G * V, V, false, false);
          }
          // Greedy generation, all prompts as one batch.
          std::vector<std::vector<std::int64_t>> prompts;
          for (index_t p = 0; p < P; ++p)
            prompts.emplace_back(prompt.data() + p * prompt.size(1), prompt.data() + (p + 1) * prompt.size(1));
          lm::GenerationOptions opt;
          opt.max_new_tokens = G;
          opt.run = run;
          const auto result = lm::generate(model, prompts, opt);
          index_t same = 0;
          for (index_t p = 0; p < P; ++p)
            for (index_t j = 0; j < G && j < static_cast<index_t>(result.tokens[p].size()); ++j) same += result.tokens[p][j] == gen(p, j);
          out.push_back({"generated_ids", same == P * G, std::to_string(same) + "/" + std::to_string(P * G) + " tokens equal"});
        }
      },
      any);
  return out;
}

}  // namespace linattn::examples
