// The chunk form of the gated recurrence (SPEC §2, §3 "Chunk form"), as phases that the forward
// composes and the backward (chunk_backward.hpp) reuses. For a chunk of rows [0, L), r = L-1:
//   P_t = e^{G_t} = Π_{τ≤t} a_τ (prefix),   R_j = e^{G_r − G_j} = Π_{j<τ≤r} a_τ (suffix)
// key gate:   O  = (scale·Q ⊙ P) S_in + intra,        S_out = diag(P_r) S_in + (K ⊙ R)ᵀ V
// value gate: O  = ((scale·Q) S_in) ⊙ P + intra,      S_out = S_in diag(P_r) + Kᵀ (V ⊙ R)
// intra, per sub-chunk I = [i0, i1) of c rows:
//   earlier rows j < i0, reference ρ = G_{i0}: W_i = e^{G_i−ρ} (i ∈ I), U_j = e^{ρ−G_j} (j < i0)
//     key:   O_I += ((scale·Q_I ⊙ W)(K_{<i0} ⊙ U)ᵀ) V_{<i0}
//     value: O_I += ((scale·Q_I K_{<i0}ᵀ)(V_{<i0} ⊙ U)) ⊙ W
//   rows j ≤ i inside I element-wise, e^{G_i−G_j} as a running product from j to i.
//
// The phases, per chunk:
//   chunk_load_keys    k, v and the decays a, P, R of the chunk (what the state update reads);
//   chunk_output       one reader's output from the state entering the chunk: the inter-chunk
//                      product, the intra-chunk scores by sub-chunks, the diagonal blocks;
//   advance_state      the state leaving the chunk from the state entering it (also the
//                      backward's phase 1, which recomputes the chunk states).
// chunk_head is their composition over one (sequence, head) with one reader. GSA calls them
// with the query heads of a kv head as readers of one state, which is then advanced once.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "linattn/ops/gated_recurrence.hpp"

