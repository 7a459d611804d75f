// The ops' results do not depend on the thread count: every forward (one driver splits
// sequences, heads and, for GLA and HGRN, value columns) and every backward. Kept apart from
// the numerical tests so that the ThreadSanitizer build (which compiles only the files with
// [threads] tests) stays small.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "linattn/ops/gla.hpp"
#include "linattn/ops/gsa.hpp"
#include "linattn/ops/hgrn.hpp"
#include "support/reference.hpp"

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
using linattn::Threads;

namespace {

template <class State>
void fill_normal(State& st, std::mt19937_64& rng) {
  for (index_t i = 0; i < st.numel(); ++i) st.data()[i] = std::normal_distribution<double>()(rng);
}

}  // namespace

TEST_CASE("GSA forward and backward do not depend on the thread count (GQA, varlen, every form)", "[gsa][threads]") {
  std::mt19937_64 rng(3);
  const index_t T = 70, HQ = 6, H = 3, K = 10, V = 9, M = 12;
  const std::vector<std::int64_t> cu = {0, 25, 25, 70};
  auto q = ref::normal<double, 4>({1, T, HQ, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
       v = ref::normal<double, 4>({1, T, H, V}, rng), s = ref::normal<double, 4>({1, T, H, M}, rng),
       g = ref::normal<double, 4>({1, T, H, M}, rng), dout = ref::normal<double, 4>({1, T, HQ, V}, rng);
  for (auto& x : g.vector()) x = -0.3 * std::abs(x);
  linattn::gsa::State<double> h0(3, H, K, M, V);
  fill_normal(h0.hk, rng);
  fill_normal(h0.hv, rng);
  for (const int form : {0, 1, 2}) {  // recurrent, chunk, fused chunk
    CAPTURE(form);
    const auto forward = [&](int threads, Array<double, 4>& o, linattn::gsa::State<double>& ht) {
      linattn::gsa::Options opt;
      opt.cu_seqlens = cu;
      opt.chunk_size = 16;
      opt.threads = Threads{threads};
      if (form == 0) linattn::gsa::recurrent<double>(q.view(), k.view(), v.view(), s.view(), g.view(), o.view(), &h0, &ht, opt);
      else if (form == 1) linattn::gsa::chunk<double>(q.view(), k.view(), v.view(), s.view(), g.view(), o.view(), &h0, &ht, opt);
      else linattn::gsa::fused_chunk<double>(q.view(), k.view(), v.view(), s.view(), g.view(), o.view(), &h0, &ht, opt);
    };
    Array<double, 4> o1(dout.shape()), o3(dout.shape());
    linattn::gsa::State<double> ht1, ht3;
    forward(1, o1, ht1);
    forward(3, o3, ht3);
    CHECK(o1 == o3);
    CHECK(ht1 == ht3);
    if (form == 2) continue;  // the fused form's backward is the chunk form's
    const auto backward = [&](int threads) {
      std::vector<Array<double, 4>> out = {Array<double, 4>(q.shape()), Array<double, 4>(k.shape()),
                                           Array<double, 4>(v.shape()), Array<double, 4>(s.shape()),
                                           Array<double, 4>(s.shape())};
      linattn::gsa::State<double> dh0;
      const linattn::gsa::Gradients<double> grads{out[0].view(), out[1].view(), out[2].view(), out[3].view(),
                                                  out[4].view(), &dh0};
      linattn::gsa::Options opt;
      opt.cu_seqlens = cu;
      opt.chunk_size = 16;
      opt.threads = Threads{threads};
      if (form == 0)
        linattn::gsa::recurrent_backward<double>(q.view(), k.view(), v.view(), s.view(), g.view(), dout.view(), &h0, &ht1, grads, opt);
      else
        linattn::gsa::chunk_backward<double>(q.view(), k.view(), v.view(), s.view(), g.view(), dout.view(), &h0, &ht1, grads, opt);
      return std::pair{out, dh0};
    };
    const auto one = backward(1), two = backward(2);
    for (std::size_t i = 0; i < one.first.size(); ++i) CHECK(one.first[i] == two.first[i]);
    CHECK(one.second == two.second);
  }
}

TEST_CASE("GLA backward and the training forward do not depend on the thread count", "[gla][grad][threads]") {
  std::mt19937_64 rng(11);
  const index_t T = 60, H = 3, K = 8, V = 6;
  auto q = ref::normal<double, 4>({1, T, H, K}, rng), k = ref::normal<double, 4>({1, T, H, K}, rng),
       v = ref::normal<double, 4>({1, T, H, V}, rng), g = ref::normal<double, 4>({1, T, H, K}, rng),
       dout = ref::normal<double, 4>({1, T, H, V}, rng);
  for (auto& x : g.vector()) x = -0.1 * std::abs(x);
  linattn::gla::State<double> dht(1, H, K, V);
  fill_normal(dht, rng);
  for (const bool chunk : {false, true}) {
    CAPTURE(chunk);
    const auto run = [&](int threads) {
      linattn::gla::Options opt;
      opt.chunk_size = 8;
      opt.threads = Threads{threads};
      std::vector<Array<double, 4>> out = {Array<double, 4>(q.shape()), Array<double, 4>(q.shape()),
                                           Array<double, 4>(v.shape()), Array<double, 4>(q.shape())};
      linattn::gla::State<double> dh0;
      const linattn::gla::Gradients<double> grads{out[0].view(), out[1].view(), out[2].view(), out[3].view(), &dh0};
      if (!chunk) {
        linattn::gla::recurrent_backward<double>(q.view(), k.view(), v.view(), g.view(), dout.view(), nullptr, &dht, grads, opt);
        return std::pair{out, dh0};
      }
      Array<double, 4> o(v.shape());
      linattn::gla::ChunkStates<double> saved;
      linattn::gla::chunk_train<double>(q.view(), k.view(), v.view(), g.view(), o.view(), nullptr, nullptr, saved, opt);
      linattn::gla::chunk_backward<double>(q.view(), k.view(), v.view(), g.view(), dout.view(), nullptr, &dht, grads, opt,
                                           &saved);
      out.push_back(o);
      return std::pair{out, dh0};
    };
    const auto one = run(1), two = run(2);
    for (std::size_t i = 0; i < one.first.size(); ++i) CHECK(one.first[i] == two.first[i]);
    CHECK(one.second == two.second);
  }
}

TEST_CASE("HGRN forward and backward do not depend on the thread count", "[hgrn][grad][threads]") {
  std::mt19937_64 rng(5);
  const index_t T = 11, D = 300;  // more columns than one value block
  const std::vector<std::int64_t> cu = {0, 4, 4, 11};
  auto x = ref::normal<double, 3>({1, T, D}, rng), g = ref::normal<double, 3>({1, T, D}, rng),
       dout = ref::normal<double, 3>({1, T, D}, rng);
  for (auto& e : g.vector()) e = -std::log1p(std::exp(-e));  // log σ
  linattn::hgrn::State<double> h0 = linattn::hgrn::zero_state<double>(3, D), dht = linattn::hgrn::zero_state<double>(3, D);
  for (auto* s : {&h0, &dht})
    for (index_t i = 0; i < s->numel(); ++i) s->data()[i] = std::normal_distribution<double>()(rng);
  const auto gates = linattn::hgrn::log_gates<double>(g.view());
  for (const bool chunk : {false, true}) {
    CAPTURE(chunk);
    const auto run = [&](int threads) {
      linattn::hgrn::Options opt;
      opt.cu_seqlens = cu;
      opt.chunk_size = 4;
      opt.threads = Threads{threads};
      std::vector<Array<double, 3>> out(3, Array<double, 3>(x.shape()));
      linattn::hgrn::State<double> ht, dh0;
      const linattn::hgrn::Gradients<double> grads{out[1].view(), out[2].view(), &dh0};
      if (chunk) {
        linattn::hgrn::chunk<double>(x.view(), gates, out[0].view(), &h0, &ht, opt);
        linattn::hgrn::chunk_backward<double>(x.view(), gates, dout.view(), &h0, &dht, grads, opt);
      } else {
        linattn::hgrn::recurrent<double>(x.view(), gates, out[0].view(), &h0, &ht, opt);
        linattn::hgrn::recurrent_backward<double>(x.view(), gates, dout.view(), &h0, &dht, grads, opt);
      }
      return std::tuple{out, ht, dh0};
    };
    const auto one = run(1), three = run(3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(std::get<0>(one)[i] == std::get<0>(three)[i]);
    CHECK(std::get<1>(one) == std::get<1>(three));
    CHECK(std::get<2>(one) == std::get<2>(three));
  }
}
