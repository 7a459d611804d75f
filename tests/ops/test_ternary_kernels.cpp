// Ternary × int8 kernels: every compiled backend equals the scalar kernel and a plain
// Σ_{+1} x − Σ_{−1} x bit for bit over a sweep of shapes; extremes; threads; the float linear()
// against the dequantised float product; bad arguments.
#include <catch2/catch.hpp>

#include <Eigen/Core>

#include <cmath>
#include <random>
#include <vector>

#include "linattn/ops/ternary.hpp"

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
namespace ternary = linattn::ternary;
using ternary::Backend;
using ternary::Packing;
using Catch::Matchers::Contains;

namespace {

std::vector<Backend> compiled_backends() {
  std::vector<Backend> b{Backend::scalar};
  if (ternary::backend_available(Backend::avx2)) b.push_back(Backend::avx2);
  if (ternary::backend_available(Backend::avx512)) b.push_back(Backend::avx512);
  return b;
}

// acc[t][r] = Σ_{W=+1} x − Σ_{W=−1} x, from the plain codes.
Array<std::int32_t, 2> reference(const Array<std::int8_t, 2>& w, const Array<std::int8_t, 2>& x) {
  const index_t rows = w.size(0), cols = w.size(1), N = x.size(0);
  Array<std::int32_t, 2> acc(Shape<2>{N, rows});
  for (index_t t = 0; t < N; ++t)
    for (index_t r = 0; r < rows; ++r) {
      const std::int8_t* wr = w.data() + r * cols;
      const std::int8_t* xt = x.data() + t * cols;
      std::int32_t plus = 0, minus = 0;
      for (index_t c = 0; c < cols; ++c) {
        if (wr[c] > 0) plus += xt[c];
        if (wr[c] < 0) minus += xt[c];
      }
      acc(t, r) = plus - minus;
    }
  return acc;
}

template <class T>
Array<T, 2> random_ints(index_t rows, index_t cols, int lo, int hi, std::mt19937_64& rng) {
  Array<T, 2> a(Shape<2>{rows, cols});
  std::uniform_int_distribution<int> d(lo, hi);
  for (auto& v : a.vector()) v = static_cast<T>(d(rng));
  return a;
}

Array<std::int32_t, 2> run(const ternary::PackedWeights& w, const Array<std::int8_t, 2>& x, Backend b, int threads) {
  Array<std::int32_t, 2> acc(Shape<2>{x.size(0), w.rows()});
  ternary::Options opt;
  opt.backend = b;
  opt.threads = linattn::Threads{threads};
  ternary::matmul(w, x.cview(), acc.view(), opt);
  return acc;
}

}  // namespace

TEST_CASE("backends: scalar always, native is the widest compiled in", "[ternary]") {
  STATIC_REQUIRE(ternary::backend_available(Backend::scalar));
  const auto all = compiled_backends();
  CHECK(ternary::native_backend() == all.back());
  INFO("compiled backends: " << all.size() << ", native = " << ternary::backend_name(ternary::native_backend()));
  CHECK(all.size() >= 1);
}

TEST_CASE("every backend equals the scalar kernel and the plain sum, bit for bit", "[ternary]") {
  std::mt19937_64 rng(42);
  const auto backends = compiled_backends();
  for (const index_t cols : {1, 3, 63, 64, 65, 255, 256, 257, 1000, 2816, 5632}) {
    for (const index_t rows : {1, 3, 17}) {
      const auto codes = random_ints<std::int8_t>(rows, cols, -1, 1, rng);
      const ternary::PackedWeights w2(codes.cview(), 0.5f, Packing::bits2);
      const ternary::PackedWeights w3(codes.cview(), 0.5f, Packing::base3);
      for (const index_t N : {1, 2, 16, 17}) {
        const auto x = random_ints<std::int8_t>(N, cols, -128, 127, rng);  // −128 included
        const auto want = reference(codes, x);
        for (const auto* w : {&w2, &w3})
          for (const Backend b : backends) {
            CAPTURE(cols, rows, N, ternary::packing_name(w->packing()), ternary::backend_name(b));
            REQUIRE(run(*w, x, b, 1) == want);
          }
      }
    }
  }
}

TEST_CASE("threads split the rows without changing a bit", "[ternary][threads]") {
  std::mt19937_64 rng(9);
  const auto codes = random_ints<std::int8_t>(203, 517, -1, 1, rng);
  for (const Packing p : {Packing::bits2, Packing::base3}) {
    const ternary::PackedWeights w(codes.cview(), 1.0f, p);
    for (const index_t N : {1, 5, 17}) {
      const auto x = random_ints<std::int8_t>(N, 517, -128, 127, rng);
      const auto want = reference(codes, x);
      for (const Backend b : compiled_backends()) {
        CAPTURE(N, ternary::backend_name(b));
        CHECK(run(w, x, b, 2) == want);
        CHECK(run(w, x, b, 3) == want);
      }
    }
  }
}

