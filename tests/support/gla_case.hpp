// Random GLA problems and the three library forms run on them, shared by the GLA tests.
#pragma once

#include <random>
#include <vector>

#include "linattn/ops/gla.hpp"
#include "support/reference.hpp"

namespace testing_gla {

using linattn::Array;
using linattn::index_t;

template <class T>
struct Problem {
  Array<T, 4> q, k, v, g;  // [B, T, H, K|V]
  linattn::gla::State<T> h0;
};

// Gate strength: 0 draws logsigmoid(N(0,1))/16 (the layer's gates); otherwise U[strength, 0].
template <class T>
Problem<T> make_problem(index_t B, index_t T_, index_t H, index_t K, index_t V, double strength,
                        std::uint64_t seed, index_t N = -1) {
  std::mt19937_64 rng(seed);
  Problem<T> p;
  p.q = ref::normal<T, 4>({B, T_, H, K}, rng);
  p.k = ref::normal<T, 4>({B, T_, H, K}, rng);
  p.v = ref::normal<T, 4>({B, T_, H, V}, rng);
  p.g = strength == 0 ? ref::gates<T, 4>({B, T_, H, K}, rng) : ref::uniform<T, 4>({B, T_, H, K}, rng, strength, 0.0);
  p.h0 = linattn::gla::State<T>(N < 0 ? B : N, H, K, V);
  std::normal_distribution<double> d(0.0, 1.0);
  for (index_t i = 0; i < p.h0.view().numel(); ++i) p.h0.data()[i] = static_cast<typename linattn::gla::State<T>::value_type>(d(rng));
  return p;
}

template <class T>
struct Result {
  Array<T, 4> o;
  linattn::gla::State<T> ht;
};

template <class T>
Result<T> run_recurrent(const Problem<T>& p, linattn::gla::Options opt = {}) {
  Result<T> r{Array<T, 4>({p.q.size(0), p.q.size(1), p.q.size(2), p.v.size(3)}), {}};
  linattn::gla::recurrent<T>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), r.o.view(), &p.h0, &r.ht, opt);
  return r;
}

template <class T>
Result<T> run_chunk(const Problem<T>& p, linattn::gla::Options opt = {}) {
  Result<T> r{Array<T, 4>({p.q.size(0), p.q.size(1), p.q.size(2), p.v.size(3)}), {}};
  linattn::gla::chunk<T>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), r.o.view(), &p.h0, &r.ht, opt);
  return r;
}

template <class T>
Result<T> run_fused(const Problem<T>& p, linattn::gla::Options opt = {}) {
  Result<T> r{Array<T, 4>({p.q.size(0), p.q.size(1), p.q.size(2), p.v.size(3)}), {}};
  linattn::gla::fused_chunk<T>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), r.o.view(), &p.h0, &r.ht, opt);
  return r;
}

// Token by token through gla::step (no cu_seqlens: the batch is the sequences).
template <class T>
Result<T> run_steps(const Problem<T>& p, double scale) {
  const index_t B = p.q.size(0), T_ = p.q.size(1), H = p.q.size(2), K = p.q.size(3), V = p.v.size(3);
  Result<T> r{Array<T, 4>({B, T_, H, V}), p.h0};
  for (index_t t = 0; t < T_; ++t) {
    // Views of row t of every batch entry: [B, H, D] with the batch stride of the full tensor.
    auto row = [&](const Array<T, 4>& a) {
      const auto v = a.view();
      return linattn::TensorView<const T, 3>(v.ptr(0, t), {B, H, a.size(3)}, {v.stride(0), v.stride(2), 1});
    };
    auto ov = r.o.view();
    linattn::TensorView<T, 3> orow(ov.ptr(0, t), {B, H, V}, {ov.stride(0), ov.stride(2), 1});
    linattn::gla::step<T>(row(p.q), row(p.k), row(p.v), row(p.g), orow, r.ht, {scale, {}});
    (void)K;
  }
  return r;
}

}  // namespace testing_gla