namespace linattn::detail::inline LINATTN_RECURRENCE_ISA {

// Sub-chunk length: SPEC §2 uses 16 (min(16, C)).
inline constexpr index_t kSubChunk = 16;

// P_t = Π_{τ≤t} a_τ and R_j = Π_{j<τ≤L-1} a_τ over rows [0, L) of a.
template <class Acc>
void prefix_suffix(const RowMatrix<Acc>& a, index_t L, RowMatrix<Acc>& P, RowMatrix<Acc>& R) {
  P.row(0) = a.row(0);
  for (index_t t = 1; t < L; ++t) P.row(t) = P.row(t - 1).cwiseProduct(a.row(t));
  R.row(L - 1).setOnes();
  for (index_t j = L - 2; j >= 0; --j) R.row(j) = R.row(j + 1).cwiseProduct(a.row(j + 1));
}

// W_i = Π_{i0<τ≤i0+i} a_τ for i in [0, c): the decays from row i0 to each later row (W_0 = 1),
// as running products, so no exponent is ever positive.
template <class Decay, class Acc>
void running_products(const Decay& a, index_t i0, index_t c, RowMatrix<Acc>& W) {
  W.row(0).setOnes();
  for (index_t i = 1; i < c; ++i) W.row(i) = W.row(i - 1).cwiseProduct(a.row(i0 + i));
}

// The decay factors of the sub-chunk [i0, i0 + c) against its reference ρ = G_{i0} (rows of
// `a` are per-token decays): rows [0, c) of W get W_i = Π_{i0<τ≤i0+i} a_τ, and, when i0 > 0,
// rows [0, i0) of U get U_j = Π_{j<τ≤i0} a_τ for the rows before the sub-chunk. Products of
// factors ≤ 1: no positive exponent (the forward's intra part and its backward both use them).
template <class Decay, class Acc>
void subchunk_factors(const Decay& a, index_t i0, index_t c, RowMatrix<Acc>& W, RowMatrix<Acc>& U) {
  running_products(a, i0, c, W);
  if (i0 == 0) return;
  U.row(i0 - 1) = a.row(i0);
  for (index_t j = i0 - 2; j >= 0; --j) U.row(j) = U.row(j + 1).cwiseProduct(a.row(j + 1));
}

// S [K, V] ← the state leaving a chunk of L rows, in place: the decay of the whole chunk
// (P's last row) on the gated axis, plus the chunk's rank-L update with the suffix decays R.
// k [L, K], v [L, V], P, R [L, Gw]; XR: an [L, Gw] scratch block for k ⊙ R or v ⊙ R.
template <GateAxis axis, class State, class Keys, class Values, class Prefix, class Suffix, class Scratch>
void advance_state(State&& S, const Keys& k, const Values& v, const Prefix& P, const Suffix& R, Scratch&& XR) {
  const index_t L = k.rows();
  if constexpr (axis == GateAxis::key) {
    XR = k.cwiseProduct(R);
    S.array().colwise() *= P.row(L - 1).transpose().array();  // diag(P_r) S
    S.noalias() += XR.transpose() * v;
  } else {
    XR = v.cwiseProduct(R);
    S.array().rowwise() *= P.row(L - 1).array();  // S diag(P_r)
    S.noalias() += k.transpose() * XR;
  }
}

template <class Acc>
struct ChunkWorkspace {
  // C = chunk rows, c = min(kSubChunk, C) sub-chunk rows, Gw = the gated width (K or V).
  RowMatrix<Acc> q, Qg;             // [C, K]  scale·q of the reader; q ⊙ P, q ⊙ W
  RowMatrix<Acc> k, v, O;           // [C, K], [C, V], [C, V]  keys, values, the reader's output
  RowMatrix<Acc> a, P, R, U;        // [C, Gw] decays, prefix and suffix products, U_j
  RowMatrix<Acc> Kg;                // [C, K (key gate) or V]  k ⊙ U / k ⊙ R, or v ⊙ U / v ⊙ R
  RowMatrix<Acc> A, W, tmp;         // [c, C], [c, Gw], [c, V]  sub-chunk scores and factors
  std::vector<Acc> elementwise;     // the K = 1 path's buffers
};

// Sizes the workspace for chunks of C rows of a [K, V] state.
template <GateAxis axis, class Acc>
void chunk_prepare(ChunkWorkspace<Acc>& ws, index_t C, index_t K, index_t V) {
  const index_t Gw = axis == GateAxis::key ? K : V;
  const index_t sub = std::min(kSubChunk, C);
  ws.q.resize(C, K);
  ws.Qg.resize(C, K);
  ws.k.resize(C, K);
  ws.v.resize(C, V);
  ws.O.resize(C, V);
  for (RowMatrix<Acc>* m : {&ws.a, &ws.P, &ws.R, &ws.U}) m->resize(C, Gw);
  ws.Kg.resize(C, Gw);
  ws.A.resize(sub, C);
  ws.W.resize(sub, Gw);
  ws.tmp.resize(sub, V);
}

// Phase: keys, values and decays of rows [s0, s0 + L) of the slice (ws.k, ws.v, ws.a, ws.P, ws.R).
template <GateAxis axis, class Slice, class Acc>
void chunk_load_keys(const Slice& x, index_t s0, index_t L, ChunkWorkspace<Acc>& ws) {
  const index_t K = x.K, V = x.V, Gw = axis == GateAxis::key ? K : V;
  load_rows(ws.k.data(), K, x.k + s0 * x.k_rs, x.k_rs, L, K, Acc(0));
  load_rows(ws.v.data(), V, x.v + s0 * x.v_rs, x.v_rs, L, V, Acc(0));
  load_decay(ws.a.data(), Gw, x.g ? x.g + s0 * x.g_rs : x.g, x.g_rs, L, Gw, x.gate_space);
  prefix_suffix(ws.a, L, ws.P, ws.R);
}

// Phase: one reader's output over the chunk's L rows into ws.O (rows [0, L)), from its queries
// q (row stride q_rs, scaled by `scale` here), the state S [K, V] entering the chunk and the
// keys, values and decays chunk_load_keys left in ws. S is only read.
template <GateAxis axis, class QT, class Acc>
void chunk_output(const QT* q_rows, index_t q_rs, index_t L, Acc scale, const Acc* S_ptr, index_t K, index_t V,
                  ChunkWorkspace<Acc>& ws) {
  const index_t sub = ws.A.rows();
  const Eigen::Map<const RowMatrix<Acc>> S(S_ptr, K, V);
  load_rows(ws.q.data(), K, q_rows, q_rs, L, K, Acc(0));
  auto q = ws.q.topRows(L);  // scaled once here: every product below uses scale·q
  q *= scale;
  auto k = ws.k.topRows(L);
  auto v = ws.v.topRows(L);
  auto a = ws.a.topRows(L);
  auto P = ws.P.topRows(L);
  auto O = ws.O.topRows(L);

  // Inter-chunk part, from the state entering the chunk.
  if constexpr (axis == GateAxis::key) {
    auto Qg = ws.Qg.topRows(L);
    Qg = q.cwiseProduct(P);
    O.noalias() = Qg * S;
  } else {
    O.noalias() = q * S;
    O.array() *= P.array();
  }

  // Intra-chunk part.
  for (index_t i0 = 0; i0 < L; i0 += sub) {
    const index_t c = std::min(sub, L - i0);
    // W_i = e^{G_i − ρ} = Π_{i0<τ≤i} a_τ over the gated dimension; U_j = Π_{j<τ≤i0} a_τ.
    subchunk_factors(a, i0, c, ws.W, ws.U);
    auto Wg = ws.W.topRows(c);
    if (i0 > 0) {
      auto U = ws.U.topRows(i0);
      auto A = ws.A.topLeftCorner(c, i0);
      if constexpr (axis == GateAxis::key) {
        auto KU = ws.Kg.topRows(i0);
        KU = k.topRows(i0).cwiseProduct(U);
        auto QW = ws.Qg.topRows(c);  // free after the inter part; an evaluated GEMM operand
        QW = q.middleRows(i0, c).cwiseProduct(Wg);
        A.noalias() = QW * KU.transpose();
        O.middleRows(i0, c).noalias() += A * v.topRows(i0);
      } else {
        auto VU = ws.Kg.topRows(i0);
        VU = v.topRows(i0).cwiseProduct(U);
        A.noalias() = q.middleRows(i0, c) * k.topRows(i0).transpose();
        auto tmp = ws.tmp.topRows(c);
        tmp.noalias() = A * VU;
        O.middleRows(i0, c) += tmp.cwiseProduct(Wg);
      }
    }
    // Diagonal block, element-wise, only j ≤ i (never a positive exponent).
    Acc* run = ws.U.data();  // running product vector, length Gw (U is free again)
    for (index_t j = i0; j < i0 + c; ++j) {
      if constexpr (axis == GateAxis::key) {
        const Acc* kj = k.row(j).data();
        for (index_t d = 0; d < K; ++d) run[d] = kj[d];
        for (index_t i = j; i < i0 + c; ++i) {
          const Acc* ai = a.row(i).data();
          const Acc* qi = q.row(i).data();
          if (i > j)
            for (index_t d = 0; d < K; ++d) run[d] *= ai[d];
          const Acc aij = dot(qi, run, K);
          Acc* oi = O.row(i).data();
          const Acc* vj = v.row(j).data();
          for (index_t e = 0; e < V; ++e) oi[e] += aij * vj[e];
        }
      } else {
        const Acc* vj = v.row(j).data();
        for (index_t e = 0; e < V; ++e) run[e] = vj[e];
        for (index_t i = j; i < i0 + c; ++i) {
          const Acc* ai = a.row(i).data();
          if (i > j)
            for (index_t e = 0; e < V; ++e) run[e] *= ai[e];
          const Acc aij = dot(q.row(i).data(), k.row(j).data(), K);
          Acc* oi = O.row(i).data();
          for (index_t e = 0; e < V; ++e) oi[e] += aij * run[e];
        }
      }
    }
  }
}

// Phase: the state leaving the chunk, S [K, V] in place, from what chunk_load_keys left in ws.
template <GateAxis axis, class Acc>
void chunk_advance(Acc* S_ptr, index_t K, index_t V, index_t L, ChunkWorkspace<Acc>& ws) {
  advance_state<axis>(RowMap<Acc>(S_ptr, K, V), ws.k.topRows(L), ws.v.topRows(L), ws.P.topRows(L),
                      ws.R.topRows(L), ws.Kg.topRows(L));
}

// Rows [0, L) of a dense buffer (leading dimension ld) into rows of a strided output.
template <class Out, class Acc>
void store_output(Out* out, index_t rs, const Acc* src, index_t ld, index_t L, index_t n) {
  for (index_t t = 0; t < L; ++t)
    for (index_t e = 0; e < n; ++e) out[t * rs + e] = static_cast<Out>(src[t * ld + e]);
}

// x: one (sequence, head); S: [K, V] state, read as the initial state and overwritten with
// the final one. `states` (optional) receives the [K, V] state entering each chunk.
template <GateAxis axis, class Slice, class Acc>
void chunk_head(const Slice& x, Acc* S, Acc scale, index_t chunk, ChunkWorkspace<Acc>& ws, Acc* states = nullptr) {
  if constexpr (axis == GateAxis::value) {
    if (x.K == 1) return elementwise_chunk(x, S, scale, chunk, ws.elementwise);
  }
  const index_t K = x.K, V = x.V;
  // Buffers for the rows there are: a chunk size beyond the slice (any value is allowed) must
  // not allocate for it. The sub-chunks are the same: min(16, C) rows, or one covering L < 16.
  chunk_prepare<axis>(ws, std::min(chunk, std::max<index_t>(x.len, 1)), K, V);
  for (index_t s0 = 0; s0 < x.len; s0 += chunk) {
    const index_t L = std::min(chunk, x.len - s0);
    if (states) std::copy_n(S, K * V, states + (s0 / chunk) * K * V);
    chunk_load_keys<axis>(x, s0, L, ws);
    chunk_output<axis>(x.q + s0 * x.q_rs, x.q_rs, L, scale, S, K, V, ws);
    chunk_advance<axis>(S, K, V, L, ws);
    store_output(x.o + s0 * x.o_rs, x.o_rs, ws.O.data(), V, L, V);
  }
}

}  // namespace linattn::detail::inline LINATTN_RECURRENCE_ISA
