// Ternary quantisers (SPEC §5.5): rounding modes and their ties, RMSNorm, per-token absmax int8
// activations, absmean ternary weights, and the non-idempotence of re-quantising.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "linattn/ops/ternary.hpp"

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
namespace ternary = linattn::ternary;
using Catch::Matchers::Contains;

TEST_CASE("named constants carry upstream's values", "[ternary]") {
  STATIC_REQUIRE(ternary::kFusedBitLinearEps == 1e-6f);
  STATIC_REQUIRE(ternary::kUnfusedBitLinearEps == 1e-8f);
  STATIC_REQUIRE(ternary::kActivationAbsMaxFloor == 1e-5f);
  STATIC_REQUIRE(ternary::kWeightAbsMeanFloor == 1e-5f);
}

TEST_CASE("rounding: half away from zero vs half to even, ties", "[ternary]") {
  struct Tie {
    float v, away, even;
  };
  const Tie ties[] = {{0.5f, 1, 0},   {-0.5f, -1, -0.0f}, {1.5f, 2, 2},     {-1.5f, -2, -2},   {2.5f, 3, 2},
                      {-2.5f, -3, -2}, {3.5f, 4, 4},      {126.5f, 127, 126}, {-127.5f, -128, -128}};
  for (const auto& t : ties) {
    CAPTURE(t.v);
    CHECK(ternary::round_half_away_from_zero(t.v) == t.away);
    CHECK(ternary::round_half_to_even(t.v) == t.even);
  }
  // Just below a tie: both round down in magnitude (the classic v + 0.5 bug would give 1).
  const float below = std::nextafter(0.5f, 0.0f);
  CHECK(ternary::round_half_away_from_zero(below) == 0.0f);
  CHECK(ternary::round_half_to_even(below) == 0.0f);
  CHECK(ternary::round_half_away_from_zero(-2.4999998f) == -2.0f);
  CHECK(ternary::round_half_away_from_zero(1e10f) == 1e10f);
  CHECK(std::isnan(ternary::round_half_to_even(NAN)));
}

TEST_CASE("activation quantisation: s_x = 127/max|x|, ties away from zero in the fused path", "[ternary]") {
  // max |x| = 127 gives s_x = 1 exactly, so x·s_x hits .5 ties exactly.
  const std::vector<float> row{127.0f, 0.5f, -0.5f, 2.5f, -2.5f, 1.5f, -126.5f, 0.49999997f};
  const Array<float, 2> x(Shape<2>{1, 8}, row);
  Array<std::int8_t, 2> codes(Shape<2>{1, 8});
  std::vector<float> s(1);
  ternary::quantize_activations(x.cview(), codes.view(), s);
  CHECK(s[0] == 1.0f);
  CHECK(codes.vector() == std::vector<std::int8_t>{127, 1, -1, 3, -3, 2, -127, 0});
  ternary::quantize_activations(x.cview(), codes.view(), s, ternary::Rounding::half_to_even);
  CHECK(codes.vector() == std::vector<std::int8_t>{127, 0, 0, 2, -2, 2, -126, 0});
}

TEST_CASE("activation quantisation equals clamp(round(x·s)) from the named rounding functions", "[ternary]") {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const index_t N = 6, D = 777;
  Array<float, 2> x(Shape<2>{N, D});
  for (auto& v : x.vector()) v = normal(rng);
  for (index_t j = 0; j < D; j += 7) x(2, j) = 0.5f * static_cast<float>(j % 255 - 127);  // ties, max 127 → s = 1
  x(2, 1) = 127.0f;
  for (index_t j = 0; j < D; ++j) x(4, j) = 1e-7f * static_cast<float>(j % 3 - 1);  // below the 1e-5 floor
  Array<std::int8_t, 2> codes(Shape<2>{N, D});
  std::vector<float> s(N);
  for (const auto rounding : {ternary::Rounding::half_away_from_zero, ternary::Rounding::half_to_even}) {
    ternary::quantize_activations(x.cview(), codes.view(), s, rounding);
    for (index_t n = 0; n < N; ++n) {
      float m = 0;
      for (index_t j = 0; j < D; ++j) m = std::max(m, std::fabs(x(n, j)));
      const float want_s = 127.0f / std::max(m, 1e-5f);
      REQUIRE(s[n] == want_s);
      for (index_t j = 0; j < D; ++j) {
        const float r = ternary::round_with(rounding, x(n, j) * want_s);
        REQUIRE(codes(n, j) == static_cast<std::int8_t>(std::clamp(r, -128.0f, 127.0f)));
      }
    }
  }
  CHECK(s[4] == 127.0f / 1e-5f);  // the floor
  CHECK(codes(4, 0) == -1);       // 1e-7 · 1.27e7 = 1.27
}

