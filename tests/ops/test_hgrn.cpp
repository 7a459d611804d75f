// HGRN (SPEC §4): golden cases, forms against a long-double scan, log vs linear gates,
// varlen, prefix + state, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <random>

#include "linattn/io/safetensors.hpp"
#include "linattn/ops/hgrn.hpp"
#include "support/reference.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using linattn::Array;
using linattn::index_t;
using linattn::TensorView;

namespace {

template <class T>
struct Case {
  Array<T, 3> x, g, f;  // g = log decay, f = e^g
  linattn::hgrn::State<T> h0;
};

template <class T>
Case<T> make_case(index_t B, index_t T_, index_t D, double strength, std::uint64_t seed, index_t N = -1) {
  std::mt19937_64 rng(seed);
  Case<T> c;
  c.x = ref::normal<T, 3>({B, T_, D}, rng);
  c.g = strength == 0 ? ref::gates<T, 3>({B, T_, D}, rng, 1.0) : ref::uniform<T, 3>({B, T_, D}, rng, strength, 0.0);
  c.f = Array<T, 3>(c.g.shape());
  for (index_t i = 0; i < c.g.numel(); ++i) c.f.data()[i] = std::exp(c.g.data()[i]);
  c.h0 = linattn::hgrn::state_from_rows<T>(ref::normal<linattn::acc_t<T>, 2>({N < 0 ? B : N, D}, rng).cview());
  return c;
}

// h_t = e^{g_t} h_{t-1} + x_t in long double, per sequence.
template <class T>
void reference(const Case<T>& c, const std::vector<std::int64_t>& cu, Array<double, 3>& o, Array<double, 2>& ht) {
  const index_t B = c.x.size(0), T_ = c.x.size(1), D = c.x.size(2);
  const index_t N = cu.empty() ? B : index_t(cu.size()) - 1;
  o = Array<double, 3>({B, T_, D});
  ht = Array<double, 2>({N, D});
  for (index_t n = 0; n < N; ++n) {
    const index_t b = cu.empty() ? n : 0, t0 = cu.empty() ? 0 : cu[n], t1 = cu.empty() ? T_ : cu[n + 1];
    for (index_t d = 0; d < D; ++d) {
      long double h = c.h0.data()[n * D + d];
      for (index_t t = t0; t < t1; ++t) o(b, t, d) = double(h = (long double)std::exp(double(c.g(b, t, d))) * h + c.x(b, t, d));
      ht(n, d) = double(h);
    }
  }
}

template <class T>
std::pair<Array<T, 3>, linattn::hgrn::State<T>> run(int form, const Case<T>& c, linattn::hgrn::Options opt = {}) {
  Array<T, 3> o(c.x.shape());
  linattn::hgrn::State<T> ht;
  if (form == 0) linattn::hgrn::recurrent<T>(c.x.view(), linattn::hgrn::log_gates<T>(c.g.view()), o.view(), &c.h0, &ht, opt);
  if (form == 1) linattn::hgrn::chunk<T>(c.x.view(), linattn::hgrn::log_gates<T>(c.g.view()), o.view(), &c.h0, &ht, opt);
  if (form == 2) linattn::hgrn::recurrent<T>(c.x.view(), linattn::hgrn::linear_gates<T>(c.f.view()), o.view(), &c.h0, &ht, opt);
  if (form == 3) linattn::hgrn::chunk<T>(c.x.view(), linattn::hgrn::linear_gates<T>(c.f.view()), o.view(), &c.h0, &ht, opt);
  if (form == 4) {  // step, all batch entries together
    const index_t B = c.x.size(0), T_ = c.x.size(1), D = c.x.size(2);
    ht = c.h0;
    for (index_t t = 0; t < T_; ++t) {
      auto row = [&](const Array<T, 3>& a) { return TensorView<const T, 2>(a.view().ptr(0, t), {B, D}, {T_ * D, 1}); };
      linattn::hgrn::step<T>(row(c.x), linattn::hgrn::log_gates<T>(row(c.g)),
                             TensorView<T, 2>(o.view().ptr(0, t), {B, D}, {T_ * D, 1}), ht);
    }
  }
  return {std::move(o), std::move(ht)};
}

}  // namespace

TEST_CASE("HGRN golden cases: every form within 1e-4", "[hgrn][golden]") {
  int files = 0;
  for (const auto& e : fs::directory_iterator(LINATTN_TEST_DATA_DIR)) {
    if (e.path().filename().string().rfind("hgrn_", 0) != 0) continue;
    ++files;
    CAPTURE(e.path().filename().string());
    const linattn::io::SafeTensorsFile file(e.path());
    Case<float> c;
    c.x = file.read_array<float, 3>("x");
    c.g = file.read_array<float, 3>("g");
    c.f = Array<float, 3>(c.g.shape());
    for (index_t i = 0; i < c.g.numel(); ++i) c.f.data()[i] = std::exp(c.g.data()[i]);
    const auto h0 = file.read_array<float, 2>("h0");
    c.h0 = linattn::hgrn::state_from_rows<float>(h0.cview());
    const auto o_ref = file.read_array<double, 3>("o");
    const auto ht_ref = file.read_array<double, 2>("ht");
    for (int form = 0; form < 5; ++form) {
      CAPTURE(form);
      const auto [o, ht] = run(form, c);
      CHECK(ref::rel_err(o.data(), o_ref.data(), o_ref.numel()) <= 1e-4);
      CHECK(ref::rel_err(ht.data(), ht_ref.data(), ht_ref.numel()) <= 1e-4);
    }
  }
  CHECK(files >= 3);
}

