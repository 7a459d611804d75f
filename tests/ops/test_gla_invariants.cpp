// GLA invariants: varlen = each sequence alone, prefix + state = full sequence, long
// sequences with hard-reset gates stay finite, thread counts give identical results,
// the state is a value.
#include <catch2/catch.hpp>

#include <cmath>

#include "support/gla_case.hpp"

using namespace testing_gla;
using linattn::Array;
using linattn::index_t;
using linattn::TensorView;

namespace {
double rel(const auto& a, const auto& b) { return ref::rel_err(a.data(), b.data(), b.numel()); }

// Rows [t0, t1) of a [1, T, H, D] array as a new [1, t1 - t0, H, D] array.
template <class T>
Array<T, 4> rows(const Array<T, 4>& a, index_t t0, index_t t1) {
  Array<T, 4> out({1, t1 - t0, a.size(2), a.size(3)});
  const index_t w = a.size(2) * a.size(3);
  std::copy(a.data() + t0 * w, a.data() + t1 * w, out.data());
  return out;
}
}  // namespace

TEST_CASE("GLA varlen equals each sequence alone, in every form", "[gla][varlen]") {
  const std::vector<std::int64_t> cu = {0, 5, 69, 69, 169, 170};  // includes an empty sequence
  const index_t N = static_cast<index_t>(cu.size()) - 1, H = 2, K = 32, V = 24;
  const auto p = make_problem<double>(1, cu.back(), H, K, V, -0.5, 99, N);
  for (int form : {0, 1, 2}) {
    CAPTURE(form);
    auto run = [&](const Problem<double>& pr, const linattn::gla::Options& o) {
      return form == 0 ? run_recurrent(pr, o) : form == 1 ? run_chunk(pr, o) : run_fused(pr, o);
    };
    linattn::gla::Options opt;
    opt.cu_seqlens = cu;
    opt.chunk_size = 16;
    const auto packed = run(p, opt);
    for (index_t n = 0; n < N; ++n) {
      Problem<double> one;
      one.q = rows(p.q, cu[n], cu[n + 1]);
      one.k = rows(p.k, cu[n], cu[n + 1]);
      one.v = rows(p.v, cu[n], cu[n + 1]);
      one.g = rows(p.g, cu[n], cu[n + 1]);
      one.h0 = linattn::gla::State<double>(1, H, K, V);
      std::copy(p.h0.head(n, 0), p.h0.head(n, 0) + H * K * V, one.h0.data());
      linattn::gla::Options o1;
      o1.chunk_size = 16;
      const auto alone = run(one, o1);
      for (index_t i = 0; i < alone.o.numel(); ++i)
        REQUIRE(packed.o.data()[cu[n] * H * V + i] == Approx(alone.o.data()[i]).epsilon(1e-12).margin(1e-12));
      for (index_t i = 0; i < H * K * V; ++i)
        REQUIRE(packed.ht.head(n, 0)[i] == Approx(alone.ht.data()[i]).epsilon(1e-12).margin(1e-12));
    }
  }
}

TEST_CASE("GLA prefix + state equals the full sequence (chunk prefill, then steps or chunks)", "[gla][state]") {
  const index_t T_ = 300, H = 2, K = 40, V = 56;
  const auto p = make_problem<double>(1, T_, H, K, V, 0.0, 5);
  const auto full = run_recurrent(p);
  for (index_t split : {1, 63, 64, 65, 299}) {
    CAPTURE(split);
    Problem<double> pre{rows(p.q, 0, split), rows(p.k, 0, split), rows(p.v, 0, split), rows(p.g, 0, split), p.h0};
    Problem<double> post{rows(p.q, split, T_), rows(p.k, split, T_), rows(p.v, split, T_), rows(p.g, split, T_), {}};
    const auto a = run_chunk(pre);
    post.h0 = a.ht;
    const auto b = run_chunk(post);
    const auto c = run_steps(post, 1.0 / std::sqrt(double(K)));
    const auto d = run_fused(post);
    CHECK(ref::rel_err(d.o.data(), full.o.data() + split * H * V, d.o.numel()) <= 1e-12);
    CHECK(ref::rel_err(d.ht.data(), full.ht.data(), full.ht.view().numel()) <= 1e-12);
    CHECK(ref::rel_err(b.ht.data(), full.ht.data(), full.ht.view().numel()) <= 1e-12);
    CHECK(ref::rel_err(c.ht.data(), full.ht.data(), full.ht.view().numel()) <= 1e-12);
    CHECK(ref::rel_err(b.o.data(), full.o.data() + split * H * V, b.o.numel()) <= 1e-12);
    CHECK(ref::rel_err(c.o.data(), full.o.data() + split * H * V, c.o.numel()) <= 1e-12);
  }
}

