// Backward of the gated linear recurrence in chunk form (SPEC §9.3): the same matrix-product
// shapes as the chunk forward, chunks walked in reverse. Two phases per slice (one state and
// its R readers, as in recurrent_backward.hpp):
//
//   1. chunk states: H_c, the state entering every chunk c (and H_NT, the final state),
//      recomputed from the inputs, or kept by a training forward (gla::ChunkStates);
//   2. reverse over chunks with dH = dL/d(state leaving chunk c), starting from dS_T:
//        inter-chunk:  dq from H_c, dk and dv from dH, dH ← decay(dH) + Σ (readers' q)ᵀ do
//        intra-chunk:  sub-chunks of 16 rows as in the forward: the blocks below the diagonal
//                      by products referenced to the sub-chunk's first row (no positive
//                      exponent), the diagonal block element-wise
//        dg_i = Σ_{s ≥ i in c} (q_s ⊙ dq_s − k_s ⊙ dk_s) + rowsum(H_{c+1} ⊙ dH)   (key axis;
//        value axis: o_s ⊙ do_s − v_s ⊙ dv_s and colsum), the chunk form of the recurrent
//        sweep's reverse cumulative sum.
//
// Memory per slice while it runs: (NT + 1)·K·V states (one per chunk; none when the forward
// kept them) plus O(C·(K + V)) chunk buffers. Work per chunk
// of C rows: ~10·C·K·V flops for the inter-chunk products (2 of them recompute H_{c+1}), and
// ~5·C²·(K + V)/2 for the intra-chunk ones, against 4·C·K·V and 2·C²·(K + V)/2 forward.
//
// The element-wise recurrence (value axis, K = 1: HGRN) has no matrix products to chunk; its
// backward is the reverse sweep whatever the form.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "linattn/ops/recurrence/chunk.hpp"
#include "linattn/ops/recurrence/recurrent_backward.hpp"

