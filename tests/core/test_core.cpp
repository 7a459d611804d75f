// core/: views, the vectorised exp, threading.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
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

TEST_CASE("Sizes are checked: an absurd shape throws instead of wrapping into a small allocation", "[core][tensor][hardening]") {
  using Catch::Matchers::Contains;
  // 2^62 + 8 slots x 4 heads wrapped to 32 (the GSA state of a hostile config was 512 floats).
  const index_t huge = (index_t{1} << 62) + 8;
  CHECK_THROWS_AS(linattn::checked_mul(4, huge), std::length_error);
  CHECK_THROWS_WITH(linattn::checked_mul(4, huge, "num_kv_heads x num_slots"), Contains("num_kv_heads x num_slots"));
  CHECK_THROWS_AS(linattn::checked_mul(-1, 3), std::length_error);
  CHECK(linattn::checked_mul(index_t{1} << 31, index_t{1} << 31) == index_t{1} << 62);
  CHECK(linattn::checked_mul(0, huge) == 0);
  CHECK_THROWS_WITH((linattn::Array<float, 4>({1, 4, 16, huge})), Contains("overflows"));
  CHECK_THROWS_WITH((linattn::Array<float, 2>({-1, 4})), Contains("negative"));
  // Fits index_t but not the address space: a clear error, not a bad_alloc from a wrapped size.
  CHECK_THROWS_AS((linattn::Array<double, 2>({index_t{1} << 31, index_t{1} << 31})), std::length_error);
  CHECK_THROWS_AS((linattn::row_major_strides(linattn::Shape<3>{huge, 4, 16})), std::length_error);
  CHECK(linattn::row_major_strides(linattn::Shape<3>{0, huge, 1}) == linattn::Shape<3>{huge, 1, 1});
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

TEST_CASE("The worker team: many back-to-back calls, sleeps and wake-ups, nesting, concurrent callers", "[core][threads]") {
  const int all = linattn::max_threads();
  // Thousands of short calls (the pattern of a decode step), each checked for completeness:
  // a call must not return before every claimed item is done.
  std::vector<std::atomic<int>> hits(64);
  for (int round = 0; round < 3000; ++round) {
    for (auto& h : hits) h.store(0, std::memory_order_relaxed);
    linattn::detail::parallel_for(64, linattn::Threads{0}, [&](index_t i) { hits[static_cast<std::size_t>(i)]++; });
    for (auto& h : hits) REQUIRE(h.load() == 1);
    if (round % 1000 == 999) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the workers sleep
  }
  // A nested call runs on the calling worker; the outer one still covers every item.
  std::atomic<long> sum{0};
  linattn::detail::parallel_for(8, linattn::Threads{0}, [&](index_t i) {
    linattn::detail::parallel_for(8, linattn::Threads{0}, [&](index_t j) { sum += i * 8 + j; });
  });
  REQUIRE(sum.load() == 64 * 63 / 2);
  // Two program threads calling at once: one gets the team, the other runs its items itself.
  std::atomic<long> a{0}, b{0};
  std::thread other([&] {
    for (int r = 0; r < 200; ++r) linattn::detail::parallel_for(100, linattn::Threads{0}, [&](index_t i) { a += i; });
  });
  for (int r = 0; r < 200; ++r) linattn::detail::parallel_for(100, linattn::Threads{0}, [&](index_t i) { b += i; });
  other.join();
  REQUIRE(a.load() == 200L * 4950);
  REQUIRE(b.load() == 200L * 4950);
  // Inside a TeamScope (a model step) the team stays hot; results are the same.
  {
    const linattn::detail::TeamScope team(linattn::Threads{0});
    std::atomic<long> c{0};
    for (int r = 0; r < 100; ++r) linattn::detail::parallel_for(50, linattn::Threads{0}, [&](index_t i) { c += i; });
    REQUIRE(c.load() == 100L * 1225);
  }
  // The documented clamp: 0 and anything above the cores resolve to the cores.
  REQUIRE(linattn::detail::clamp_threads(linattn::Threads{0}) == all);
  REQUIRE(linattn::detail::clamp_threads(linattn::Threads{100000}) == all);
  REQUIRE(linattn::detail::resolve_threads(linattn::Threads{100000}, 3) == std::min(all, 3));
  REQUIRE(linattn::detail::clamp_threads(linattn::Threads{1}) == 1);
}

TEST_CASE("parallel_rows covers every row once in blocks of at least the minimum", "[core][threads]") {
  for (index_t rows : {0, 1, 7, 100, 4097}) {
    std::vector<int> hits(static_cast<std::size_t>(rows), 0);
    std::atomic<int> short_blocks{0};
    linattn::detail::parallel_rows(rows, 16, linattn::Threads{0}, [&](index_t r0, index_t r1) {
      if (r1 - r0 < 16 && r1 != rows) short_blocks++;
      for (index_t r = r0; r < r1; ++r) hits[static_cast<std::size_t>(r)]++;
    });
    for (int h : hits) REQUIRE(h == 1);
    REQUIRE(short_blocks.load() == 0);
  }
}
