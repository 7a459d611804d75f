// Random GSA problems and the three library forms run on them, shared by the GSA tests.
#pragma once

#include <random>
#include <vector>

#include "linattn/ops/gsa.hpp"
#include "support/reference.hpp"

namespace testing_gsa {

using linattn::Array;
using linattn::index_t;
using linattn::TensorView;

template <class T>
struct Problem {
  Array<T, 4> q, k, v, s, g;  // g may be empty (softmax-over-time fallback)
  linattn::gsa::State<T> h0;
};

// Gates as the GSA layer makes them (SPEC §5.2): f = logsigmoid(N(0,1)) / 8, s = 1 - e^f, g = f;
// strength != 0 draws g ~ U[strength, 0] instead (s stays 1 - e^g).
template <class T>
Problem<T> make_problem(index_t B, index_t T_, index_t HQ, index_t H, index_t K, index_t V, index_t M,
                        double strength, std::uint64_t seed, bool with_gate = true, index_t N = -1) {
  std::mt19937_64 rng(seed);
  Problem<T> p;
  p.q = ref::normal<T, 4>({B, T_, HQ, K}, rng);
  p.k = ref::normal<T, 4>({B, T_, H, K}, rng);
  p.v = ref::normal<T, 4>({B, T_, H, V}, rng);
  p.g = strength == 0 ? ref::gates<T, 4>({B, T_, H, M}, rng, 8.0) : ref::uniform<T, 4>({B, T_, H, M}, rng, strength, 0.0);
  p.s = Array<T, 4>(p.g.shape());
  for (index_t i = 0; i < p.s.numel(); ++i) p.s.data()[i] = T(1) - std::exp(p.g.data()[i]);
  if (!with_gate) {
    p.s = ref::normal<T, 4>({B, T_, H, M}, rng);  // slot logits for the softmax over time
    p.g = Array<T, 4>();
  }
  p.h0 = linattn::gsa::State<T>(N < 0 ? B : N, H, K, M, V);
  std::normal_distribution<double> d(0.0, 0.5);
  for (index_t i = 0; i < p.h0.hk.view().numel(); ++i) p.h0.hk.data()[i] = d(rng);
  for (index_t i = 0; i < p.h0.hv.view().numel(); ++i) p.h0.hv.data()[i] = d(rng);
  return p;
}

template <class T>
struct Result {
  Array<T, 4> o;
  linattn::gsa::State<T> ht;
};

template <class T>
TensorView<const T, 4> gate_view(const Problem<T>& p) {
  return p.g.numel() ? p.g.view() : TensorView<const T, 4>();
}

template <class T>
Result<T> run(int form, const Problem<T>& p, linattn::gsa::Options opt = {}, bool with_initial = true) {
  Result<T> r{Array<T, 4>({p.q.size(0), p.q.size(1), p.q.size(2), p.v.size(3)}), {}};
  const auto* h0 = with_initial ? &p.h0 : nullptr;
  // form: 0 recurrent, 1 chunk, 2 fused_chunk
  if (form == 1)
    linattn::gsa::chunk<T>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), r.o.view(), h0, &r.ht, opt);
  else if (form == 2)
    linattn::gsa::fused_chunk<T>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), r.o.view(), h0, &r.ht, opt);
  else
    linattn::gsa::recurrent<T>(p.q.view(), p.k.view(), p.v.view(), p.s.view(), gate_view(p), r.o.view(), h0, &r.ht, opt);
  return r;
}

// Token by token through gsa::step (no cu_seqlens).
template <class T>
Result<T> run_steps(const Problem<T>& p, std::optional<double> scale, bool with_initial = true) {
  const index_t B = p.q.size(0), T_ = p.q.size(1), HQ = p.q.size(2), V = p.v.size(3);
  Result<T> r{Array<T, 4>({B, T_, HQ, V}), p.h0};
  if (!with_initial) r.ht = linattn::gsa::State<T>(B, p.k.size(2), p.k.size(3), p.s.size(3), V);
  for (index_t t = 0; t < T_; ++t) {
    auto row = [&](const Array<T, 4>& a) {
      if (a.numel() == 0) return TensorView<const T, 3>();
      const auto w = a.view();
      return TensorView<const T, 3>(w.ptr(0, t), {B, a.size(2), a.size(3)}, {w.stride(0), w.stride(2), 1});
    };
    auto ov = r.o.view();
    TensorView<T, 3> orow(ov.ptr(0, t), {B, HQ, V}, {ov.stride(0), ov.stride(2), 1});
    linattn::gsa::step<T>(row(p.q), row(p.k), row(p.v), row(p.s), row(p.g), orow, r.ht, {scale, {}});
  }
  return r;
}

}  // namespace testing_gsa
