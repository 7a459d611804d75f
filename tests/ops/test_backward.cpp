// Backward of the gated recurrence (SPEC §9) in both forms: the golden gradients
// (tests/data/grad, float64 autograd through upstream's naive functions), central finite
// differences in double, the chunk form against the recurrent one over chunk boundaries and
// extreme gates, and the invariants: varlen ≡ each sequence alone, prefix + continuation (the
// state gradient handed across) ≡ the whole, identical gradients for 1 and 2 threads
// (test_ops_threads.cpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "linattn/io/safetensors.hpp"
#include "linattn/ops/gla.hpp"
#include "linattn/ops/gsa.hpp"
#include "linattn/nn/bitlinear_train.hpp"
#include "linattn/ops/hgrn.hpp"
#include "support/reference.hpp"

namespace fs = std::filesystem;
using linattn::Array;
using linattn::index_t;
using linattn::Shape;

namespace {

std::vector<fs::path> grad_files(const std::string& kind_prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(LINATTN_TEST_DATA_DIR) / "grad"))
    if (e.path().extension() == ".safetensors") {
      const linattn::io::SafeTensorsFile f(e.path());
      const auto kind = f.metadata_value("kind").value_or("");
      if (kind.rfind(kind_prefix, 0) == 0) out.push_back(e.path());
    }
  std::sort(out.begin(), out.end());
  return out;
}

enum class Form { recurrent, chunk };
const char* form_name(Form f) { return f == Form::recurrent ? "recurrent" : "chunk"; }

// Every `stride`-th element of x against the central difference of loss() (x is restored).
template <class Loss>
void check_finite_differences(double* x, const double* grad, index_t n, const Loss& loss, const char* name,
                              double eps = 1e-6, index_t stride = 1, double margin = 1e-7) {
  for (index_t i = 0; i < n; i += stride) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    INFO(name << "[" << i << "]");
    CHECK(grad[i] == Approx((lp - lm) / (2 * eps)).margin(margin).epsilon(1e-6));
  }
}

template <class T, std::size_t R>
bool all_finite(const Array<T, R>& a) {
  return std::all_of(a.vector().begin(), a.vector().end(), [](T x) { return std::isfinite(x); });
}

// dg is a reverse cumulative sum of q⊙dq − k⊙dk: its rounding error is ε times the size of
// those terms, not of dg (which is 0 where the decay underflows), so dg is compared against
// the scale of its terms.
template <class T, std::size_t R>
double max_abs(const Array<T, R>& a) {
  double m = 0;
  for (const T x : a.vector()) m = std::max(m, std::abs(double(x)));
  return m;
}

template <class T>
struct GLAGrads {
  Array<T, 4> dq, dk, dv, dgk;
  linattn::gla::State<T> dh0;
  explicit GLAGrads(const Shape<4>& qs, const Shape<4>& vs) : dq(qs), dk(qs), dv(vs), dgk(qs) {}
  linattn::gla::Gradients<T> views() { return {dq.view(), dk.view(), dv.view(), dgk.view(), &dh0}; }
};

template <class T>
void gla_backward(Form form, const Array<T, 4>& q, const Array<T, 4>& k, const Array<T, 4>& v, const Array<T, 4>& g,
                  const Array<T, 4>& dout, std::type_identity_t<const linattn::gla::State<T>*> h0,
                  std::type_identity_t<const linattn::gla::State<T>*> dht, GLAGrads<T>& gr, const linattn::gla::Options& opt = {}) {
  if (form == Form::recurrent)
    linattn::gla::recurrent_backward<T>(q.view(), k.view(), v.view(), g.view(), dout.view(), h0, dht, gr.views(), opt);
  else
    linattn::gla::chunk_backward<T>(q.view(), k.view(), v.view(), g.view(), dout.view(), h0, dht, gr.views(), opt);
}

// L = Σ o ⊙ do + Σ S_T ⊙ dht for the GLA forward in double.
double gla_loss(const Array<double, 4>& q, const Array<double, 4>& k, const Array<double, 4>& v,
                const Array<double, 4>& g, const Array<double, 4>& dout, const linattn::gla::State<double>* h0,
                const linattn::gla::State<double>* dht, const linattn::gla::Options& opt) {
  Array<double, 4> o(Shape<4>{q.size(0), q.size(1), q.size(2), v.size(3)});
  linattn::gla::State<double> ht;
  linattn::gla::recurrent<double>(q.view(), k.view(), v.view(), g.view(), o.view(), h0, &ht, opt);
  double L = 0;
  for (index_t i = 0; i < o.numel(); ++i) L += o.data()[i] * dout.data()[i];
  if (dht)
    for (index_t i = 0; i < ht.numel(); ++i) L += ht.data()[i] * dht->data()[i];
  return L;
}

}  // namespace

TEMPLATE_TEST_CASE("GLA backward matches the golden gradients in both forms", "[gla][grad][golden]", float, double) {
  const auto files = grad_files("grad.gla");
  REQUIRE(files.size() >= 5);
  const double tol = std::is_same_v<TestType, float> ? 1e-4 : 1e-10;
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    const auto q = f.read_array<TestType, 4>("q"), k = f.read_array<TestType, 4>("k"),
               v = f.read_array<TestType, 4>("v"), g = f.read_array<TestType, 4>("gk"),
               dout = f.read_array<TestType, 4>("do");
    using S = linattn::gla::State<TestType>;
    const auto h0 = S::from_tensor(f.read_array<typename S::value_type, 4>("h0").view());
    const auto dht = S::from_tensor(f.read_array<typename S::value_type, 4>("dht").view());
    std::vector<std::int64_t> cu;
    if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
    linattn::gla::Options opt;  // scale: K^-1/2 (the metadata's is rounded to 4 digits)
    opt.cu_seqlens = cu;
    for (const auto& [form, chunk] : {std::pair{Form::recurrent, 64}, {Form::chunk, 64}, {Form::chunk, 5}}) {
      CAPTURE(form_name(form), chunk);
      opt.chunk_size = chunk;
      GLAGrads<TestType> gr(q.shape(), v.shape());
      gla_backward(form, q, k, v, g, dout, &h0, &dht, gr, opt);
      for (const auto& [name, got] : {std::pair{"dq", &gr.dq}, {"dk", &gr.dk}, {"dv", &gr.dv}, {"dgk", &gr.dgk}}) {
        const auto want = f.read_array<double, 4>(name);
        INFO(name);
        CHECK(ref::rel_err(got->data(), want.data(), want.numel()) <= tol);
      }
      const auto dh0 = f.read_array<double, 4>("dh0");
      CHECK(ref::rel_err(gr.dh0.data(), dh0.data(), dh0.numel()) <= tol);
    }
  }
}