TEST_CASE("activation quantisation rejects NaN and infinity", "[ternary]") {
  Array<float, 2> x(Shape<2>{2, 5});
  Array<std::int8_t, 2> codes(Shape<2>{2, 5});
  std::vector<float> s(2);
  x(1, 3) = NAN;
  CHECK_THROWS_WITH(ternary::quantize_activations(x.cview(), codes.view(), s), Contains("non-finite"));
  x(1, 3) = -INFINITY;
  CHECK_THROWS_AS(ternary::quantize_activations(x.cview(), codes.view(), s), std::invalid_argument);
  std::vector<float> wrong(3);
  x(1, 3) = 0;
  CHECK_THROWS_WITH(ternary::quantize_activations(x.cview(), codes.view(), wrong), Contains("scale"));
}

TEST_CASE("rms_norm with weight against long double, both eps", "[ternary]") {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const index_t N = 3, D = 300;
  Array<float, 2> x(Shape<2>{N, D}), y(Shape<2>{N, D});
  std::vector<float> w(D);
  for (auto& v : x.vector()) v = normal(rng);
  for (auto& v : w) v = 1.0f + 0.1f * normal(rng);
  for (index_t j = 0; j < D; ++j) x(2, j) *= 1e-4f;  // small row: eps matters
  for (const float eps : {ternary::kFusedBitLinearEps, ternary::kUnfusedBitLinearEps}) {
    ternary::rms_norm(x.cview(), w, eps, y.view());
    for (index_t n = 0; n < N; ++n) {
      long double ss = 0;
      for (index_t j = 0; j < D; ++j) ss += (long double)x(n, j) * x(n, j);
      const long double rstd = 1.0L / std::sqrt(ss / D + eps);
      for (index_t j = 0; j < D; ++j) REQUIRE(std::abs(y(n, j) - (double)(x(n, j) * rstd * w[j])) <= 1e-6 * std::abs(y(n, j)) + 1e-30);
    }
  }
  // eps is not cosmetic: the small row differs between 1e-6 and 1e-8.
  Array<float, 2> y8(Shape<2>{N, D});
  ternary::rms_norm(x.cview(), w, 1e-6f, y.view());
  ternary::rms_norm(x.cview(), w, 1e-8f, y8.view());
  CHECK(std::abs(y(2, 0) - y8(2, 0)) > 1e-3 * std::abs(y8(2, 0)));
  std::vector<float> short_w(D - 1);
  CHECK_THROWS_WITH(ternary::rms_norm(x.cview(), short_w, 1e-6f, y.view()), Contains("weight has 299"));
}

TEST_CASE("weight quantisation: absmean gamma, ties to even, clamp", "[ternary]") {
  // mean |W| = 1 → γ = 1, W/γ on exact ties.
  const Array<float, 2> w(Shape<2>{2, 4}, {0.5f, 1.5f, -0.5f, -1.5f, 2.5f, -0.25f, 0.75f, -0.5f});
  REQUIRE(ternary::absmean_gamma(w.cview()) == 1.0f);
  Array<std::int8_t, 2> codes(Shape<2>{2, 4});
  ternary::ternarize(w.cview(), 1.0f, codes.view());
  CHECK(codes.vector() == std::vector<std::int8_t>{0, 1, 0, -1, 1, 0, 1, 0});
  ternary::ternarize(w.cview(), 1.0f, codes.view(), ternary::Rounding::half_away_from_zero);
  CHECK(codes.vector() == std::vector<std::int8_t>{1, 1, -1, -1, 1, 0, 1, -1});
  // The packed weights quantise the same way.
  const ternary::PackedWeights pw(w.cview());
  CHECK(pw.gamma() == 1.0f);
  CHECK(pw.to_codes().vector() == std::vector<std::int8_t>{0, 1, 0, -1, 1, 0, 1, 0});
  // All-zero weights: γ floors at 1e-5, codes 0.
  const Array<float, 2> zero(Shape<2>{3, 3});
  CHECK(ternary::absmean_gamma(zero.cview()) == 1e-5f);
  CHECK(ternary::PackedWeights(zero.cview()).to_codes() == Array<std::int8_t, 2>(Shape<2>{3, 3}));
  // Non-finite weights throw.
  Array<float, 2> bad(Shape<2>{1, 2});
  bad(0, 1) = INFINITY;
  CHECK_THROWS_WITH(ternary::PackedWeights(bad.cview()), Contains("non-finite"));
}

