// GLA: recurrent vs chunk vs step over a sweep of shapes, chunk sizes and gate strengths,
// and all three against an independent long-double recurrence.
#include <catch2/catch.hpp>

#include <cmath>

#include "support/gla_case.hpp"

using namespace testing_gla;
using linattn::index_t;

namespace {

double rel(const auto& a, const auto& b) { return ref::rel_err(a.data(), b.data(), b.numel()); }

template <class T>
void check_forms_agree(index_t B, index_t T_, index_t H, index_t K, index_t V, index_t C, double strength,
                       double tol, std::uint64_t seed) {
  CAPTURE(B, T_, H, K, V, C, strength);
  const auto p = make_problem<T>(B, T_, H, K, V, strength, seed);
  linattn::gla::Options opt;
  opt.chunk_size = C;
  const auto rec = run_recurrent(p, opt);
  const auto chk = run_chunk(p, opt);
  const auto fus = run_fused(p, opt);
  const auto stp = run_steps(p, 1.0 / std::sqrt(double(K)));
  CHECK(rel(chk.o, rec.o) <= tol);
  CHECK(rel(chk.ht.view(), rec.ht.view()) <= tol);
  CHECK(rel(fus.o, rec.o) <= tol);
  CHECK(rel(fus.ht.view(), rec.ht.view()) <= tol);
  CHECK(rel(stp.o, rec.o) <= tol);
  CHECK(rel(stp.ht.view(), rec.ht.view()) <= tol);
}

}  // namespace

TEST_CASE("GLA forms agree in double precision to 1e-10 over T, chunk size and gate strength", "[gla][forms]") {
  const double strengths[] = {0.0, -1e-3, -8.0, -1e4};
  for (index_t C : {16, 32, 64})
    for (index_t T_ : {index_t(1), C - 1, C, C + 1, index_t(1000)})
      for (double s : strengths) check_forms_agree<double>(1, T_, 2, 64, 64, C, s, 1e-10, 7 + T_);
}

TEST_CASE("GLA forms agree in double precision over head sizes", "[gla][forms]") {
  for (index_t K : {16, 60, 64, 100, 128})
    for (index_t V : {16, 60, 64, 100, 128}) check_forms_agree<double>(2, 77, 1, K, V, 32, 0.0, 1e-10, K * 131 + V);
  // Head sizes with the longest chunk-size sweep, where tails of every tile are exercised.
  for (index_t C : {16, 32, 64}) check_forms_agree<double>(1, 1000, 1, 100, 60, C, -1.0, 1e-10, C);
  check_forms_agree<double>(1, 1000, 1, 128, 128, 64, 0.0, 1e-10, 5);
}

TEST_CASE("GLA forms agree in float precision", "[gla][forms]") {
  for (index_t C : {16, 64}) {
    check_forms_agree<float>(2, 200, 3, 64, 64, C, 0.0, 2e-5, 11);
    check_forms_agree<float>(1, 130, 2, 60, 100, C, -8.0, 2e-5, 12);
  }
  // Any chunk size works, not only powers of two.
  check_forms_agree<float>(1, 100, 1, 32, 32, 7, 0.0, 2e-5, 13);
  check_forms_agree<float>(1, 100, 1, 32, 32, 1, 0.0, 2e-5, 14);
}

TEST_CASE("GLA forms match an independent long-double recurrence", "[gla][forms]") {
  for (double s : {0.0, -8.0, -1e4}) {
    CAPTURE(s);
    const auto p = make_problem<double>(2, 150, 2, 48, 40, s, 21);
    linattn::Array<double, 4> ro, rht;
    auto h0 = linattn::Array<double, 4>(p.h0.shape(), std::vector<double>(p.h0.data(), p.h0.data() + p.h0.view().numel()));
    ref::gla(p.q, p.k, p.v, p.g, 1.0 / std::sqrt(48.0), {}, &h0, ro, rht);
    CHECK(rel(run_recurrent(p).o, ro) <= 1e-13);
    CHECK(rel(run_chunk(p).o, ro) <= 1e-13);
    CHECK(rel(run_chunk(p).ht.view(), rht) <= 1e-13);
    CHECK(rel(run_fused(p).o, ro) <= 1e-13);
    CHECK(rel(run_fused(p).ht.view(), rht) <= 1e-13);
    CHECK(rel(run_steps(p, 1.0 / std::sqrt(48.0)).o, ro) <= 1e-13);
  }
}

TEST_CASE("GLA scale option is honoured by every form", "[gla][forms]") {
  const auto p = make_problem<double>(1, 70, 1, 16, 16, 0.0, 3);
  linattn::gla::Options opt;
  opt.scale = 0.37;
  linattn::Array<double, 4> ro, rht;
  auto h0 = linattn::Array<double, 4>(p.h0.shape(), std::vector<double>(p.h0.data(), p.h0.data() + p.h0.view().numel()));
  ref::gla(p.q, p.k, p.v, p.g, 0.37, {}, &h0, ro, rht);
  CHECK(rel(run_recurrent(p, opt).o, ro) <= 1e-13);
  CHECK(rel(run_chunk(p, opt).o, ro) <= 1e-13);
  CHECK(rel(run_fused(p, opt).o, ro) <= 1e-13);
  CHECK(rel(run_steps(p, 0.37).o, ro) <= 1e-13);
}
