// GSA: golden cases, recurrent vs chunk vs step over a sweep, invariants, the g-absent
// fallback against its definition, GQA, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "linattn/io/safetensors.hpp"
#include "support/gsa_case.hpp"

namespace fs = std::filesystem;
using namespace testing_gsa;
using Catch::Matchers::Contains;

namespace {

double rel(const auto& a, const auto& b) { return ref::rel_err(a.data(), b.data(), b.numel()); }

Array<double, 4> as_double(const linattn::RecurrentState<double>& s) {
  return Array<double, 4>(s.shape(), std::vector<double>(s.data(), s.data() + s.view().numel()));
}
Array<double, 4> as_double(const linattn::RecurrentState<float>& s) {
  return Array<double, 4>(s.shape(), std::vector<double>(s.data(), s.data() + s.view().numel()));
}

template <class T>
void check_against_reference(const Problem<T>& p, const std::optional<double>& scale, index_t C, double tol) {
  linattn::gsa::Options opt;
  opt.chunk_size = C;
  opt.scale = scale;
  const double sc = scale.value_or(1.0 / std::sqrt(double(p.q.size(3))));
  Array<double, 4> ro, rk, rv;
  const auto k0 = as_double(p.h0.hk), v0 = as_double(p.h0.hv);
  ref::gsa(p.q, p.k, p.v, p.s, p.g, sc, {}, &k0, &v0, ro, rk, rv);
  const auto rec = run(0, p, opt), chk = run(1, p, opt), fused = run(2, p, opt);
  const auto stp = run_steps(p, scale);
  for (const auto* r : {&rec, &chk, &fused, &stp}) {
    CHECK(rel(r->o, ro) <= tol);
    CHECK(ref::rel_err(r->ht.hk.data(), rk.data(), rk.numel()) <= tol);
    CHECK(ref::rel_err(r->ht.hv.data(), rv.data(), rv.numel()) <= tol);
  }
}

}  // namespace

TEST_CASE("GSA golden cases: recurrent, chunk and step within 1e-4", "[gsa][golden]") {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(LINATTN_TEST_DATA_DIR))
    if (e.path().filename().string().rfind("gsa_", 0) == 0) files.push_back(e.path());
  REQUIRE(files.size() >= 4);
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    Problem<float> p;
    p.q = f.read_array<float, 4>("q");
    p.k = f.read_array<float, 4>("k");
    p.v = f.read_array<float, 4>("v");
    p.s = f.read_array<float, 4>("s");
    p.g = f.read_array<float, 4>("g");
    const auto hk0 = f.read_array<float, 4>("hk0"), hv0 = f.read_array<float, 4>("hv0");
    p.h0 = linattn::gsa::State<float>(hk0.size(0), hk0.size(1), hk0.size(2), hk0.size(3), hv0.size(3));
    std::copy(hk0.data(), hk0.data() + hk0.numel(), p.h0.hk.data());
    std::copy(hv0.data(), hv0.data() + hv0.numel(), p.h0.hv.data());
    const double scale = std::stod(f.metadata_value("scale").value());
    const auto o = f.read_array<double, 4>("o"), hkt = f.read_array<double, 4>("hkt"), hvt = f.read_array<double, 4>("hvt");
    linattn::gsa::Options opt;
    opt.scale = scale;
    for (const auto& r : {run(0, p, opt), run(1, p, opt), run(2, p, opt), run_steps(p, scale)}) {
      CHECK(rel(r.o, o) <= 1e-4);
      CHECK(ref::rel_err(r.ht.hk.data(), hkt.data(), hkt.numel()) <= 1e-4);
      CHECK(ref::rel_err(r.ht.hv.data(), hvt.data(), hvt.numel()) <= 1e-4);
    }
  }
}

TEST_CASE("GSA forms agree with the reference in double precision over a sweep", "[gsa][forms]") {
  for (index_t C : {16, 64})
    for (index_t T_ : {index_t(1), C - 1, C, C + 1, index_t(777)}) {
      CAPTURE(C, T_);
      check_against_reference(make_problem<double>(1, T_, 2, 2, 32, 32, 16, 0.0, T_), 1.0, C, 1e-10);
    }
  for (index_t M : {8, 16, 48, 64})
    for (index_t KV : {16, 60, 64, 100}) {
      CAPTURE(M, KV);
      check_against_reference(make_problem<double>(2, 70, 1, 1, KV, 100 - KV + 16, M, 0.0, M + KV), std::nullopt, 32, 1e-10);
    }
  for (double strength : {-1e-3, -8.0, -1e4}) {
    CAPTURE(strength);
    check_against_reference(make_problem<double>(1, 150, 1, 1, 24, 40, 16, strength, 9), 1.0, 32, 1e-10);
  }
}

TEST_CASE("GSA in float agrees with the reference", "[gsa][forms]") {
  check_against_reference(make_problem<float>(1, 300, 2, 2, 64, 64, 64, 0.0, 1), 1.0, 64, 1e-4);
}