TEST_CASE("extremes: |acc| up to 128·in, no int16 overflow anywhere", "[ternary]") {
  const index_t cols = 5632 + 37, rows = 5;
  Array<std::int8_t, 2> codes(Shape<2>{rows, cols});
  for (index_t c = 0; c < cols; ++c) {
    codes(0, c) = -1;
    codes(1, c) = 1;
    codes(2, c) = static_cast<std::int8_t>(c % 2 ? 1 : -1);
    codes(3, c) = 0;
    codes(4, c) = static_cast<std::int8_t>(c % 3 - 1);
  }
  Array<std::int8_t, 2> x(Shape<2>{3, cols});
  for (index_t c = 0; c < cols; ++c) {
    x(0, c) = -128;
    x(1, c) = 127;
    x(2, c) = static_cast<std::int8_t>(c % 2 ? 127 : -128);
  }
  const auto want = reference(codes, x);
  REQUIRE(want(0, 0) == 128 * cols);
  REQUIRE(want(2, 2) == 127 * (cols / 2) + 128 * ((cols + 1) / 2));
  for (const Packing p : {Packing::bits2, Packing::base3}) {
    const ternary::PackedWeights w(codes.cview(), 1.0f, p);
    for (const Backend b : compiled_backends()) {
      CAPTURE(ternary::packing_name(p), ternary::backend_name(b));
      CHECK(run(w, x, b, 1) == want);
      for (index_t t = 0; t < 3; ++t) {  // the decode path (N = 1) on each token alone
        Array<std::int8_t, 2> one(Shape<2>{1, cols}, std::vector<std::int8_t>(x.data() + t * cols, x.data() + (t + 1) * cols));
        const auto got = run(w, one, b, 1);
        for (index_t r = 0; r < rows; ++r) CHECK(got(0, r) == want(t, r));
      }
    }
  }
}

TEST_CASE("linear(): acc·γ/s_x exactly, and the dequantised float product within float rounding", "[ternary]") {
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const index_t N = 9, in = 700, out = 130;
  Array<float, 2> wf(Shape<2>{out, in}), x(Shape<2>{N, in});
  for (auto& v : wf.vector()) v = 0.05f * normal(rng);
  for (auto& v : x.vector()) v = normal(rng);
  for (const Packing p : {Packing::bits2, Packing::base3}) {
    const ternary::PackedWeights w(wf.cview(), p);
    Array<std::int8_t, 2> codes(Shape<2>{N, in});
    std::vector<float> s(N);
    ternary::quantize_activations(x.cview(), codes.view(), s);
    const auto acc = reference(w.to_codes(), codes);
    using M = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    M xd(N, in);
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < in; ++j) xd(n, j) = codes(n, j) / s[n];
    const auto wd = w.dequantized();
    const M yf = xd * Eigen::Map<const M>(wd.data(), out, in).transpose();
    for (const Backend b : compiled_backends()) {
      Array<float, 2> y(Shape<2>{N, out});
      std::vector<float> got_s(N);
      ternary::Options opt;
      opt.backend = b;
      ternary::linear(w, x.cview(), y.view(), opt, got_s);
      CHECK(got_s == s);
      double num = 0, den = 0;
      for (index_t n = 0; n < N; ++n)
        for (index_t o = 0; o < out; ++o) {
          REQUIRE(y(n, o) == static_cast<float>(acc(n, o)) * (w.gamma() / s[n]));
          num = std::max(num, std::abs(double(y(n, o)) - yf(n, o)));
          den = std::max(den, std::abs(double(yf(n, o))));
        }
      CHECK(num / den < 1e-5);
    }
  }
}

TEST_CASE("kernel arguments are checked", "[ternary]") {
  const Array<std::int8_t, 2> codes(Shape<2>{4, 10});
  const ternary::PackedWeights w(codes.cview(), 1.0f);
  Array<std::int8_t, 2> x(Shape<2>{2, 9});
  Array<std::int32_t, 2> acc(Shape<2>{2, 4});
  CHECK_THROWS_WITH(ternary::matmul(w, x.cview(), acc.view()), Contains("x has shape [2, 9], expected [*, 10]"));
  Array<std::int8_t, 2> x10(Shape<2>{2, 10});
  Array<std::int32_t, 2> acc3(Shape<2>{2, 3});
  CHECK_THROWS_WITH(ternary::matmul(w, x10.cview(), acc3.view()), Contains("acc has shape [2, 3], expected [2, 4]"));
  CHECK_THROWS_WITH(ternary::matmul(ternary::PackedWeights(), x10.cview(), acc.view()), Contains("empty"));
  Array<float, 2> xf(Shape<2>{2, 10}), y(Shape<2>{2, 4});
  std::vector<float> s(3);
  CHECK_THROWS_WITH(ternary::linear(w, xf.cview(), y.view(), {}, s), Contains("act_scale has 3 elements"));
  xf(1, 1) = NAN;
  CHECK_THROWS_WITH(ternary::linear(w, xf.cview(), y.view()), Contains("non-finite"));
  for (const Backend b : {Backend::avx2, Backend::avx512}) {
    if (ternary::backend_available(b)) continue;
    ternary::Options opt;
    opt.backend = b;
    CHECK_THROWS_WITH(ternary::matmul(w, x10.cview(), acc.view(), opt), Contains("is not compiled in"));
  }
}
