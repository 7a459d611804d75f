// The recurrence core's portable branches (LINATTN_PORTABLE, core/portable.hpp), built in this
// translation unit, against the vector-extension tiles built in test_core_vector.cpp and a plain
// long-double recurrence, in every form, on both gate axes, over shapes that are and are not
// whole tiles, with strided rows and base pointers 1-15 elements off 64-byte alignment.
#define LINATTN_PORTABLE 1

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "linattn/ops/ternary.hpp"
#include "ops/core_paths.hpp"

#if defined(LINATTN_RECURRENCE_VECTOR)
#error "LINATTN_PORTABLE must turn the recurrence core's vector path off"
#endif
static_assert(!linattn::ternary::backend_available(linattn::ternary::Backend::avx2) &&
                  !linattn::ternary::backend_available(linattn::ternary::Backend::avx512),
              "LINATTN_PORTABLE must leave the ternary kernels their scalar backend only");

namespace core_paths {
Results<float> portable_path_f(const Case& c) { return run<float>(c); }
Results<double> portable_path_d(const Case& c) { return run<double>(c); }
}  // namespace core_paths

namespace {
using core_paths::Case;
using linattn::index_t;

// max |a − b| / max(max |b|, 1)
template <class A, class B>
double rel(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, mag = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    mag = std::max(mag, std::abs(double(b[i])));
  }
  return diff / mag;
}

template <class Results>
void check(const Results& vec, const Results& port, double tol) {
  REQUIRE(vec.o.size() == 4);
  REQUIRE(port.o.size() == 4);
  for (std::size_t f = 0; f < 4; ++f) {
    CAPTURE(f);  // 0 recurrent, 1 fused_chunk, 2 chunk, 3 step
    CHECK(rel(vec.o[f], vec.ref_o) <= tol);
    CHECK(rel(vec.S[f], vec.ref_S) <= tol);
    CHECK(rel(port.o[f], port.ref_o) <= tol);
    CHECK(rel(port.S[f], port.ref_S) <= tol);
    CHECK(rel(port.o[f], vec.o[f]) <= tol);
    CHECK(rel(port.S[f], vec.S[f]) <= tol);
  }
}
}  // namespace

TEST_CASE("The recurrence core's portable and vector paths are distinct kernels in one binary", "[core][portable]") {
  Case c;
  c.len = 3, c.K = 8, c.V = 8;
  const auto vec = core_paths::vector_path_d(c);
  const auto port = core_paths::portable_path_d(c);
  CAPTURE(vec.isa, port.isa);
  CHECK(port.isa.rfind("rec_portable_", 0) == 0);
#if defined(__GNUC__)
  CHECK(vec.isa.rfind("rec_vector_", 0) == 0);
#endif
  // Without the inline namespaces the linker keeps one copy of each kernel and both entry
  // points would run it.
  CHECK(vec.kernel != port.kernel);
}

TEST_CASE("The recurrence core's portable path equals the vector path in every form", "[core][portable]") {
  struct Shape {
    index_t len, K, V;
  };
  // Whole tiles (8 x 32 floats, 8 x 16 doubles), ragged ones, K = 1 (the elementwise path on the
  // value axis), lengths 1, below and above the chunk and the 64-token blocks.
  const Shape shapes[] = {{1, 8, 32}, {7, 5, 3}, {37, 16, 64}, {100, 37, 50}, {70, 64, 130}, {33, 1, 40}};
  std::uint32_t seed = 1;
  for (const Shape& sh : shapes)
    for (bool key_axis : {true, false})
      for (bool linear_gate : {false, true}) {
        if (linear_gate && (key_axis || sh.K != 1)) continue;  // linear-space gates: HGRN only
        if (key_axis && sh.K == 1) continue;
        for (index_t misalign : {0, 1, 7, 15}) {
          Case c;
          c.key_axis = key_axis, c.linear_gate = linear_gate;
          c.len = sh.len, c.K = sh.K, c.V = sh.V;
          c.chunk = sh.len > 40 ? 32 : 16;
          c.misalign = misalign;
          c.pad = misalign == 7 ? 3 : 0;
          c.seed = seed++;
          CAPTURE(sh.len, sh.K, sh.V, key_axis, linear_gate, misalign, c.pad);
          check(core_paths::vector_path_d(c), core_paths::portable_path_d(c), 1e-12);
          check(core_paths::vector_path_f(c), core_paths::portable_path_f(c), 2e-4);
        }
      }
}