TEST_CASE("GLA backward equals central finite differences in double", "[gla][grad]") {
  std::mt19937_64 rng(7);
  struct Case {
    index_t B, T, H, K, V;
    bool h0, dht, varlen;
  };
  for (const Case c : {Case{1, 5, 1, 3, 4, true, true, false}, Case{2, 4, 2, 2, 3, false, true, false},
                       Case{1, 6, 1, 2, 2, true, false, false}, Case{1, 9, 2, 3, 2, true, true, true},
                       Case{1, 1, 1, 4, 4, false, false, false}}) {
    CAPTURE(c.B, c.T, c.H, c.K, c.V, c.h0, c.dht, c.varlen);
    std::vector<std::int64_t> cu;
    if (c.varlen) cu = {0, 2, 2, 9};  // an empty sequence too
    const index_t N = c.varlen ? 3 : c.B;
    auto q = ref::normal<double, 4>({c.B, c.T, c.H, c.K}, rng), k = ref::normal<double, 4>({c.B, c.T, c.H, c.K}, rng),
         v = ref::normal<double, 4>({c.B, c.T, c.H, c.V}, rng), g = ref::normal<double, 4>({c.B, c.T, c.H, c.K}, rng),
         dout = ref::normal<double, 4>({c.B, c.T, c.H, c.V}, rng);
    for (auto& x : g.vector()) x = -std::abs(x);  // log gates <= 0
    linattn::gla::State<double> h0(N, c.H, c.K, c.V), dht(N, c.H, c.K, c.V);
    for (index_t i = 0; i < h0.numel(); ++i) {
      h0.data()[i] = std::normal_distribution<double>()(rng);
      dht.data()[i] = std::normal_distribution<double>()(rng);
    }
    linattn::gla::Options opt;
    opt.cu_seqlens = cu;
    opt.chunk_size = 2;  // several chunks even at these lengths
    const auto* h0p = c.h0 ? &h0 : nullptr;
    const auto* dhtp = c.dht ? &dht : nullptr;
    const auto loss = [&] { return gla_loss(q, k, v, g, dout, h0p, dhtp, opt); };
    for (const Form form : {Form::recurrent, Form::chunk}) {
      CAPTURE(form_name(form));
      GLAGrads<double> gr(q.shape(), v.shape());
      gla_backward(form, q, k, v, g, dout, h0p, dhtp, gr, opt);
      check_finite_differences(q.data(), gr.dq.data(), q.numel(), loss, "dq");
      check_finite_differences(k.data(), gr.dk.data(), k.numel(), loss, "dk");
      check_finite_differences(v.data(), gr.dv.data(), v.numel(), loss, "dv");
      check_finite_differences(g.data(), gr.dgk.data(), g.numel(), loss, "dgk");
      if (c.h0) check_finite_differences(h0.data(), gr.dh0.data(), h0.numel(), loss, "dh0");
    }
  }
}

