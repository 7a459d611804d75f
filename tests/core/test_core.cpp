// core/: views, the vectorised exp, threading.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"

using linattn::index_t;

TEMPLATE_TEST_CASE("exp_inplace is accurate to a few ulp over the whole range", "[core][math]", float, double) {
  std::vector<TestType> x;
  for (double v = -800; v < 800; v += 0.0137) x.push_back(TestType(v));
  auto y = x;
  linattn::detail::exp_inplace(y.data(), static_cast<index_t>(y.size()));
  const double tol = std::is_same_v<TestType, float> ? 3e-7 : 1e-15;
  const double min_normal = std::numeric_limits<TestType>::min();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const long double e = std::exp((long double)x[i]);
    if (e < min_normal) {
      REQUIRE(y[i] == 0);  // flushed: a hard reset
    } else if (e > (long double)std::numeric_limits<TestType>::max()) {
      REQUIRE(std::isinf(y[i]));
    } else {
      INFO("x = " << x[i]);
      REQUIRE(double(std::abs((long double)y[i] - e) / e) < tol);
    }
  }
  TestType special[] = {TestType(0), -std::numeric_limits<TestType>::infinity(),
                        std::numeric_limits<TestType>::infinity(), std::numeric_limits<TestType>::quiet_NaN()};
  linattn::detail::exp_inplace(special, 4);
  CHECK(special[0] == 1);
  CHECK(special[1] == 0);
  CHECK(std::isinf(special[2]));
  CHECK(std::isnan(special[3]));
}

TEST_CASE("TensorView indexes with strides, Array is a value", "[core][tensor]") {
  linattn::Array<float, 3> a({2, 3, 4});
  for (index_t i = 0; i < a.numel(); ++i) a.data()[i] = float(i);
  auto v = a.view();
  CHECK(v(1, 2, 3) == 23.0f);
  CHECK(v.is_contiguous());
  // Transposed view of the first two axes.
  linattn::TensorView<float, 3> t(a.data(), {3, 2, 4}, {4, 12, 1});
  CHECK(t(2, 1, 3) == v(1, 2, 3));
  CHECK_FALSE(t.is_contiguous());
  auto copy = a;
  copy(0, 0, 0) = -1;
  CHECK(a(0, 0, 0) == 0.0f);
  CHECK(linattn::shape_string(a.shape()) == "[2, 3, 4]");
  REQUIRE_THROWS_AS((linattn::Array<float, 2>({2, 2}, std::vector<float>(3))), std::invalid_argument);
}

TEST_CASE("parallel_for visits every item once and rethrows worker exceptions", "[core][threads]") {
  std::vector<int> hits(1000, 0);
  linattn::detail::parallel_for(1000, linattn::Threads{2}, [&](index_t i) { hits[static_cast<std::size_t>(i)]++; });
  for (int h : hits) REQUIRE(h == 1);
  REQUIRE_THROWS_WITH(linattn::detail::parallel_for(10, linattn::Threads{2},
                                                    [](index_t i) {
                                                      if (i == 7) throw std::runtime_error("item 7 failed");
                                                    }),
                      "item 7 failed");
}