TEST_CASE("GSA grouped queries: query head h reads kv head h / G", "[gsa][gqa]") {
  // The reference maps heads the same way; also check directly that a query head equals a
  // G = 1 run against its kv head alone.
  const auto p = make_problem<double>(1, 90, 6, 2, 16, 24, 8, 0.0, 4);
  check_against_reference(p, 1.0, 16, 1e-10);
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  const auto all = run(2, p, opt);
  for (index_t hq : {0, 2, 3, 5}) {
    Problem<double> one = p;
    one.q = Array<double, 4>({1, 90, 1, 16});
    for (index_t t = 0; t < 90; ++t)
      for (index_t i = 0; i < 16; ++i) one.q(0, t, 0, i) = p.q(0, t, hq, i);
    // kv head hq / 3 only
    const index_t h = hq / 3;
    auto pick = [&](const Array<double, 4>& a) {
      Array<double, 4> out({1, 90, 1, a.size(3)});
      for (index_t t = 0; t < 90; ++t)
        for (index_t i = 0; i < a.size(3); ++i) out(0, t, 0, i) = a(0, t, h, i);
      return out;
    };
    one.k = pick(p.k);
    one.v = pick(p.v);
    one.s = pick(p.s);
    one.g = pick(p.g);
    one.h0 = linattn::gsa::State<double>(1, 1, 16, 8, 24);
    std::copy(p.h0.hk.head(0, h), p.h0.hk.head(0, h) + 16 * 8, one.h0.hk.data());
    std::copy(p.h0.hv.head(0, h), p.h0.hv.head(0, h) + 8 * 24, one.h0.hv.data());
    const auto r = run(1, one, opt);
    for (index_t t = 0; t < 90; ++t)
      for (index_t j = 0; j < 24; ++j) REQUIRE(all.o(0, t, hq, j) == Approx(r.o(0, t, 0, j)).epsilon(1e-12));
  }
}

TEST_CASE("GSA grouped queries with the state updated in place", "[gsa][gqa]") {
  // Every query head of a group replays the kv head's state from the initial state; with the
  // initial and final state one object (in-place prefill) the first head must not overwrite it
  // before the others have read it.
  const auto p = make_problem<double>(1, 70, 4, 2, 16, 24, 8, 0.0, 6);
  linattn::gsa::Options opt;
  opt.scale = 1.0;
  opt.chunk_size = 16;
  for (int form : {0, 1, 2}) {
    const auto separate = run(form, p, opt);
    auto state = p.h0;
    Array<double, 4> o({1, 70, 4, 24});
    if (form == 1)
      linattn::gsa::chunk<double>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), o.view(), &state, &state, opt);
    else if (form == 2)
      linattn::gsa::fused_chunk<double>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), o.view(), &state, &state, opt);
    else
      linattn::gsa::recurrent<double>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), o.view(), &state, &state, opt);
    INFO("form " << form);
    CHECK(o == separate.o);
    CHECK(state == separate.ht);
  }
}

TEST_CASE("GSA without g: the softmax-over-time fallback equals its direct definition", "[gsa][fallback]") {
  const auto p = make_problem<double>(2, 40, 2, 1, 16, 24, 8, 0.0, 5, /*with_gate=*/false);
  Array<double, 4> ro;
  ref::gsa_softmax_over_time(p.q, p.k, p.v, p.s, 0.5, ro);
  linattn::gsa::Options opt;
  opt.scale = 0.5;
  opt.chunk_size = 16;
  CHECK(rel(run(0, p, opt, false).o, ro) <= 1e-12);
  CHECK(rel(run(1, p, opt, false).o, ro) <= 1e-12);
  CHECK(rel(run(2, p, opt, false).o, ro) <= 1e-12);
  CHECK(rel(run_steps(p, 0.5, false).o, ro) <= 1e-12);
}

TEST_CASE("GSA prefix + state equals the full sequence, with and without g", "[gsa][state]") {
  for (bool gate : {true, false}) {
    CAPTURE(gate);
    const index_t T_ = 200;
    const auto p = make_problem<double>(1, T_, 2, 2, 16, 16, 16, 0.0, 6, gate);
    linattn::gsa::Options opt;
    opt.scale = 1.0;
    opt.chunk_size = 32;
    const auto full = run(0, p, opt, false);
    for (index_t split : {1, 31, 32, 33, 199}) {
      CAPTURE(split);
      auto rows = [&](const Array<double, 4>& a, index_t t0, index_t t1) {
        if (a.numel() == 0) return Array<double, 4>();
        Array<double, 4> out({1, t1 - t0, a.size(2), a.size(3)});
        std::copy(a.data() + t0 * a.size(2) * a.size(3), a.data() + t1 * a.size(2) * a.size(3), out.data());
        return out;
      };
      Problem<double> pre{rows(p.q, 0, split), rows(p.k, 0, split), rows(p.v, 0, split), rows(p.s, 0, split),
                          rows(p.g, 0, split), {}};
      Problem<double> post{rows(p.q, split, T_), rows(p.k, split, T_), rows(p.v, split, T_), rows(p.s, split, T_),
                           rows(p.g, split, T_), {}};
      post.h0 = run(1, pre, opt, false).ht;
      const auto b = run(2, post, opt);
      const auto c = run_steps(post, 1.0);
      CHECK(ref::rel_err(b.o.data(), full.o.data() + split * 2 * 16, b.o.numel()) <= 1e-12);
      CHECK(ref::rel_err(c.o.data(), full.o.data() + split * 2 * 16, c.o.numel()) <= 1e-12);
      CHECK(ref::rel_err(c.ht.hv.data(), full.ht.hv.data(), full.ht.hv.view().numel()) <= 1e-12);
    }
  }
}