TEST_CASE("ternarize equals clamp(round(W/γ)) for both tie rules, ties and strides included", "[ternary]") {
  // Values on and next to the ties ±0.5 and ±1.5 (γ = 0.25 is a power of two: W·(1/γ) is exact),
  // random ones, a transposed (strided) view.
  std::vector<float> vals;
  for (const float t : {0.5f, 1.5f, 2.5f})
    for (const float v : {t, std::nextafter(t, 0.0f), std::nextafter(t, 3.0f)}) {
      vals.push_back(v * 0.25f);
      vals.push_back(-v * 0.25f);
    }
  std::mt19937_64 rng(13);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  while (vals.size() < 6 * 37) vals.push_back(normal(rng));
  const Array<float, 2> w(Shape<2>{6, 37}, vals);
  for (const auto rounding : {ternary::Rounding::half_to_even, ternary::Rounding::half_away_from_zero}) {
    Array<std::int8_t, 2> codes(Shape<2>{6, 37});
    ternary::ternarize(w.cview(), 0.25f, codes.view(), rounding);
    const linattn::TensorView<const float, 2> wt(w.data(), {37, 6}, {1, 37});  // Wᵀ
    Array<std::int8_t, 2> codes_t(Shape<2>{37, 6});
    ternary::ternarize(wt, 0.25f, codes_t.view(), rounding);
    for (index_t r = 0; r < 6; ++r)
      for (index_t c = 0; c < 37; ++c) {
        const float ref = std::clamp(ternary::round_with(rounding, w(r, c) * 4.0f), -1.0f, 1.0f);
        CAPTURE(r, c, w(r, c));
        CHECK(codes(r, c) == static_cast<std::int8_t>(ref));
        CHECK(codes_t(c, r) == codes(r, c));
      }
  }
}

TEST_CASE("gamma accumulates in double: the correctly rounded mean", "[ternary]") {
  const index_t n = 1 << 20;
  Array<float, 2> w(Shape<2>{16, n / 16});
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  long double sum = 0;
  for (auto& v : w.vector()) {
    v = normal(rng);
    sum += std::fabs((long double)v);
  }
  CHECK(ternary::absmean_gamma(w.cview()) == static_cast<float>(sum / n));
}

TEST_CASE("re-quantising dequantised weights changes gamma: codes and gamma are stored, never re-derived",
          "[ternary]") {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  Array<float, 2> w(Shape<2>{32, 48});
  for (auto& v : w.vector()) v = normal(rng);
  const ternary::PackedWeights pw(w.cview());
  const Array<float, 2> deq = pw.dequantized();  // γ·W_q
  const ternary::PackedWeights again(deq.cview());
  // mean |γ·W_q| = γ · (fraction of non-zero codes) < γ: absmean is not idempotent.
  const auto codes = pw.to_codes();
  double nonzero = 0;
  for (auto c : codes.vector()) nonzero += c != 0;
  CHECK(again.gamma() != pw.gamma());
  CHECK(again.gamma() == Approx(pw.gamma() * nonzero / codes.numel()).epsilon(1e-6));
  CHECK(again.to_codes() == codes);  // here the codes survive; γ does not
  // Built from codes and γ, the weights keep exactly that γ (no re-derivation).
  const ternary::PackedWeights given(codes.cview(), 0.123456789f);
  CHECK(given.gamma() == 0.123456789f);
  CHECK(given.to_codes() == codes);
  CHECK(given.repacked(ternary::Packing::base3).gamma() == 0.123456789f);
}
