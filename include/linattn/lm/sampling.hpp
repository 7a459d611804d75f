// Next-token sampling from a row of logits: greedy, temperature, top-k and top-p (nucleus).
//
// The filters compose in the order Hugging Face `generate` applies its logits processors:
// temperature scales the logits, top-k keeps the k largest, top-p then keeps the smallest set of
// the remaining tokens (by decreasing probability, renormalised over what top-k kept) whose total
// probability is >= top_p, and one token is drawn from what is left. Ties are broken by the
// lower token id everywhere (argmax, the top-k boundary, the nucleus boundary), so results do not
// depend on the standard library's sort. (HF's top-k keeps every token tied with the k-th logit;
// here exactly k are kept. The two differ only on exact ties at the boundary.)
//
// The random numbers come from our own xoshiro256** (seeded through splitmix64), not from
// <random>'s distributions, whose output is implementation-defined: the same seed gives the same
// tokens with libstdc++, libc++ and MSVC.
//
// Error policy: bad options -> std::invalid_argument from the constructor naming the option; bad
// logits (empty, NaN, +inf, no finite value) -> std::invalid_argument from sample(). A logit of
// -inf is accepted and means "never pick this token" (that is how HF's own processors mask
// tokens), as long as at least one logit is finite.
#pragma once

#include <algorithm>
#include <bit>
#include <functional>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "linattn/core/random.hpp"

namespace linattn::lm {

struct SamplingOptions {
  float temperature = 0;  // 0 = greedy (argmax); otherwise softmax(logits / temperature)
  int top_k = 0;          // 0 = off; keep only the top_k most likely tokens
  float top_p = 1;        // 1 = off; nucleus: smallest set with total probability >= top_p
  std::uint64_t seed = 0;
};


class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : opt_(options), rng_(options.seed) {
    // Written as !(ok) so that NaN fails every check.
    if (!(opt_.temperature >= 0) || !std::isfinite(opt_.temperature))
      bad("temperature", std::to_string(opt_.temperature) + " (must be finite and >= 0; 0 = greedy)");
    if (opt_.top_k < 0) bad("top_k", std::to_string(opt_.top_k) + " (must be >= 0; 0 = off)");
    if (!(opt_.top_p > 0 && opt_.top_p <= 1))
      bad("top_p", std::to_string(opt_.top_p) + " (must be in (0, 1]; 1 = off)");
  }

  const SamplingOptions& options() const { return opt_; }
  bool greedy() const { return opt_.temperature == 0 || opt_.top_k == 1; }

  // One token id in [0, logits.size()). Greedy calls draw no random number; sampling calls
  // draw exactly one, so a seed fixes the whole sequence of choices.
  std::int64_t sample(std::span<const float> logits) {
    const std::size_t n = logits.size();
    if (n == 0) bad("logits", "empty (vocabulary size 0)");
    if (n > std::numeric_limits<std::uint32_t>::max()) bad("logits", std::to_string(n) + " entries (ids are 32-bit)");
    float max_logit = -std::numeric_limits<float>::infinity();
    std::size_t argmax = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float l = logits[i];
      if (std::isnan(l) || l == std::numeric_limits<float>::infinity())
        bad("logits", "element " + std::to_string(i) + " is " + std::to_string(l) + " (NaN and +inf are invalid)");
      if (l > max_logit) {  // strict: the lowest index wins ties
        max_logit = l;
        argmax = i;
      }
    }
    if (max_logit == -std::numeric_limits<float>::infinity()) bad("logits", "every element is -inf");
    if (greedy()) return static_cast<std::int64_t>(argmax);

    // Unnormalised probabilities w_i = exp((l_i - max) / T) in double: w_argmax = 1, no overflow,
    // and underflow to 0 only for tokens that are e^-700 less likely than the best one.
    const double inv_t = 1.0 / static_cast<double>(opt_.temperature);
    auto weight = [&](std::size_t i) {
      return std::exp((static_cast<double>(logits[i]) - static_cast<double>(max_logit)) * inv_t);
    };
    const bool use_k = opt_.top_k > 0 && static_cast<std::size_t>(opt_.top_k) < n;
    const bool use_p = opt_.top_p < 1;

    if (!use_k && !use_p) {  // plain softmax sampling: one pass, no sorting
      weights_.resize(n);
      double total = 0;
      for (std::size_t i = 0; i < n; ++i) total += (weights_[i] = weight(i));
      return static_cast<std::int64_t>(draw(weights_.data(), n, total, nullptr));
    }