TEST_CASE("GLA chunk backward equals the recurrent backward across chunk boundaries and extreme gates",
          "[gla][grad]") {
  std::mt19937_64 rng(13);
  const index_t H = 2, K = 20, V = 12;  // K, V: not multiples of anything the kernels tile by
  for (const index_t C : {16, 64}) {
    for (const index_t T : {index_t(1), C - 1, C, C + 1, index_t(300)}) {
      for (const double gate_scale : {0.0, 0.05, 1.0, 1e4}) {
        CAPTURE(C, T, gate_scale);
        auto q = ref::normal<double, 4>({1, T, H, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
             v = ref::normal<double, 4>({1, T, H, V}, rng), g = ref::normal<double, 4>({1, T, H, K}, rng),
             dout = ref::normal<double, 4>({1, T, H, V}, rng);
        // gate_scale 1e4: a third of the gates at -1e4 (decay underflows to 0), a third at 0.
        for (index_t i = 0; i < g.numel(); ++i)
          g.data()[i] = gate_scale < 1e3 ? -gate_scale * std::abs(g.data()[i]) : (i % 3 == 0 ? -1e4 : (i % 3 == 1 ? 0.0 : -3.0));
        linattn::gla::State<double> h0(1, H, K, V), dht(1, H, K, V);
        for (index_t i = 0; i < h0.numel(); ++i) {
          h0.data()[i] = std::normal_distribution<double>()(rng);
          dht.data()[i] = std::normal_distribution<double>()(rng);
        }
        linattn::gla::Options opt;
        opt.chunk_size = C;
        GLAGrads<double> rec(q.shape(), v.shape()), chk(q.shape(), v.shape());
        gla_backward(Form::recurrent, q, k, v, g, dout, &h0, &dht, rec, opt);
        gla_backward(Form::chunk, q, k, v, g, dout, &h0, &dht, chk, opt);
        for (const auto* a : {&chk.dq, &chk.dk, &chk.dv, &chk.dgk}) CHECK(all_finite(*a));
        CHECK(ref::rel_err(chk.dq.data(), rec.dq.data(), rec.dq.numel()) < 1e-10);
        CHECK(ref::rel_err(chk.dk.data(), rec.dk.data(), rec.dk.numel()) < 1e-10);
        CHECK(ref::rel_err(chk.dv.data(), rec.dv.data(), rec.dv.numel()) < 1e-10);
        CHECK(ref::rel_err(chk.dh0.data(), rec.dh0.data(), rec.dh0.numel()) < 1e-10);
        double dg_err = 0;
        for (index_t i = 0; i < rec.dgk.numel(); ++i)
          dg_err = std::max(dg_err, std::abs(chk.dgk.data()[i] - rec.dgk.data()[i]));
        const double term_scale = T * (max_abs(q) * max_abs(rec.dq) + max_abs(k) * max_abs(rec.dk));
        CHECK(dg_err <= 1e-10 * term_scale);
      }
    }
  }
}

TEST_CASE("GLA backward: prefix + continuation, absent states, in both forms", "[gla][grad]") {
  std::mt19937_64 rng(11);
  const index_t T = 40, H = 2, K = 8, V = 6, cut = 17;
  auto q = ref::normal<double, 4>({1, T, H, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
       v = ref::normal<double, 4>({1, T, H, V}, rng), g = ref::normal<double, 4>({1, T, H, K}, rng),
       dout = ref::normal<double, 4>({1, T, H, V}, rng);
  for (auto& x : g.vector()) x = -0.1 * std::abs(x);
  linattn::gla::State<double> dht(1, H, K, V);
  for (index_t i = 0; i < dht.numel(); ++i) dht.data()[i] = std::normal_distribution<double>()(rng);
  linattn::gla::Options opt;
  opt.chunk_size = 8;
  for (const Form form : {Form::recurrent, Form::chunk}) {
    CAPTURE(form_name(form));
    GLAGrads<double> whole(q.shape(), v.shape());
    gla_backward(form, q, k, v, g, dout, nullptr, &dht, whole, opt);

    // The continuation's dh0 is the prefix's dht.
    const auto part = [&](const Array<double, 4>& x, index_t t0, index_t t1) {
      Array<double, 4> out(Shape<4>{1, t1 - t0, H, x.size(3)});
      for (index_t t = t0; t < t1; ++t)
        for (index_t h = 0; h < H; ++h)
          for (index_t d = 0; d < x.size(3); ++d) out(0, t - t0, h, d) = x(0, t, h, d);
      return out;
    };
    const auto q1 = part(q, 0, cut), k1 = part(k, 0, cut), v1 = part(v, 0, cut), g1 = part(g, 0, cut), d1 = part(dout, 0, cut);
    const auto q2 = part(q, cut, T), k2 = part(k, cut, T), v2 = part(v, cut, T), g2 = part(g, cut, T), d2 = part(dout, cut, T);
    Array<double, 4> o1(Shape<4>{1, cut, H, V});
    linattn::gla::State<double> mid;
    linattn::gla::recurrent<double>(q1.view(), k1.view(), v1.view(), g1.view(), o1.view(), nullptr, &mid);
    GLAGrads<double> second(q2.shape(), v2.shape()), first(q1.shape(), v1.shape());
    gla_backward(form, q2, k2, v2, g2, d2, &mid, &dht, second, opt);
    gla_backward(form, q1, k1, v1, g1, d1, nullptr, &second.dh0, first, opt);
    for (index_t t = 0; t < T; ++t)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < K; ++d) {
          const auto& src = t < cut ? first : second;
          const index_t ts = t < cut ? t : t - cut;
          CHECK(src.dq(0, ts, h, d) == Approx(whole.dq(0, t, h, d)).epsilon(1e-12).margin(1e-13));
          CHECK(src.dk(0, ts, h, d) == Approx(whole.dk(0, t, h, d)).epsilon(1e-12).margin(1e-13));
          CHECK(src.dgk(0, ts, h, d) == Approx(whole.dgk(0, t, h, d)).epsilon(1e-12).margin(1e-12));
        }
    CHECK(ref::rel_err(first.dh0.data(), whole.dh0.data(), whole.dh0.numel()) < 1e-13);

    // Absent dht and h0 are zeros.
    linattn::gla::State<double> zeros(1, H, K, V);
    GLAGrads<double> a(q.shape(), v.shape()), b(q.shape(), v.shape());
    gla_backward(form, q, k, v, g, dout, nullptr, nullptr, a, opt);
    gla_backward(form, q, k, v, g, dout, &zeros, &zeros, b, opt);
    CHECK(a.dq == b.dq);
    CHECK(a.dgk == b.dgk);
    CHECK(a.dh0 == b.dh0);
  }
}

TEST_CASE("GLA backward rejects what the forward rejects", "[gla][grad]") {
  const Array<float, 4> q(Shape<4>{1, 4, 1, 3}), v(Shape<4>{1, 4, 1, 2}), dout_bad(Shape<4>{1, 4, 1, 5});
  GLAGrads<float> gr(q.shape(), v.shape());
  linattn::gla::Options opt;
  CHECK_THROWS_WITH(gla_backward(Form::chunk, q, q, v, q, dout_bad, nullptr, nullptr, gr, opt),
                    Catch::Contains("chunk_backward") && Catch::Contains("do"));
  opt.chunk_size = 0;
  CHECK_THROWS_WITH(gla_backward(Form::chunk, q, q, v, q, v, nullptr, nullptr, gr, opt), Catch::Contains("chunk_size"));
}

// ---- HGRN ------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("HGRN backward matches the golden gradients in both forms", "[hgrn][grad][golden]", float, double) {
  const auto files = grad_files("grad.hgrn");
  REQUIRE(files.size() >= 2);
  const double tol = std::is_same_v<TestType, float> ? 1e-4 : 1e-10;
  using Acc = linattn::acc_t<TestType>;
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    const auto x = f.read_array<TestType, 3>("x"), g = f.read_array<TestType, 3>("g"),
               dout = f.read_array<TestType, 3>("do");
    const auto h0 = linattn::hgrn::state_from_rows<TestType>(f.read_array<Acc, 2>("h0").cview()),
               dht = linattn::hgrn::state_from_rows<TestType>(f.read_array<Acc, 2>("dht").cview());
    for (const Form form : {Form::recurrent, Form::chunk}) {
      CAPTURE(form_name(form));
      Array<TestType, 3> dx(x.shape()), dg(x.shape());
      linattn::hgrn::State<TestType> dh0;
      const auto gates = linattn::hgrn::log_gates<TestType>(g.view());
      if (form == Form::recurrent)
        linattn::hgrn::recurrent_backward<TestType>(x.view(), gates, dout.view(), &h0, &dht, {dx.view(), dg.view(), &dh0});
      else
        linattn::hgrn::chunk_backward<TestType>(x.view(), gates, dout.view(), &h0, &dht, {dx.view(), dg.view(), &dh0});
      CHECK(ref::rel_err(dx.data(), f.read_array<double, 3>("dx").data(), dx.numel()) <= tol);
      CHECK(ref::rel_err(dg.data(), f.read_array<double, 3>("dg").data(), dg.numel()) <= tol);
      CHECK(ref::rel_err(dh0.data(), f.read_array<double, 2>("dh0").data(), dh0.numel()) <= tol);
    }
  }
}

TEST_CASE("HGRN backward: finite differences for log and linear gates, varlen", "[hgrn][grad]") {
  std::mt19937_64 rng(5);
  const index_t B = 1, T = 11, D = 300;  // two column blocks
  const std::vector<std::int64_t> cu = {0, 4, 4, 11};
  auto x = ref::normal<double, 3>({B, T, D}, rng), raw = ref::normal<double, 3>({B, T, D}, rng),
       dout = ref::normal<double, 3>({B, T, D}, rng);
  linattn::hgrn::State<double> h0 = linattn::hgrn::zero_state<double>(3, D), dht = linattn::hgrn::zero_state<double>(3, D);
  for (auto* s : {&h0, &dht})
    for (index_t i = 0; i < s->numel(); ++i) s->data()[i] = std::normal_distribution<double>()(rng);
  linattn::hgrn::Options opt;
  opt.cu_seqlens = cu;
  for (const bool linear : {false, true}) {
    CAPTURE(linear);
    Array<double, 3> gate(raw.shape());
    for (index_t i = 0; i < gate.numel(); ++i) {
      const double logsig = -std::log1p(std::exp(-raw.data()[i]));
      gate.data()[i] = linear ? std::exp(logsig) : logsig;
    }
    const auto loss = [&] {
      Array<double, 3> o(x.shape());
      linattn::hgrn::State<double> ht;
      if (linear)
        linattn::hgrn::recurrent<double>(x.view(), linattn::hgrn::linear_gates<double>(gate.view()), o.view(), &h0, &ht, opt);
      else
        linattn::hgrn::recurrent<double>(x.view(), linattn::hgrn::log_gates<double>(gate.view()), o.view(), &h0, &ht, opt);
      double L = 0;
      for (index_t i = 0; i < o.numel(); ++i) L += o.data()[i] * dout.data()[i];
      for (index_t i = 0; i < ht.numel(); ++i) L += ht.data()[i] * dht.data()[i];
      return L;
    };
    const auto run = [&](Form form, Array<double, 3>& ddx, Array<double, 3>& ddg, linattn::hgrn::State<double>& ddh0,
                         const linattn::hgrn::Options& o) {
      const linattn::hgrn::Gradients<double> grads{ddx.view(), ddg.view(), &ddh0};
      const auto call = [&](const auto& gates) {
        if (form == Form::recurrent) linattn::hgrn::recurrent_backward<double>(x.view(), gates, dout.view(), &h0, &dht, grads, o);
        else linattn::hgrn::chunk_backward<double>(x.view(), gates, dout.view(), &h0, &dht, grads, o);
      };
      if (linear) call(linattn::hgrn::linear_gates<double>(gate.view()));
      else call(linattn::hgrn::log_gates<double>(gate.view()));
    };
    Array<double, 3> dx(x.shape()), dg(x.shape());
    linattn::hgrn::State<double> dh0;
    run(Form::recurrent, dx, dg, dh0, opt);
    // L sums ~3300 terms of size ~10: eps 1e-5 keeps the difference quotients' rounding ~1e-9.
    check_finite_differences(x.data(), dx.data(), x.numel(), loss, "dx", 1e-5, 7, 5e-8);
    check_finite_differences(gate.data(), dg.data(), gate.numel(), loss, "dg", 1e-5, 7, 5e-8);
    check_finite_differences(h0.data(), dh0.data(), h0.numel(), loss, "dh0", 1e-5, 5, 5e-8);
    // The chunk form's backward is the same sweep (K = 1: no products to chunk).
    Array<double, 3> dx2(x.shape()), dg2(x.shape());
    linattn::hgrn::State<double> dh02;
    run(Form::chunk, dx2, dg2, dh02, opt);
    CHECK(dx2 == dx);
    CHECK(dg2 == dg);
    CHECK(dh02 == dh0);
  }
}

// ---- GSA -------------------------------------------------------------------------------------

namespace {

template <class T>
struct GSAGrads {
  Array<T, 4> dq, dk, dv, ds, dg;
  linattn::gsa::State<T> dh0;
  GSAGrads(const Shape<4>& qs, const Shape<4>& ks, const Shape<4>& vs, const Shape<4>& ss)
      : dq(qs), dk(ks), dv(vs), ds(ss), dg(ss) {}
  linattn::gsa::Gradients<T> views() { return {dq.view(), dk.view(), dv.view(), ds.view(), dg.view(), &dh0}; }
};

template <class T>
void gsa_backward(Form form, const Array<T, 4>& q, const Array<T, 4>& k, const Array<T, 4>& v, const Array<T, 4>& s,
                  linattn::TensorView<const T, 4> g, const Array<T, 4>& dout, const linattn::gsa::State<T>* h0,
                  const linattn::gsa::State<T>* dht, GSAGrads<T>& gr, const linattn::gsa::Options& opt) {
  if (form == Form::recurrent)
    linattn::gsa::recurrent_backward<T>(q.view(), k.view(), v.view(), s.view(), g, dout.view(), h0, dht, gr.views(), opt);
  else
    linattn::gsa::chunk_backward<T>(q.view(), k.view(), v.view(), s.view(), g, dout.view(), h0, dht, gr.views(), opt);
}

}  // namespace

TEMPLATE_TEST_CASE("GSA backward matches the golden gradients in both forms", "[gsa][grad][golden]", float, double) {
  const auto files = grad_files("grad.gsa");
  REQUIRE(files.size() >= 4);
  const double tol = std::is_same_v<TestType, float> ? 1e-4 : 1e-10;
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    const auto q = f.read_array<TestType, 4>("q"), k = f.read_array<TestType, 4>("k"),
               v = f.read_array<TestType, 4>("v"), s = f.read_array<TestType, 4>("s"),
               g = f.read_array<TestType, 4>("g"), dout = f.read_array<TestType, 4>("do");
    const index_t N = k.size(0), H = k.size(2), K = k.size(3), V = v.size(3), M = s.size(3);
    linattn::gsa::State<TestType> h0(N, H, K, M, V), dht(N, H, K, M, V);
    h0.hk = linattn::RecurrentState<TestType>::from_tensor(f.read_array<TestType, 4>("hk0").view());
    h0.hv = linattn::RecurrentState<TestType>::from_tensor(f.read_array<TestType, 4>("hv0").view());
    dht.hk = linattn::RecurrentState<TestType>::from_tensor(f.read_array<TestType, 4>("dhkt").view());
    dht.hv = linattn::RecurrentState<TestType>::from_tensor(f.read_array<TestType, 4>("dhvt").view());
    linattn::gsa::Options opt;
    opt.scale = std::stod(f.metadata_value("scale").value_or("1"));
    if (*opt.scale != 1.0) opt.scale.reset();  // K^-1/2, rounded in the metadata
    for (const auto& [form, chunk] : {std::pair{Form::recurrent, 64}, {Form::chunk, 64}, {Form::chunk, 5}}) {
      CAPTURE(form_name(form), chunk);
      opt.chunk_size = chunk;
      GSAGrads<TestType> gr(q.shape(), k.shape(), v.shape(), s.shape());
      gsa_backward<TestType>(form, q, k, v, s, g.view(), dout, &h0, &dht, gr, opt);
      for (const auto& [name, got] :
           {std::pair{"dq", &gr.dq}, {"dk", &gr.dk}, {"dv", &gr.dv}, {"ds", &gr.ds}, {"dg", &gr.dg}}) {
        const auto want = f.read_array<double, 4>(name);
        INFO(name);
        CHECK(ref::rel_err(got->data(), want.data(), want.numel()) <= tol);
      }
      const auto dhk0 = f.read_array<double, 4>("dhk0"), dhv0 = f.read_array<double, 4>("dhv0");
      CHECK(ref::rel_err(gr.dh0.hk.data(), dhk0.data(), dhk0.numel()) <= tol);
      CHECK(ref::rel_err(gr.dh0.hv.data(), dhv0.data(), dhv0.numel()) <= tol);
    }
  }
}