TEST_CASE("GLA in-place prefill: initial and final state may be the same object", "[gla][state]") {
  const auto p = make_problem<double>(2, 50, 2, 16, 16, 0.0, 8);
  const auto expected = run_chunk(p);
  auto state = p.h0;
  Array<double, 4> o({2, 50, 2, 16});
  linattn::gla::chunk<double>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), o.view(), &state, &state);
  CHECK(state == expected.ht);
  CHECK(o == expected.o);
}

TEST_CASE("GLA stays finite over 65,536 tokens with hard-reset gates", "[gla][stability]") {
  const index_t T_ = 65536, H = 1, K = 16, V = 16;
  auto p = make_problem<float>(1, T_, H, K, V, -1e4, 17);
  // Mix hard resets with near-zero decay so the state both collapses and accumulates.
  for (index_t i = 0; i < p.g.numel(); i += 3) p.g.data()[i] = -1e-6f;
  const auto rec = run_recurrent(p);
  const auto chk = run_chunk(p);
  const auto fus = run_fused(p);
  auto finite = [](const auto& a) {
    for (index_t i = 0; i < a.numel(); ++i)
      if (!std::isfinite(a.data()[i])) return false;
    return true;
  };
  CHECK(finite(rec.o));
  CHECK(finite(chk.o));
  CHECK(finite(chk.ht.view()));
  CHECK(finite(fus.o));
  CHECK(rel(chk.o, rec.o) <= 1e-4);
  CHECK(rel(fus.o, rec.o) <= 1e-4);
  // Without decay the state grows linearly: still finite in float after 65,536 tokens.
  for (auto& x : p.g.vector()) x = 0.0f;
  CHECK(finite(run_chunk(p).o));
}

TEST_CASE("GLA results do not depend on the thread count", "[gla][threads]") {
  const auto p = make_problem<float>(2, 130, 3, 32, 48, 0.0, 4);
  for (int form : {0, 1, 2}) {
    linattn::gla::Options one, two;
    one.threads.count = 1;
    two.threads.count = 2;
    auto run = [&](const linattn::gla::Options& o) {
      return form == 0 ? run_recurrent(p, o) : form == 1 ? run_chunk(p, o) : run_fused(p, o);
    };
    const auto a = run(one);
    const auto b = run(two);
    CHECK(a.o == b.o);
    CHECK(a.ht == b.ht);
  }
}

TEST_CASE("GLA splits value columns over threads when heads are fewer, with identical results", "[gla][threads]") {
  // One sequence, one head, V = 200: on two threads the recurrent and fused chunk forms split the
  // state's value columns into two items (112 + 88 wide: an uneven tail); the chunk form does not
  // (its products round by width). In place (initial state = final state), as the layers run;
  // chunk size 16 puts several chunks and a partial one in each block of rows.
  const auto p = make_problem<float>(1, 150, 1, 32, 200, 0.0, 9);
  REQUIRE(linattn::detail::head_ranges(1, 1, 200, 2, true).size() == 2);
  REQUIRE(linattn::detail::head_ranges(1, 1, 200, 2, false).size() == 1);
  for (int form : {0, 1, 2}) {
    linattn::gla::Options one, two;
    one.threads.count = 1;
    two.threads.count = 2;
    one.chunk_size = two.chunk_size = 16;
    const auto run = [&](const linattn::gla::Options& o) {
      Result<float> r{Array<float, 4>({1, 150, 1, 200}), p.h0};
      const auto f = form == 0 ? linattn::gla::recurrent<float> : form == 1 ? linattn::gla::chunk<float>
                                                                             : linattn::gla::fused_chunk<float>;
      f(p.q.view(), p.k.view(), p.v.view(), p.g.view(), r.o.view(), &r.ht, &r.ht, o);
      return r;
    };
    const auto a = run(one);
    const auto b = run(two);
    INFO("form " << form << ": rel o " << rel(a.o, b.o) << ", rel state " << rel(a.ht.view(), b.ht.view()));
    CHECK(a.o == b.o);
    CHECK(a.ht == b.ht);
    CHECK(rel(a.o, run_recurrent(p).o) <= 1e-4);  // and the right answer (not two equal wrong ones)
  }
}