    // Candidates by decreasing logit, the lower id first among equal logits. Each candidate is
    // one 64-bit key (order-preserving logit bits above, inverted id below), so selection and
    // sorting compare plain integers (top_k 40 at vocab 32000: 0.11 ms instead of 0.22 ms
    // with an indirect comparator).
    keys_.resize(n);
    for (std::size_t i = 0; i < n; ++i) keys_[i] = (ordered_bits(logits[i]) << 32) | (0xFFFFFFFFull - i);
    const auto sort_prefix = [&](std::size_t m) {
      if (m < n) std::nth_element(keys_.begin(), keys_.begin() + static_cast<std::ptrdiff_t>(m), keys_.end(), std::greater<>());
      std::sort(keys_.begin(), keys_.begin() + static_cast<std::ptrdiff_t>(m), std::greater<>());
      order_.resize(m);
      for (std::size_t r = 0; r < m; ++r) order_[r] = static_cast<std::uint32_t>(0xFFFFFFFFull - (keys_[r] & 0xFFFFFFFFull));
    };
    // Only a prefix of the order is ever sorted: nth_element is O(n), and the nucleus of a
    // trained LM is usually a few dozen tokens out of 32000.
    std::size_t keep;
    double norm = 0;  // the mass top-p is measured against: all of top-k's set, or the whole vocabulary
    if (use_k) {
      keep = static_cast<std::size_t>(opt_.top_k);
      sort_prefix(keep);
      weights_.resize(keep);
      for (std::size_t r = 0; r < keep; ++r) norm += (weights_[r] = weight(order_[r]));
    } else {
      // Top-p alone: the total needs every weight (one exp pass), then the sorted prefix grows
      // fourfold until it holds top_p of the mass, so the usual small nucleus costs a few O(n)
      // selections instead of a full O(n log n) sort.
      by_id_.resize(n);
      for (std::size_t i = 0; i < n; ++i) norm += (by_id_[i] = weight(i));
      const double target = static_cast<double>(opt_.top_p) * norm;
      keep = std::min<std::size_t>(n, 64);
      for (;;) {
        sort_prefix(keep);
        double mass = 0;
        for (std::size_t r = 0; r < keep; ++r) mass += by_id_[order_[r]];
        if (keep == n || mass >= target) break;  // the nucleus lies inside the sorted prefix
        keep = std::min(n, 4 * keep);
      }
      weights_.resize(keep);
      for (std::size_t r = 0; r < keep; ++r) weights_[r] = by_id_[order_[r]];
    }
    double total = norm;
    if (use_p) {
      // HF's TopPLogitsWarper drops a token when the probability of everything ranked above it
      // already reaches top_p (renormalised over what top-k kept); the best token always stays.
      const double target = static_cast<double>(opt_.top_p) * norm;
      double above = 0;
      std::size_t r = 0;
      while (r < keep && (r == 0 || above < target)) above += weights_[r++];
      keep = r;
      total = above;
    }
    return static_cast<std::int64_t>(draw(weights_.data(), keep, total, order_.data()));
  }

 private:
  [[noreturn]] static void bad(const char* option, const std::string& what) {
    throw std::invalid_argument(std::string("linattn::lm::Sampler: ") + option + " = " + what);
  }

  // Maps a float to an unsigned integer with the same order (-0 and +0 alike, NaN excluded earlier).
  static std::uint64_t ordered_bits(float f) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f + 0.0f);  // + 0.0f turns -0 into +0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  }

  // Inverse-CDF draw over w[0..m); `ids` maps positions to token ids (null: identity).
  std::size_t draw(const double* w, std::size_t m, double total, const std::uint32_t* ids) {
    const double u = rng_.uniform() * total;
    double acc = 0;
    std::size_t last_positive = 0;
    for (std::size_t r = 0; r < m; ++r) {
      if (w[r] <= 0) continue;  // a -inf logit (or an underflowed weight) is never chosen
      last_positive = r;
      acc += w[r];
      if (u < acc) return ids ? ids[r] : r;
    }
    // u < total = sum(w) mathematically, but the running sum can round below it at the very end.
    return ids ? ids[last_positive] : last_positive;
  }

  SamplingOptions opt_;
  Xoshiro256ss rng_;
  std::vector<double> weights_;       // scratch, kept to avoid a 32000-element allocation per token
  std::vector<std::uint32_t> order_;  // scratch: candidate ids by decreasing logit
  std::vector<std::uint64_t> keys_;   // scratch: sort keys, see sample()
  std::vector<double> by_id_;         // scratch: weights indexed by token id (top-p without top-k)
};

}  // namespace linattn::lm
