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

namespace ref {

// GSA, SPEC §3, written out token by token in long double. q [B,T,HQ,K], k [B,T,H,K],
// v [B,T,H,V], s/g [B,T,H,M] (g empty: g_t = 0 everywhere — callers that test the fallback use
// gsa_softmax_over_time instead). States hk [N,H,K,M], hv [N,H,M,V] per kv head.
template <class T>
void gsa(const Array<T, 4>& q, const Array<T, 4>& k, const Array<T, 4>& v, const Array<T, 4>& s,
         const Array<T, 4>& g, double scale, const std::vector<std::int64_t>& cu, const Array<double, 4>* hk0,
         const Array<double, 4>* hv0, Array<double, 4>& o, Array<double, 4>& hkt, Array<double, 4>& hvt) {
  const index_t B = q.size(0), T_ = q.size(1), HQ = q.size(2), K = q.size(3), H = k.size(2), V = v.size(3),
                M = s.size(3), G = HQ / H;
  const index_t N = cu.empty() ? B : index_t(cu.size()) - 1;
  o = Array<double, 4>({B, T_, HQ, V});
  hkt = Array<double, 4>({N, H, K, M});
  hvt = Array<double, 4>({N, H, M, V});
  for (index_t n = 0; n < N; ++n) {
    const index_t b = cu.empty() ? n : 0;
    const index_t t0 = cu.empty() ? 0 : cu[n], t1 = cu.empty() ? T_ : cu[n + 1];
    for (index_t hq = 0; hq < HQ; ++hq) {
      const index_t h = hq / G;
      std::vector<long double> Hk(K * M, 0.0L), Hv(M * V, 0.0L);
      if (hk0)
        for (index_t i = 0; i < K * M; ++i) Hk[i] = (*hk0)(n, h, i / M, i % M);
      if (hv0)
        for (index_t i = 0; i < M * V; ++i) Hv[i] = (*hv0)(n, h, i / V, i % V);
      for (index_t t = t0; t < t1; ++t) {
        std::vector<long double> a(M), ok(M, 0.0L);
        for (index_t m = 0; m < M; ++m) a[m] = g.numel() ? std::exp((long double)g(b, t, h, m)) : 1.0L;
        for (index_t i = 0; i < K; ++i)
          for (index_t m = 0; m < M; ++m)
            Hk[i * M + m] = Hk[i * M + m] * a[m] + (long double)k(b, t, h, i) * (long double)s(b, t, h, m);
        for (index_t m = 0; m < M; ++m)
          for (index_t i = 0; i < K; ++i) ok[m] += (long double)q(b, t, hq, i) * scale * Hk[i * M + m];
        long double mx = ok[0], sum = 0;
        for (auto x : ok) mx = std::max(mx, x);
        for (auto& x : ok) sum += (x = std::exp(x - mx));
        for (auto& x : ok) x /= sum;
        for (index_t m = 0; m < M; ++m)
          for (index_t j = 0; j < V; ++j)
            Hv[m * V + j] = Hv[m * V + j] * a[m] + (long double)s(b, t, h, m) * (long double)v(b, t, h, j);
        for (index_t j = 0; j < V; ++j) {
          long double acc = 0;
          for (index_t m = 0; m < M; ++m) acc += ok[m] * Hv[m * V + j];
          o(b, t, hq, j) = (double)acc;
        }
      }
      if (hq % G == 0) {
        for (index_t i = 0; i < K * M; ++i) hkt(n, h, i / M, i % M) = (double)Hk[i];
        for (index_t i = 0; i < M * V; ++i) hvt(n, h, i / V, i % V) = (double)Hv[i];
      }
    }
  }
}

// GSA's g-absent mode evaluated from its definition (zero initial state, B = 1 sequence per
// batch entry): with w_{τ,t}[m] = softmax over τ ≤ t of s_τ[m],
//   ok_t[m] = scale · q_t · Σ_τ w k_τ,   p_t = softmax_m(ok_t),   o_t = Σ_m p_t[m] Σ_τ w v_τ.
template <class T>
void gsa_softmax_over_time(const Array<T, 4>& q, const Array<T, 4>& k, const Array<T, 4>& v, const Array<T, 4>& s,
                           double scale, Array<double, 4>& o) {
  const index_t B = q.size(0), T_ = q.size(1), HQ = q.size(2), K = q.size(3), H = k.size(2), V = v.size(3),
                M = s.size(3), G = HQ / H;
  o = Array<double, 4>({B, T_, HQ, V});
  for (index_t b = 0; b < B; ++b)
    for (index_t hq = 0; hq < HQ; ++hq) {
      const index_t h = hq / G;
      for (index_t t = 0; t < T_; ++t) {
        std::vector<long double> ok(M, 0.0L), w(t + 1);
        std::vector<std::vector<long double>> slot_v(M, std::vector<long double>(V, 0.0L));
        for (index_t m = 0; m < M; ++m) {
          long double mx = -INFINITY, sum = 0;
          for (index_t tau = 0; tau <= t; ++tau) mx = std::max(mx, (long double)s(b, tau, h, m));
          for (index_t tau = 0; tau <= t; ++tau) sum += (w[tau] = std::exp((long double)s(b, tau, h, m) - mx));
          for (index_t tau = 0; tau <= t; ++tau) {
            const long double wt = w[tau] / sum;
            long double qk = 0;
            for (index_t i = 0; i < K; ++i) qk += (long double)q(b, t, hq, i) * (long double)k(b, tau, h, i);
            ok[m] += scale * wt * qk;
            for (index_t j = 0; j < V; ++j) slot_v[m][j] += wt * (long double)v(b, tau, h, j);
          }
        }
        long double mx = ok[0], sum = 0;
        for (auto x : ok) mx = std::max(mx, x);
        for (auto& x : ok) sum += (x = std::exp(x - mx));
        for (index_t j = 0; j < V; ++j) {
          long double acc = 0;
          for (index_t m = 0; m < M; ++m) acc += ok[m] / sum * slot_v[m][j];
          o(b, t, hq, j) = (double)acc;
        }
      }
    }
}

}  // namespace ref