TEST_CASE("GSA backward equals central finite differences (GQA, varlen, no gate)", "[gsa][grad]") {
  std::mt19937_64 rng(3);
  struct Case {
    index_t HQ, H;
    bool gate, varlen, h0;
  };
  for (const Case c : {Case{2, 1, true, false, true}, Case{1, 1, false, false, false}, Case{2, 2, false, true, false},
                       Case{4, 2, true, true, true}}) {
    CAPTURE(c.HQ, c.H, c.gate, c.varlen, c.h0);
    const index_t B = 1, T = 7, K = 3, V = 2, M = 3;
    std::vector<std::int64_t> cu;
    if (c.varlen) cu = {0, 3, 3, 7};
    const index_t N = c.varlen ? 3 : B;
    auto q = ref::normal<double, 4>({B, T, c.HQ, K}, rng), k = ref::normal<double, 4>({B, T, c.H, K}, rng),
         v = ref::normal<double, 4>({B, T, c.H, V}, rng), s = ref::normal<double, 4>({B, T, c.H, M}, rng),
         g = ref::normal<double, 4>({B, T, c.H, M}, rng), dout = ref::normal<double, 4>({B, T, c.HQ, V}, rng);
    for (auto& x : g.vector()) x = -0.3 * std::abs(x);
    linattn::gsa::State<double> h0(N, c.H, K, M, V), dht(N, c.H, K, M, V);
    for (auto* st : {&h0.hk, &h0.hv, &dht.hk, &dht.hv})
      for (index_t i = 0; i < st->numel(); ++i) st->data()[i] = std::normal_distribution<double>()(rng);
    linattn::gsa::Options opt;
    opt.cu_seqlens = cu;
    opt.scale = 0.7;
    opt.chunk_size = 2;  // several chunks
    const auto* h0p = c.h0 ? &h0 : nullptr;
    const auto gv = [&] { return c.gate ? linattn::TensorView<const double, 4>(g.view()) : linattn::TensorView<const double, 4>(); };
    const auto loss = [&] {
      Array<double, 4> o(dout.shape());
      linattn::gsa::State<double> ht;
      linattn::gsa::recurrent<double>(q.view(), k.view(), v.view(), s.view(), gv(), o.view(), h0p, &ht, opt);
      double L = 0;
      for (index_t i = 0; i < o.numel(); ++i) L += o.data()[i] * dout.data()[i];
      for (index_t i = 0; i < ht.hk.numel(); ++i) L += ht.hk.data()[i] * dht.hk.data()[i];
      for (index_t i = 0; i < ht.hv.numel(); ++i) L += ht.hv.data()[i] * dht.hv.data()[i];
      return L;
    };
    for (const Form form : {Form::recurrent, Form::chunk}) {
      CAPTURE(form_name(form));
      GSAGrads<double> gr(q.shape(), k.shape(), v.shape(), s.shape());
      gsa_backward<double>(form, q, k, v, s, gv(), dout, h0p, &dht, gr, opt);
      check_finite_differences(q.data(), gr.dq.data(), q.numel(), loss, "dq");
      check_finite_differences(k.data(), gr.dk.data(), k.numel(), loss, "dk");
      check_finite_differences(v.data(), gr.dv.data(), v.numel(), loss, "dv");
      check_finite_differences(s.data(), gr.ds.data(), s.numel(), loss, "ds");
      if (c.gate) check_finite_differences(g.data(), gr.dg.data(), g.numel(), loss, "dg");
      if (c.h0) {
        check_finite_differences(h0.hk.data(), gr.dh0.hk.data(), h0.hk.numel(), loss, "dh0.hk");
        check_finite_differences(h0.hv.data(), gr.dh0.hv.data(), h0.hv.numel(), loss, "dh0.hv");
      }
    }
  }
}