TEST_CASE("GSA varlen equals each sequence alone", "[gsa][varlen]") {
  const std::vector<std::int64_t> cu = {0, 3, 70, 70, 101};
  const index_t N = 4;
  const auto p = make_problem<double>(1, 101, 2, 1, 16, 16, 8, 0.0, 8, true, N);
  for (int form : {0, 1, 2}) {
    linattn::gsa::Options opt;
    opt.cu_seqlens = cu;
    opt.chunk_size = 16;
    const auto packed = run(form, p, opt);
    for (index_t n = 0; n < N; ++n) {
      auto rows = [&](const Array<double, 4>& a) {
        Array<double, 4> out({1, cu[n + 1] - cu[n], a.size(2), a.size(3)});
        std::copy(a.data() + cu[n] * a.size(2) * a.size(3), a.data() + cu[n + 1] * a.size(2) * a.size(3), out.data());
        return out;
      };
      Problem<double> one{rows(p.q), rows(p.k), rows(p.v), rows(p.s), rows(p.g), linattn::gsa::State<double>(1, 1, 16, 8, 16)};
      std::copy(p.h0.hk.head(n, 0), p.h0.hk.head(n, 0) + 16 * 8, one.h0.hk.data());
      std::copy(p.h0.hv.head(n, 0), p.h0.hv.head(n, 0) + 8 * 16, one.h0.hv.data());
      linattn::gsa::Options o1;
      o1.chunk_size = 16;
      const auto alone = run(form, one, o1);
      CHECK(ref::rel_err(packed.o.data() + cu[n] * 2 * 16, alone.o.data(), alone.o.numel()) <= 1e-12);
      CHECK(ref::rel_err(packed.ht.hv.head(n, 0), alone.ht.hv.data(), 8 * 16) <= 1e-12);
    }
  }
}

TEST_CASE("GSA rejects bad shapes with a message naming the tensor", "[gsa][errors]") {
  const auto p = make_problem<float>(1, 8, 3, 2, 16, 8, 4, 0.0, 1);
  Array<float, 4> o({1, 8, 3, 8});
  auto call = [&](const Array<float, 4>& q, const Array<float, 4>& s, Array<float, 4>& out) {
    linattn::gsa::chunk<float>(q.view(), p.k.view(), p.v.view(), s.view(), p.g.view(), out.view());
  };
  REQUIRE_THROWS_WITH(call(p.q, p.s, o), Contains("q has 3 heads, which is not a multiple of the 2 heads of k"));
  const auto p2 = make_problem<float>(1, 8, 4, 2, 16, 8, 4, 0.0, 1);
  Array<float, 4> o2({1, 8, 4, 8}), bad_s({1, 8, 2, 5}), bad_o({1, 8, 2, 8});
  auto call2 = [&](const Array<float, 4>& s, const Array<float, 4>& g, Array<float, 4>& out) {
    linattn::gsa::recurrent<float>(p2.q.view(), p2.k.view(), p2.v.view(), s.view(), g.view(), out.view());
  };
  REQUIRE_THROWS_WITH(call2(p2.s, bad_s, o2), Contains("g has shape [1, 8, 2, 5], expected [1, 8, 2, 4]"));
  REQUIRE_THROWS_WITH(call2(p2.s, p2.g, bad_o), Contains("o has shape [1, 8, 2, 8], expected [1, 8, 4, 8]"));
  linattn::gsa::State<float> wrong(1, 2, 16, 5, 8);
  REQUIRE_THROWS_WITH(linattn::gsa::chunk<float>(p2.q.view(), p2.k.view(), p2.v.view(), p2.s.view(), p2.g.view(), o2.view(), &wrong),
                      Contains("initial_state.hk has shape [1, 2, 16, 5], expected [1, 2, 16, 4]"));
  Array<float, 3> q1({1, 4, 16}), k1({1, 2, 16}), v1({1, 2, 8}), s1({1, 2, 4}), o1({1, 4, 8});
  REQUIRE_THROWS_WITH(linattn::gsa::step<float>(q1.view(), k1.view(), v1.view(), s1.view(), s1.view(), o1.view(), wrong),
                      Contains("state.hk has shape"));
}