TEST_CASE("HGRN forms agree with a long-double scan over shapes, chunk sizes and gates", "[hgrn][forms]") {
  for (index_t D : {1, 3, 64, 255, 600})
    for (index_t T_ : {1, 127, 128, 129, 300})
      for (double s : {0.0, -1e4}) {
        CAPTURE(D, T_, s);
        const auto c = make_case<double>(2, T_, D, s, D * 7 + T_);
        Array<double, 3> ro;
        Array<double, 2> rht;
        reference(c, {}, ro, rht);
        for (int form = 0; form < 5; ++form) {
          const bool chunked = form == 1 || form == 3;
          for (index_t C : {16, 128}) {
            if (!chunked && C != 128) continue;
            linattn::hgrn::Options opt;
            opt.chunk_size = C;
            const auto [o, ht] = run(form, c, opt);
            CHECK(ref::rel_err(o.data(), ro.data(), ro.numel()) <= 1e-12);
            CHECK(ref::rel_err(ht.data(), rht.data(), rht.numel()) <= 1e-12);
          }
        }
      }
}

TEST_CASE("HGRN varlen equals each sequence alone; prefix + state equals the whole", "[hgrn][varlen][state]") {
  const std::vector<std::int64_t> cu = {0, 7, 7, 200, 301};
  const auto c = make_case<double>(1, 301, 300, 0.0, 3, 4);
  Array<double, 3> ro;
  Array<double, 2> rht;
  reference(c, cu, ro, rht);
  linattn::hgrn::Options opt;
  opt.cu_seqlens = cu;
  opt.chunk_size = 32;
  for (int form : {0, 1, 2, 3}) {
    const auto [o, ht] = run(form, c, opt);
    CHECK(ref::rel_err(o.data(), ro.data(), ro.numel()) <= 1e-12);
    CHECK(ref::rel_err(ht.data(), rht.data(), rht.numel()) <= 1e-12);
  }
  // prefix + state: rows [0, 150) then [150, 301) of one sequence
  const auto whole = make_case<double>(1, 301, 70, 0.0, 4);
  const auto [o_full, h_full] = run(1, whole);
  Case<double> pre, post;
  auto rows = [](const Array<double, 3>& a, index_t t0, index_t t1) {
    Array<double, 3> out({1, t1 - t0, a.size(2)});
    std::copy(a.data() + t0 * a.size(2), a.data() + t1 * a.size(2), out.data());
    return out;
  };
  pre = {rows(whole.x, 0, 150), rows(whole.g, 0, 150), rows(whole.f, 0, 150), whole.h0};
  post = {rows(whole.x, 150, 301), rows(whole.g, 150, 301), rows(whole.f, 150, 301), {}};
  post.h0 = run(1, pre).second;
  const auto [o_post, h_post] = run(4, post);
  CHECK(ref::rel_err(o_post.data(), o_full.data() + 150 * 70, o_post.numel()) <= 1e-12);
  CHECK(ref::rel_err(h_post.data(), h_full.data(), h_full.numel()) <= 1e-12);
}

TEST_CASE("HGRN rejects bad shapes, naming the tensor", "[hgrn][errors]") {
  const auto c = make_case<float>(1, 5, 8, 0.0, 1);
  Array<float, 3> o({1, 5, 8}), bad({1, 5, 7});
  REQUIRE_THROWS_WITH(linattn::hgrn::recurrent<float>(c.x.view(), linattn::hgrn::log_gates<float>(bad.view()), o.view()),
                      Contains("g has shape [1, 5, 7], expected [1, 5, 8]"));
  REQUIRE_THROWS_WITH(linattn::hgrn::chunk<float>(c.x.view(), linattn::hgrn::linear_gates<float>(bad.view()), o.view()),
                      Contains("f has shape [1, 5, 7]"));
  linattn::hgrn::State<float> wrong = linattn::hgrn::zero_state<float>(2, 8);
  REQUIRE_THROWS_WITH(linattn::hgrn::chunk<float>(c.x.view(), linattn::hgrn::log_gates<float>(c.g.view()), o.view(), &wrong),
                      Contains("initial_state has shape [2, 1, 1, 8], expected [1, 1, 1, 8]"));
  Array<float, 2> x1({1, 8}), o1({1, 8});
  REQUIRE_THROWS_WITH(linattn::hgrn::step<float>(x1.view(), linattn::hgrn::log_gates<float>(x1.cview()), o1.view(), wrong),
                      Contains("state has shape [2, 1, 1, 8], expected [1, 1, 1, 8]"));
}