TEST_CASE("GSA chunk backward equals the recurrent backward (GQA, chunk boundaries, extreme gates)",
          "[gsa][grad]") {
  std::mt19937_64 rng(17);
  const index_t HQ = 4, H = 2, K = 10, V = 9, M = 12;
  const index_t C = 16;
  for (const index_t T : {index_t(1), C - 1, C, C + 1, index_t(300)}) {
    for (const double gate_scale : {0.0, 0.3, 1e4}) {
      CAPTURE(T, gate_scale);
      auto q = ref::normal<double, 4>({1, T, HQ, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
           v = ref::normal<double, 4>({1, T, H, V}, rng), s = ref::normal<double, 4>({1, T, H, M}, rng),
           g = ref::normal<double, 4>({1, T, H, M}, rng), dout = ref::normal<double, 4>({1, T, HQ, V}, rng);
      for (index_t i = 0; i < g.numel(); ++i)
        g.data()[i] = gate_scale < 1e3 ? -gate_scale * std::abs(g.data()[i]) : (i % 3 == 0 ? -1e4 : (i % 3 == 1 ? 0.0 : -3.0));
      linattn::gsa::State<double> h0(1, H, K, M, V), dht(1, H, K, M, V);
      for (auto* st : {&h0.hk, &h0.hv, &dht.hk, &dht.hv})
        for (index_t i = 0; i < st->numel(); ++i) st->data()[i] = std::normal_distribution<double>()(rng);
      linattn::gsa::Options opt;
      opt.chunk_size = C;
      GSAGrads<double> rec(q.shape(), k.shape(), v.shape(), s.shape()), chk = rec;
      gsa_backward<double>(Form::recurrent, q, k, v, s, g.view(), dout, &h0, &dht, rec, opt);
      gsa_backward<double>(Form::chunk, q, k, v, s, g.view(), dout, &h0, &dht, chk, opt);
      for (const auto* a : {&chk.dq, &chk.dk, &chk.dv, &chk.ds, &chk.dg}) CHECK(all_finite(*a));
      CHECK(ref::rel_err(chk.dq.data(), rec.dq.data(), rec.dq.numel()) < 1e-10);
      CHECK(ref::rel_err(chk.dk.data(), rec.dk.data(), rec.dk.numel()) < 1e-10);
      CHECK(ref::rel_err(chk.dv.data(), rec.dv.data(), rec.dv.numel()) < 1e-10);
      CHECK(ref::rel_err(chk.dh0.hk.data(), rec.dh0.hk.data(), rec.dh0.hk.numel()) < 1e-10);
      CHECK(ref::rel_err(chk.dh0.hv.data(), rec.dh0.hv.data(), rec.dh0.hv.numel()) < 1e-10);
      // ds and dg carry the reverse cumulative sums of both passes (see max_abs above).
      const double term_scale = T * (max_abs(rec.ds) + max_abs(rec.dv) * max_abs(v) + max_abs(rec.dq) * max_abs(q) + 1.0);
      for (const auto& [got, want] : {std::pair{&chk.ds, &rec.ds}, {&chk.dg, &rec.dg}}) {
        double err = 0;
        for (index_t i = 0; i < want->numel(); ++i) err = std::max(err, std::abs(got->data()[i] - want->data()[i]));
        CHECK(err <= 1e-10 * term_scale);
      }
    }
  }
}

// ---- BitLinear (straight-through) ------------------------------------------------------------

TEST_CASE("TrainableBitLinear backward matches the golden straight-through gradients", "[bitlinear][grad][golden]") {
  const auto files = grad_files("grad.bitlinear");
  REQUIRE(files.size() >= 2);
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    const auto x = f.read_array<float, 2>("x"), W = f.read_array<float, 2>("W"), dy = f.read_array<float, 2>("dy");
    linattn::nn::TrainableBitLinearOptions opt;
    opt.eps = std::stof(f.metadata_value("eps").value());
    const auto formula = f.metadata_value("formula").value();
    opt.activation_rounding = formula.find("activations per-row absmax int8 (round half away") != std::string::npos
                                  ? linattn::ternary::Rounding::half_away_from_zero
                                  : linattn::ternary::Rounding::half_to_even;
    const linattn::nn::TrainableBitLinear layer(W, f.read<float>("norm_w"), opt);
    Array<float, 2> y(Shape<2>{x.size(0), W.size(0)});
    linattn::nn::BitLinearSaved saved;
    layer.forward(x.cview(), y.view(), &saved);
    CHECK(ref::rel_err(y.data(), f.read_array<double, 2>("y").data(), y.numel()) <= 1e-4);
    linattn::nn::BitLinearGradients g;
    layer.backward(saved, dy.cview(), g);
    CHECK(ref::rel_err(g.dx.data(), f.read_array<double, 2>("dx").data(), g.dx.numel()) <= 1e-4);
    CHECK(ref::rel_err(g.dweight.data(), f.read_array<double, 2>("dW").data(), g.dweight.numel()) <= 1e-4);
    CHECK(ref::rel_err(g.dnorm_weight.data(), f.read<double>("dnorm_w").data(),
                       static_cast<index_t>(g.dnorm_weight.size())) <= 1e-4);
  }
}

TEST_CASE("TrainableBitLinear: the streaming (few tokens) and blocked (many) products agree", "[bitlinear][grad]") {
  // Rows one at a time take the int8-streaming kernels, the batch of 9 the blocked GEMMs; the
  // batch is checked against the golden gradients above, so each row alone must match it.
  std::mt19937_64 rng(23);
  const index_t N = 9, in = 70, out = 45;  // widths not multiples of the 16-lane loops or 32-row blocks
  const auto W = ref::normal<float, 2>({out, in}, rng), x = ref::normal<float, 2>({N, in}, rng),
             dy = ref::normal<float, 2>({N, out}, rng);
  std::vector<float> norm_w(static_cast<std::size_t>(in));
  for (auto& w : norm_w) w = 1.0f + 0.1f * std::normal_distribution<float>()(rng);
  const linattn::nn::TrainableBitLinear layer(W, norm_w);
  Array<float, 2> y(Shape<2>{N, out});
  linattn::nn::BitLinearSaved saved;
  layer.forward(x.cview(), y.view(), &saved);
  linattn::nn::BitLinearGradients batch;
  layer.backward(saved, dy.cview(), batch);
  std::vector<double> dw_sum(static_cast<std::size_t>(out * in), 0.0);
  for (index_t n = 0; n < N; ++n) {
    const linattn::TensorView<const float, 2> xn(x.data() + n * in, {1, in}), dyn(dy.data() + n * out, {1, out});
    Array<float, 2> yn(Shape<2>{1, out});
    linattn::nn::BitLinearSaved sn;
    layer.forward(xn, yn.view(), &sn);
    linattn::nn::BitLinearGradients gn;
    layer.backward(sn, dyn, gn);
    CHECK(ref::rel_err(yn.data(), y.data() + n * out, out) < 1e-5);
    CHECK(ref::rel_err(gn.dx.data(), batch.dx.data() + n * in, in) < 1e-5);
    for (index_t i = 0; i < out * in; ++i) dw_sum[static_cast<std::size_t>(i)] += gn.dweight.data()[i];
  }
  CHECK(ref::rel_err(dw_sum.data(), batch.dweight.data(), out * in) < 1e-5);
}

TEST_CASE("Chunk backward reads and writes strided views", "[gla][gsa][grad]") {
  // Each tensor is the first D columns of a wider [B, T, H, D + 3] buffer: the row strides are
  // not the dense ones, and the gradients must equal those of dense copies.
  std::mt19937_64 rng(29);
  const index_t T = 37, H = 2, K = 6, V = 5, M = 4;
  const auto wide = [&](index_t D) { return ref::normal<double, 4>({1, T, H, D + 3}, rng); };
  const auto narrow = [](Array<double, 4>& a, index_t D) {
    return linattn::TensorView<double, 4>(a.data(), {1, T, H, D}, {a.view().stride(0), a.view().stride(1), a.view().stride(2), 1});
  };
  const auto dense = [](linattn::TensorView<double, 4> v) {
    Array<double, 4> out(v.shape());
    for (index_t t = 0; t < v.size(1); ++t)
      for (index_t h = 0; h < v.size(2); ++h)
        for (index_t d = 0; d < v.size(3); ++d) out(0, t, h, d) = v(0, t, h, d);
    return out;
  };
  auto q = wide(K), k = wide(K), v = wide(V), g = wide(K), dout = wide(V), s = wide(M), gs = wide(M), doutg = wide(V);
  for (auto* a : {&g, &gs})
    for (auto& x : a->vector()) x = -0.2 * std::abs(x);
  linattn::gla::Options opt;
  opt.chunk_size = 8;
  {
    auto dq = wide(K), dk = wide(K), dv = wide(V), dg = wide(K);
    linattn::gla::State<double> dh0;
    linattn::gla::chunk_backward<double>(narrow(q, K), narrow(k, K), narrow(v, V), narrow(g, K), narrow(dout, V), nullptr,
                                         nullptr, {narrow(dq, K), narrow(dk, K), narrow(dv, V), narrow(dg, K), &dh0}, opt);
    const auto qd = dense(narrow(q, K)), kd = dense(narrow(k, K)), vd = dense(narrow(v, V)), gd = dense(narrow(g, K)),
               dd = dense(narrow(dout, V));
    GLAGrads<double> ref_grads(qd.shape(), vd.shape());
    gla_backward(Form::chunk, qd, kd, vd, gd, dd, nullptr, nullptr, ref_grads, opt);
    CHECK(dense(narrow(dq, K)) == ref_grads.dq);
    CHECK(dense(narrow(dk, K)) == ref_grads.dk);
    CHECK(dense(narrow(dv, V)) == ref_grads.dv);
    CHECK(dense(narrow(dg, K)) == ref_grads.dgk);
  }
  {
    linattn::gsa::Options gopt;
    gopt.chunk_size = 8;
    auto dq = wide(K), dk = wide(K), dv = wide(V), ds = wide(M), dg = wide(M);
    linattn::gsa::State<double> dh0;
    linattn::gsa::chunk_backward<double>(narrow(q, K), narrow(k, K), narrow(v, V), narrow(s, M), narrow(gs, M),
                                         narrow(doutg, V), nullptr, nullptr,
                                         {narrow(dq, K), narrow(dk, K), narrow(dv, V), narrow(ds, M), narrow(dg, M), &dh0}, gopt);
    const auto qd = dense(narrow(q, K)), kd = dense(narrow(k, K)), vd = dense(narrow(v, V)), sd = dense(narrow(s, M)),
               gd = dense(narrow(gs, M)), dd = dense(narrow(doutg, V));
    GSAGrads<double> ref_grads(qd.shape(), kd.shape(), vd.shape(), sd.shape());
    gsa_backward<double>(Form::chunk, qd, kd, vd, sd, gd.view(), dd, nullptr, nullptr, ref_grads, gopt);
    CHECK(dense(narrow(dq, K)) == ref_grads.dq);
    CHECK(dense(narrow(dk, K)) == ref_grads.dk);
    CHECK(dense(narrow(ds, M)) == ref_grads.ds);
    CHECK(dense(narrow(dg, M)) == ref_grads.dg);
  }
}

TEST_CASE("GLA chunk backward from the forward's saved chunk states equals the recomputing one", "[gla][grad]") {
  std::mt19937_64 rng(31);
  const index_t T = 90, H = 2, K = 7, V = 9;
  const std::vector<std::int64_t> cu = {0, 33, 33, 90};  // an empty sequence too
  auto q = ref::normal<double, 4>({1, T, H, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
       v = ref::normal<double, 4>({1, T, H, V}, rng), g = ref::normal<double, 4>({1, T, H, K}, rng),
       dout = ref::normal<double, 4>({1, T, H, V}, rng);
  for (auto& x : g.vector()) x = -0.3 * std::abs(x);
  linattn::gla::State<double> h0(3, H, K, V), dht(3, H, K, V);
  for (auto* st : {&h0, &dht})
    for (index_t i = 0; i < st->numel(); ++i) st->data()[i] = std::normal_distribution<double>()(rng);
  for (const index_t C : {16, 5, 64}) {
    CAPTURE(C);
    linattn::gla::Options opt;
    opt.cu_seqlens = cu;
    opt.chunk_size = C;
    Array<double, 4> o(v.shape());
    linattn::gla::ChunkStates<double> saved;
    linattn::gla::chunk_train<double>(q.view(), k.view(), v.view(), g.view(), o.view(), &h0, nullptr, saved, opt);
    CHECK(saved.bytes() == sizeof(double) * static_cast<std::size_t>(((33 + C - 1) / C + 1 + 1 + (57 + C - 1) / C + 1) * H * K * V));
    GLAGrads<double> kept(q.shape(), v.shape()), recomputed(q.shape(), v.shape());
    linattn::gla::chunk_backward<double>(q.view(), k.view(), v.view(), g.view(), dout.view(), &h0, &dht, kept.views(), opt,
                                         &saved);
    gla_backward(Form::chunk, q, k, v, g, dout, &h0, &dht, recomputed, opt);
    CHECK(ref::rel_err(kept.dq.data(), recomputed.dq.data(), kept.dq.numel()) < 1e-12);
    CHECK(ref::rel_err(kept.dk.data(), recomputed.dk.data(), kept.dk.numel()) < 1e-12);
    CHECK(ref::rel_err(kept.dv.data(), recomputed.dv.data(), kept.dv.numel()) < 1e-12);
    CHECK(ref::rel_err(kept.dgk.data(), recomputed.dgk.data(), kept.dgk.numel()) < 1e-12);
    CHECK(ref::rel_err(kept.dh0.data(), recomputed.dh0.data(), kept.dh0.numel()) < 1e-12);
    // In-place prefill (initial_state == final_state) overwrites h0; the saved states hold it,
    // so the backward from them needs no initial_state.
    linattn::gla::State<double> st = h0;
    linattn::gla::ChunkStates<double> saved_in_place;
    Array<double, 4> o_in_place(v.shape());
    linattn::gla::chunk_train<double>(q.view(), k.view(), v.view(), g.view(), o_in_place.view(), &st, &st,
                                      saved_in_place, opt);
    CHECK(o_in_place == o);
    CHECK(st != h0);
    GLAGrads<double> in_place(q.shape(), v.shape());
    linattn::gla::chunk_backward<double>(q.view(), k.view(), v.view(), g.view(), dout.view(), nullptr, &dht,
                                         in_place.views(), opt, &saved_in_place);
    CHECK(in_place.dq == kept.dq);
    CHECK(in_place.dk == kept.dk);
    CHECK(in_place.dgk == kept.dgk);
    CHECK(in_place.dh0 == kept.dh0);
    // States of another chunk size (or other inputs) are refused, not misread.
    linattn::gla::Options other = opt;
    other.chunk_size = C + 1;
    CHECK_THROWS_WITH(linattn::gla::chunk_backward<double>(q.view(), k.view(), v.view(), g.view(), dout.view(), &h0, &dht,
                                                           kept.views(), other, &saved),
                      Catch::Contains("saved chunk states") && Catch::Contains("chunk_size = " + std::to_string(C)));
  }
}