TEST_CASE("GLA state is a value: snapshot and restore", "[gla][state]") {
  const auto p = make_problem<float>(1, 10, 2, 16, 16, 0.0, 6);
  auto state = p.h0;
  const auto snapshot = state;
  Array<float, 3> o({1, 2, 16});
  auto row = [&](const Array<float, 4>& a) { return TensorView<const float, 3>(a.data(), {1, 2, a.size(3)}); };
  linattn::gla::step<float>(row(p.q), row(p.k), row(p.v), row(p.g), o.view(), state);
  const auto after_one = state;
  const Array<float, 3> o_first = o;
  CHECK_FALSE(state == snapshot);
  state = snapshot;  // restore and replay: same token, same result
  linattn::gla::step<float>(row(p.q), row(p.k), row(p.v), row(p.g), o.view(), state);
  CHECK(state == after_one);
  CHECK(o == o_first);
}

TEST_CASE("GLA state converts to and from fla's v-first layer cache", "[gla][state]") {
  const auto p = make_problem<float>(2, 1, 3, 5, 7, 0.0, 1);
  const auto vf = p.h0.to_v_first();
  CHECK(vf.shape() == linattn::Shape<4>{2, 3, 7, 5});
  CHECK(vf(1, 2, 6, 4) == p.h0.view()(1, 2, 4, 6));
  CHECK(linattn::gla::State<float>::from_v_first(vf.view()) == p.h0);
}

TEST_CASE("GLA accepts head-first [B, H, T, D] data through strided views", "[gla][layout]") {
  const auto p = make_problem<double>(2, 37, 3, 16, 24, 0.0, 12);
  const index_t B = 2, T_ = 37, H = 3, K = 16, V = 24;
  // Copy every input into head-first storage, then view it as time-first with strides.
  auto head_first = [&](const Array<double, 4>& a) {
    const index_t D = a.size(3);
    Array<double, 4> hf({B, H, T_, D});
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T_; ++t)
        for (index_t h = 0; h < H; ++h)
          for (index_t d = 0; d < D; ++d) hf(b, h, t, d) = a(b, t, h, d);
    return hf;
  };
  auto as_time_first = [&](auto& hf) {
    const index_t D = hf.size(3);
    using E = std::remove_reference_t<decltype(*hf.data())>;
    return TensorView<E, 4>(hf.data(), {B, T_, H, D}, {H * T_ * D, D, T_ * D, 1});
  };
  const auto q = head_first(p.q), k = head_first(p.k), v = head_first(p.v), g = head_first(p.g);
  Array<double, 4> o_hf({B, H, T_, V});
  linattn::gla::State<double> ht;
  linattn::gla::chunk<double>(as_time_first(q), as_time_first(k), as_time_first(v), as_time_first(g),
                              as_time_first(o_hf), &p.h0, &ht);
  const auto expected = run_recurrent(p);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T_; ++t)
      for (index_t h = 0; h < H; ++h)
        for (index_t j = 0; j < V; ++j) REQUIRE(o_hf(b, h, t, j) == Approx(expected.o(b, t, h, j)).epsilon(1e-12).margin(1e-12));
  CHECK(ref::rel_err(ht.data(), expected.ht.data(), ht.view().numel()) <= 1e-12);
  (void)K;
}