namespace linattn::detail::inline LINATTN_RECURRENCE_ISA {

template <class Acc>
using ConstRowMap = Eigen::Map<const RowMatrix<Acc>>;

template <class Acc>
struct ChunkBackwardWorkspace {
  std::vector<Acc> states;                 // [NT + 1, K, V] H_c
  RowMatrix<Acc> dH, dH_next;              // [K, V]
  RowMatrix<Acc> q, dO, dQ, O;             // [C, K], [C, V], [C, K], [C, V] (one reader at a time)
  RowMatrix<Acc> k, v, dK, dV;             // [C, K], [C, V], [C, K], [C, V]
  RowMatrix<Acc> a, P, R, gterm;           // [C, Gw] decay, prefix and suffix products, dg terms
  RowMatrix<Acc> QW, XU, W, U, A, dA;      // sub-chunk operands
  RowMatrix<Acc> tmp_k, tmp_v;             // [C, K], [C, V]
  RowMatrix<Acc> E, QE;                    // [c, Gw] the diagonal block's running products, X ⊙ them
  Eigen::Matrix<Acc, Eigen::Dynamic, 1> col;  // [c] one column of its scores
  Eigen::Matrix<Acc, 1, Eigen::Dynamic> dg_const;  // [Gw] dg's term from the state leaving the chunk
  std::vector<Acc> run, elementwise;       // [Gw] dg's running sum; the K = 1 sweep's buffers
};

// The decay of rows [s0, s0 + L) of a gate (null rows: no decay).
template <class Acc, class In>
void load_chunk_decay(RowMatrix<Acc>& a, const Rows<const In>& g, index_t s0, index_t L, index_t width, GateSpace space) {
  if (g) load_decay(a.data(), width, g[s0], g.rs, L, width, space);
  else std::fill(a.data(), a.data() + L * width, Acc(1));
}

// Phase 1: ws.states = H_0 (h0 or zeros), H_1, ..., H_NT.
template <GateAxis axis, class In, class Out, class Acc>
void chunk_states(const BackwardSlice<In, Out, Acc>& x, index_t C, ChunkBackwardWorkspace<Acc>& ws) {
  constexpr bool key = axis == GateAxis::key;
  const index_t K = x.K, V = x.V, Gw = key ? K : V;
  const index_t NT = (x.len + C - 1) / C;
  ws.states.resize(static_cast<std::size_t>((NT + 1) * K * V));  // every element written below
  if (x.h0) std::copy_n(x.h0, K * V, ws.states.data());
  else std::fill_n(ws.states.data(), K * V, Acc(0));
  for (index_t c = 0; c < NT; ++c) {
    const index_t s0 = c * C, L = std::min(C, x.len - s0);
    load_rows(ws.k.data(), K, x.k[s0], x.k.rs, L, K, Acc(0));
    load_rows(ws.v.data(), V, x.v[s0], x.v.rs, L, V, Acc(0));
    load_chunk_decay(ws.a, x.g, s0, L, Gw, x.gate_space);
    prefix_suffix(ws.a, L, ws.P, ws.R);
    RowMap<Acc> H(ws.states.data() + c * K * V, K, V), Hn(ws.states.data() + (c + 1) * K * V, K, V);
    Hn = H;
    advance_state<axis>(Hn, ws.k.topRows(L), ws.v.topRows(L), ws.P.topRows(L), ws.R.topRows(L),
                        ws.XU.topLeftCorner(L, Gw));  // the forward's chunk_advance
  }
}

// The diagonal block of the sub-chunk [i0, i0 + c): for every column j, the rows i ≥ j at once,
// E_ij = Π_{j<τ≤i} a_τ built as rows of a [c, Gw] scratch, so that the scores through E and the
// sums into column j's gradients are matrix-vector products (Eigen's, reducing in registers)
// instead of one lane-to-scalar reduction per pair, which measured ~30% of the K = 64 backward
// (perf, Zen 5, T = 2048, one thread). The two axes are one computation with the operands'
// roles swapped:
//                 X (times E)  Y        Z, W (no E)   S = (X_i ⊙ E)·Y_j   P = Z_i·W_j
//   key axis:     q            k        do, v         A_ij                dA_ij
//   value axis:   do           v        q, k          dA_ij               A_ij
// and then  dW_j += Σ_i S_ij Z_i,  dY_j += Σ_i P_ij (X_i ⊙ E),  out_i += P_ij (E ⊙ Y_j), with out
// dQ on the key axis and O on the value axis, whose dQ_i += S_ij k_j besides. P needs no E: one
// [c, c] product per sub-chunk. Measured beside the element-wise loop in one run: the K = 64
// GLA backward 8.1 -> 7.4 ms at T = 2048 (K = 128 unchanged). The same scheme in the forward's
// chunk_output measured 8% slower (one product per pair there), so that one stays.
template <GateAxis axis, class Acc>
void diagonal_backward(ChunkBackwardWorkspace<Acc>& ws, index_t i0, index_t c) {
  constexpr bool key = axis == GateAxis::key;
  const RowMatrix<Acc>& X = key ? ws.q : ws.dO;  // [C, Gw]
  const RowMatrix<Acc>& Y = key ? ws.k : ws.v;   // [C, Gw]
  const RowMatrix<Acc>& Z = key ? ws.dO : ws.q;  // [C, V] / [C, K]
  const RowMatrix<Acc>& Wm = key ? ws.v : ws.k;  // [C, V] / [C, K]
  RowMatrix<Acc>& dY = key ? ws.dK : ws.dV;      // [C, Gw]
  RowMatrix<Acc>& dW = key ? ws.dV : ws.dK;      // [C, V] / [C, K]
  RowMatrix<Acc>& out = key ? ws.dQ : ws.O;      // [C, Gw]
  const index_t Gw = X.cols();
  auto Pd = ws.dA.topLeftCorner(c, c);  // [c, c] P_ij (the lower triangle is used)
  Pd.noalias() = Z.middleRows(i0, c) * Wm.middleRows(i0, c).transpose();
  for (index_t j = i0; j < i0 + c; ++j) {
    const index_t n = i0 + c - j;  // rows i = j .. i0 + c - 1
    running_products(ws.a, j, n, ws.E);
    auto E = ws.E.topRows(n);    // [n, Gw] E_{j+m, j}
    auto XE = ws.QE.topRows(n);  // [n, Gw] X_{j+m} ⊙ E_{j+m, j}
    XE = X.middleRows(j, n).cwiseProduct(E);
    auto S = ws.col.head(n);  // [n] S_ij
    S.noalias() = XE * Y.row(j).transpose();
    const auto P = Pd.col(j - i0).tail(n);  // [n] P_ij
    dW.row(j).noalias() += S.transpose() * Z.middleRows(j, n);
    dY.row(j).noalias() += P.transpose() * XE;
    if constexpr (!key) ws.dQ.middleRows(j, n).noalias() += S * ws.k.row(j);
    const Acc* yj = Y.row(j).data();
    for (index_t m = 0; m < n; ++m) {
      const Acc p = P(m);
      const Acc* e = E.row(m).data();
      Acc* o = out.row(j + m).data();
      for (index_t d = 0; d < Gw; ++d) o[d] += p * e[d] * yj[d];
    }
  }
}

// The intra-chunk gradient of one reader over rows [0, L) of the chunk buffers (q scaled):
// accumulates dQ (the reader's), dK and dV (shared), and on the value axis the reader's
// output O (which dg needs there).
template <GateAxis axis, class Acc>
void chunk_intra_backward(ChunkBackwardWorkspace<Acc>& ws, index_t L, index_t K, index_t V) {
  constexpr bool key = axis == GateAxis::key;
  const index_t sub = ws.A.rows();  // min(kSubChunk, C), as sized by the caller
  auto q = ws.q.topRows(L);
  auto k = ws.k.topRows(L);
  auto v = ws.v.topRows(L);
  auto dO = ws.dO.topRows(L);
  const auto& a = ws.a;
  for (index_t i0 = 0; i0 < L; i0 += sub) {
    const index_t c = std::min(sub, L - i0);
    subchunk_factors(a, i0, c, ws.W, ws.U);  // W_i = Π_{i0<τ≤i} a_τ, U_j = Π_{j<τ≤i0} a_τ
    auto W = ws.W.topRows(c);
    if (i0 > 0) {
      auto U = ws.U.topRows(i0);
      auto A = ws.A.topLeftCorner(c, i0);
      auto dA = ws.dA.topLeftCorner(c, i0);
      if constexpr (key) {
        auto QW = ws.QW.topLeftCorner(c, K);
        QW = q.middleRows(i0, c).cwiseProduct(W);
        auto KU = ws.XU.topLeftCorner(i0, K);
        KU = k.topRows(i0).cwiseProduct(U);
        A.noalias() = QW * KU.transpose();
        dA.noalias() = dO.middleRows(i0, c) * v.topRows(i0).transpose();
        ws.dV.topRows(i0).noalias() += A.transpose() * dO.middleRows(i0, c);
        auto tq = ws.tmp_k.topRows(c);
        tq.noalias() = dA * KU;
        ws.dQ.middleRows(i0, c) += tq.cwiseProduct(W);
        auto tk = ws.tmp_k.topRows(i0);
        tk.noalias() = dA.transpose() * QW;
        ws.dK.topRows(i0) += tk.cwiseProduct(U);
      } else {
        auto dOW = ws.QW.topLeftCorner(c, V);
        dOW = dO.middleRows(i0, c).cwiseProduct(W);
        auto VU = ws.XU.topLeftCorner(i0, V);
        VU = v.topRows(i0).cwiseProduct(U);
        A.noalias() = q.middleRows(i0, c) * k.topRows(i0).transpose();
        dA.noalias() = dOW * VU.transpose();
        ws.dQ.middleRows(i0, c).noalias() += dA * k.topRows(i0);
        ws.dK.topRows(i0).noalias() += dA.transpose() * q.middleRows(i0, c);
        auto tv = ws.tmp_v.topRows(i0);
        tv.noalias() = A.transpose() * dOW;
        ws.dV.topRows(i0) += tv.cwiseProduct(U);
        auto to = ws.tmp_v.topRows(c);
        to.noalias() = A * VU;
        ws.O.middleRows(i0, c) += to.cwiseProduct(W);
      }
    }
    diagonal_backward<axis>(ws, i0, c);  // rows j ≤ i of the sub-chunk
  }
}

// Rows [0, L) of a dense [L, n] buffer into rows s0.. of a strided output, times `factor`.
template <class Out, class Acc>
void store_rows(const Rows<Out>& out, index_t s0, const RowMatrix<Acc>& src, index_t L, index_t n, Acc factor = Acc(1)) {
  for (index_t t = 0; t < L; ++t) {
    Out* row = out[s0 + t];
    const Acc* s = src.row(t).data();
    for (index_t i = 0; i < n; ++i) row[i] = static_cast<Out>(factor * s[i]);
  }
}

// `saved`: the NT + 1 states H_0..H_NT of this slice kept by a training forward (phase 1 is
// then skipped), or null: recomputed.
template <GateAxis axis, class In, class Out, class Acc>
void chunk_backward_slice(const BackwardSlice<In, Out, Acc>& x, index_t C, ChunkBackwardWorkspace<Acc>& ws,
                          const Acc* saved = nullptr) {
  if constexpr (axis == GateAxis::value) {
    if (x.K == 1) return recurrent_backward_slice<axis>(x, ws.elementwise);
  }
  require(x.gate_space == GateSpace::log, "linattn::detail::chunk_backward",
          "linear-space gates are differentiated for the element-wise (K = 1, value-axis) recurrence only");
  require(C >= 1, "linattn::detail::chunk_backward", "chunk size must be >= 1");
  constexpr bool key = axis == GateAxis::key;
  const index_t K = x.K, V = x.V, Gw = key ? K : V, len = x.len;
  const index_t NT = (len + C - 1) / C;
  // Sub-chunks of the forward's 16 rows (SPEC §2). 32 measured within the host's noise of 16
  // (Zen 5, K = 64 and 128, T = 2048, one thread: ±10% between runs), so the forward's is kept.
  const index_t sub = std::min(kSubChunk, C);
  for (RowMatrix<Acc>* m : {&ws.q, &ws.dQ, &ws.k, &ws.dK, &ws.tmp_k}) m->resize(C, K);
  for (RowMatrix<Acc>* m : {&ws.dO, &ws.O, &ws.v, &ws.dV, &ws.tmp_v}) m->resize(C, V);
  for (RowMatrix<Acc>* m : {&ws.a, &ws.P, &ws.R, &ws.gterm, &ws.U}) m->resize(C, Gw);
  ws.QW.resize(sub, std::max(K, V));
  ws.XU.resize(C, std::max(K, V));
  ws.W.resize(sub, Gw);
  ws.A.resize(sub, C);
  ws.dA.resize(sub, C);
  ws.E.resize(sub, Gw);
  ws.QE.resize(sub, Gw);
  ws.col.resize(sub);
  ws.run.resize(static_cast<std::size_t>(Gw));
  ws.dH.resize(K, V);
  ws.dH_next.resize(K, V);
  if (x.dht) ws.dH = ConstRowMap<Acc>(x.dht, K, V);
  else ws.dH.setZero();

  if (!saved) chunk_states<axis>(x, C, ws);
  const Acc* states = saved ? saved : ws.states.data();
  for (index_t c = NT; c-- > 0;) {
    const index_t s0 = c * C, L = std::min(C, len - s0);
    const ConstRowMap<Acc> H(states + c * K * V, K, V), Hn(states + (c + 1) * K * V, K, V);
    load_rows(ws.k.data(), K, x.k[s0], x.k.rs, L, K, Acc(0));
    load_rows(ws.v.data(), V, x.v[s0], x.v.rs, L, V, Acc(0));
    load_chunk_decay(ws.a, x.g, s0, L, Gw, x.gate_space);
    prefix_suffix(ws.a, L, ws.P, ws.R);
    auto k = ws.k.topRows(L);
    auto v = ws.v.topRows(L);
    auto P = ws.P.topRows(L);
    auto R = ws.R.topRows(L);
    auto dK = ws.dK.topRows(L);
    auto dV = ws.dV.topRows(L);
    auto gterm = ws.gterm.topRows(L);
    gterm.setZero();

    // The gradient of the state leaving the chunk, into k and v (S_out's rank-L update).
    auto XR = ws.XU.topLeftCorner(L, key ? K : V);  // k ⊙ R or v ⊙ R
    if constexpr (key) {
      XR = k.cwiseProduct(R);
      dV.noalias() = XR * ws.dH;
      auto t = ws.tmp_k.topRows(L);
      t.noalias() = v * ws.dH.transpose();
      dK = t.cwiseProduct(R);
    } else {
      XR = v.cwiseProduct(R);
      dK.noalias() = XR * ws.dH.transpose();
      auto t = ws.tmp_v.topRows(L);
      t.noalias() = k * ws.dH;
      dV = t.cwiseProduct(R);
    }
    // dg's constant term, then dH_start = decay(dH) + Σ readers' inter-chunk terms.
    auto& dg_const = ws.dg_const;
    if constexpr (key) dg_const = Hn.cwiseProduct(ws.dH).rowwise().sum().transpose();
    else dg_const = Hn.cwiseProduct(ws.dH).colwise().sum();
    ws.dH_next = ws.dH;
    if constexpr (key) ws.dH_next.array().colwise() *= P.row(L - 1).transpose().array();
    else ws.dH_next.array().rowwise() *= P.row(L - 1).array();

    for (index_t r = 0; r < x.readers; ++r) {
      const auto ri = static_cast<std::size_t>(r);
      load_rows(ws.q.data(), K, x.q[ri][s0], x.q[ri].rs, L, K, Acc(0));
      load_rows(ws.dO.data(), V, x.dout[ri][s0], x.dout[ri].rs, L, V, Acc(0));
      auto q = ws.q.topRows(L);
      q *= x.scale;  // every product below uses scale·q; dQ is dL/d(scale·q)
      auto dO = ws.dO.topRows(L);
      auto dQ = ws.dQ.topRows(L);
      if constexpr (key) {
        auto Qg = ws.XU.topLeftCorner(L, K);  // XR is done with
        Qg = q.cwiseProduct(P);
        auto t = ws.tmp_k.topRows(L);
        t.noalias() = dO * H.transpose();
        dQ = t.cwiseProduct(P);
        ws.dH_next.noalias() += Qg.transpose() * dO;
      } else {
        auto dOP = ws.XU.topLeftCorner(L, V);
        dOP = dO.cwiseProduct(P);
        dQ.noalias() = dOP * H.transpose();
        ws.dH_next.noalias() += q.transpose() * dOP;
        auto O = ws.O.topRows(L);
        O.noalias() = q * H;
        O.array() *= P.array();
      }
      chunk_intra_backward<axis>(ws, L, K, V);
      store_rows(x.dq[ri], s0, ws.dQ, L, K, x.scale);
      if constexpr (key) gterm += q.cwiseProduct(dQ);
      else gterm += ws.O.topRows(L).cwiseProduct(dO);
    }
    if constexpr (key) gterm -= k.cwiseProduct(dK);
    else gterm -= v.cwiseProduct(dV);

    store_rows(x.dk, s0, ws.dK, L, K);
    store_rows(x.dv, s0, ws.dV, L, V);
    if (x.dg) {
      Acc* run = ws.run.data();
      for (index_t w = 0; w < Gw; ++w) run[w] = dg_const[w];
      for (index_t t = L; t-- > 0;) {
        Out* dgt = x.dg[s0 + t];
        for (index_t w = 0; w < Gw; ++w) {
          run[w] += gterm(t, w);
          dgt[w] = static_cast<Out>(run[w]);
        }
      }
    }
    ws.dH.swap(ws.dH_next);
  }
  if (x.dh0) RowMap<Acc>(x.dh0, K, V) = ws.dH;
}

}  // namespace linattn::detail::inline LINATTN_RECURRENCE_ISA
