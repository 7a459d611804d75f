// Straight-line reference implementations used only by the tests: the recurrences of SPEC.md
// written as plainly as possible, in long double, sharing no code with the library kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "linattn/core/tensor.hpp"

namespace ref {

using linattn::Array;
using linattn::index_t;

// GLA, SPEC §2 (optionally with a value-side gate, used for GSA's first pass):
// q,k,g [B,T,H,K], v [B,T,H,V], h0/ht [N,H,K,V]; cu empty => N = B.
template <class T>
void gla(const Array<T, 4>& q, const Array<T, 4>& k, const Array<T, 4>& v, const Array<T, 4>& g,
         double scale, const std::vector<std::int64_t>& cu, const Array<double, 4>* h0,
         Array<double, 4>& o, Array<double, 4>& ht) {
  const index_t B = q.size(0), T_ = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  std::vector<std::int64_t> bounds = cu;
  const index_t N = cu.empty() ? B : index_t(cu.size()) - 1;
  o = Array<double, 4>({B, T_, H, V});
  ht = Array<double, 4>({N, H, K, V});
  for (index_t n = 0; n < N; ++n) {
    const index_t b = cu.empty() ? n : 0;
    const index_t t0 = cu.empty() ? 0 : cu[n], t1 = cu.empty() ? T_ : cu[n + 1];
    for (index_t h = 0; h < H; ++h) {
      std::vector<long double> S(K * V, 0.0L);
      if (h0)
        for (index_t i = 0; i < K * V; ++i) S[i] = (*h0)(n, h, i / V, i % V);
      for (index_t t = t0; t < t1; ++t) {
        for (index_t i = 0; i < K; ++i) {
          const long double decay = std::exp((long double)g(b, t, h, i));
          for (index_t j = 0; j < V; ++j)
            S[i * V + j] = decay * S[i * V + j] + (long double)k(b, t, h, i) * (long double)v(b, t, h, j);
        }
        for (index_t j = 0; j < V; ++j) {
          long double acc = 0;
          for (index_t i = 0; i < K; ++i) acc += (long double)q(b, t, h, i) * scale * S[i * V + j];
          o(b, t, h, j) = (double)acc;
        }
      }
      for (index_t i = 0; i < K * V; ++i) ht(n, h, i / V, i % V) = (double)S[i];
    }
  }
}

// max |a - b| / max |b| over a whole tensor (the golden README's "rel err").
template <class A, class Bt>
double rel_err(const A* a, const Bt* b, index_t n) {
  double num = 0, den = 0;
  for (index_t i = 0; i < n; ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return den == 0 ? num : num / den;
}

template <class T, std::size_t R>
Array<T, R> normal(const linattn::Shape<R>& shape, std::mt19937_64& rng, double stddev = 1.0) {
  Array<T, R> a(shape);
  std::normal_distribution<double> d(0.0, stddev);
  for (auto& x : a.vector()) x = T(d(rng));
  return a;
}

// log-sigmoid(N(0,1)) / normaliser: the gate distribution of the GLA layer (SPEC §5.1).
template <class T, std::size_t R>
Array<T, R> gates(const linattn::Shape<R>& shape, std::mt19937_64& rng, double normaliser = 16.0) {
  Array<T, R> a(shape);
  std::normal_distribution<double> d(0.0, 1.0);
  for (auto& x : a.vector()) {
    const double z = d(rng);
    x = T(-std::log1p(std::exp(-z)) / normaliser);
  }
  return a;
}

template <class T, std::size_t R>
Array<T, R> uniform(const linattn::Shape<R>& shape, std::mt19937_64& rng, double lo, double hi) {
  Array<T, R> a(shape);
  std::uniform_real_distribution<double> d(lo, hi);
  for (auto& x : a.vector()) x = T(d(rng));
  return a;
}

}  // namespace ref
