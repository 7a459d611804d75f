// Backward of the gated linear recurrence (SPEC §9.1, §9.2, §9.5), token by token: the
// reference form of the training path, shared by GLA, GSA (both passes) and HGRN.
//
//   S_t = decay_t(S_{t-1}) + k_tᵀ v_t,   o_t^r = scale · q_t^r S_t   (r = 0..R-1 query heads
//                                                                       reading one state)
//   L = Σ_r Σ_t o_t^r ⊙ do_t^r + Σ S_T ⊙ dS_T
//
// One slice is one state (sequence, kv head) and the R query heads that read it (its readers) (GQA: the
// state's gradient collects every reader, and dk, dv, dg are per state, not per reader).
//   1. forward sweep from h0: S_t, and dq_t^r = scale · S_t do_t^r (value axis: o_t^r kept)
//   2. reverse sweep, dS ← dS_T, acc ← rowsum/colsum(S_T ⊙ dS_T):
//        dS += scale Σ_r q_t^rᵀ do_t^r;  dk_t = dS v_t;  dv_t = dSᵀ k_t
//        key axis:   acc += Σ_r q_t^r ⊙ dq_t^r − k_t ⊙ dk_t      (acc over K)
//        value axis: acc += Σ_r o_t^r ⊙ do_t^r − v_t ⊙ dv_t      (acc over V)
//        dg_t = acc;  dS ← decay_t(dS);   after the loop dh0 = dS.
// dg is a reverse cumulative sum whose constant term is rowsum(S_T ⊙ dS_T): no state needs
// to be kept per token. Memory: the state and its gradient (2·K·V) per slice, plus R·len·V
// for the readers' outputs on the value axis; nothing is kept from the forward (the sweep
// recomputes it from the inputs). Work: ~11·K·V flops per token and reader.
//
// Linear-space gates (HGRN as matmulfreellm runs it, a = f) need dL/df_t = G_t ⊙ S_{t-1},
// not e^g·(that): the acc identity would have to divide by f, which loses every digit as
// f → 0. They are taken only for K = 1 (HGRN), where the forward sweep keeps the state rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/ops/gated_recurrence.hpp"

namespace linattn::detail::inline LINATTN_RECURRENCE_ISA {

// Row pointers and row strides (in elements) of one slice; rows are time steps.
template <class T>
struct Rows {
  T* p = nullptr;
  index_t rs = 0;
  T* operator[](index_t t) const { return p + t * rs; }
  explicit operator bool() const { return p != nullptr; }
};

// One state and its R readers. Inputs and outputs may have different element types than Acc.
template <class In, class Out, class Acc>
struct BackwardSlice {
  index_t len = 0, K = 0, V = 0, readers = 1;  // R: GQA query heads per kv head
  Acc scale = Acc(1);
  GateSpace gate_space = GateSpace::log;
  // reader r's rows are q[r], dout[r], dq[r] (r < R)
  std::vector<Rows<const In>> q, dout;  // [len, K], [len, V] per reader
  Rows<const In> k, v, g;               // [len, K], [len, V], [len, K or V] (g null: no decay)
  const Acc* h0 = nullptr;              // [K, V], null: zeros
  const Acc* dht = nullptr;             // [K, V], null: zeros
  std::vector<Rows<Out>> dq;            // [len, K] per reader; overwritten
  Rows<Out> dk, dv, dg;                 // overwritten (dg may be null: not wanted)
  Acc* dh0 = nullptr;                   // [K, V], overwritten; null: not wanted
};

template <GateAxis axis, class In, class Out, class Acc>
void recurrent_backward_slice(const BackwardSlice<In, Out, Acc>& x, std::vector<Acc>& ws) {
  const index_t K = x.K, V = x.V, R = x.readers, len = x.len;
  const index_t gate_width = axis == GateAxis::key ? K : V;
  const bool linear = x.gate_space == GateSpace::linear;
  require(!linear || (axis == GateAxis::value && K == 1), "linattn::detail::recurrent_backward",
          "linear-space gates are differentiated for the element-wise (K = 1, value-axis) recurrence only");
  // [K, V] S, [K, V] dS, [gate_width] a, [gate_width] acc, [K] dk_t and [V] dv_t in Acc, then
  // value axis: [R, len, V] reader outputs; linear gates: [len + 1, V] state rows (row 0 = h0).
  const bool keep_outputs = axis == GateAxis::value;
  const std::size_t need = static_cast<std::size_t>(2 * K * V + 2 * gate_width + K + V +
                                                    (keep_outputs ? R * len * V : 0) + (linear ? (len + 1) * V : 0));
  ws.assign(need, Acc(0));
  Acc* S = ws.data();
  Acc* dS = S + K * V;
  Acc* a = dS + K * V;
  Acc* acc = a + gate_width;
  Acc* dk_row = acc + gate_width;
  Acc* dv_row = dk_row + K;
  Acc* outs = dv_row + V;                               // [R, len, V]
  Acc* hist = outs + (keep_outputs ? R * len * V : 0);  // [len + 1, V]
  if (x.h0) std::copy_n(x.h0, K * V, S);
  if (linear) std::copy_n(S, V, hist);

  const auto load_gate = [&](index_t t) {
    if (x.g) load_decay(a, gate_width, x.g[t], 0, 1, gate_width, x.gate_space);
    else std::fill(a, a + gate_width, Acc(1));
  };

  // 1. forward sweep
  for (index_t t = 0; t < len; ++t) {
    load_gate(t);
    const In* kt = x.k[t];
    const In* vt = x.v[t];
    for (index_t i = 0; i < K; ++i) {
      Acc* Si = S + i * V;
      const Acc ki = static_cast<Acc>(kt[i]);
      if constexpr (axis == GateAxis::key) {
        const Acc ai = a[i];
        for (index_t j = 0; j < V; ++j) Si[j] = ai * Si[j] + ki * static_cast<Acc>(vt[j]);
      } else {
        for (index_t j = 0; j < V; ++j) Si[j] = a[j] * Si[j] + ki * static_cast<Acc>(vt[j]);
      }
    }
    if (linear) std::copy_n(S, V, hist + (t + 1) * V);
    for (index_t r = 0; r < R; ++r) {
      const In* dot_ = x.dout[static_cast<std::size_t>(r)][t];
      Out* dqt = x.dq[static_cast<std::size_t>(r)][t];
      for (index_t i = 0; i < K; ++i) {
        const Acc* Si = S + i * V;
        Acc s = 0;
        for (index_t j = 0; j < V; ++j) s += Si[j] * static_cast<Acc>(dot_[j]);
        dqt[i] = static_cast<Out>(x.scale * s);
      }
      if (keep_outputs) {
        const In* qt = x.q[static_cast<std::size_t>(r)][t];
        Acc* ot = outs + (r * len + t) * V;
        for (index_t i = 0; i < K; ++i) {
          const Acc qi = x.scale * static_cast<Acc>(qt[i]);
          const Acc* Si = S + i * V;
          for (index_t j = 0; j < V; ++j) ot[j] += qi * Si[j];
        }
      }
    }
  }

  // 2. reverse sweep
  if (x.dht) std::copy_n(x.dht, K * V, dS);
  for (index_t i = 0; i < K; ++i)
    for (index_t j = 0; j < V; ++j) acc[axis == GateAxis::key ? i : j] += S[i * V + j] * dS[i * V + j];
  for (index_t t = len; t-- > 0;) {
    for (index_t r = 0; r < R; ++r) {
      const In* qt = x.q[static_cast<std::size_t>(r)][t];
      const In* dot_ = x.dout[static_cast<std::size_t>(r)][t];
      for (index_t i = 0; i < K; ++i) {
        const Acc qi = x.scale * static_cast<Acc>(qt[i]);
        Acc* dSi = dS + i * V;
        for (index_t j = 0; j < V; ++j) dSi[j] += qi * static_cast<Acc>(dot_[j]);
      }
    }
    const In* kt = x.k[t];
    const In* vt = x.v[t];
    // dk_t = dS v_t, dv_t = dSᵀ k_t: one pass over dS.
    std::fill(dv_row, dv_row + V, Acc(0));
    for (index_t i = 0; i < K; ++i) {
      const Acc* dSi = dS + i * V;
      const Acc ki = static_cast<Acc>(kt[i]);
      Acc s = 0;
      for (index_t j = 0; j < V; ++j) {
        s += dSi[j] * static_cast<Acc>(vt[j]);
        dv_row[j] += ki * dSi[j];
      }
      dk_row[i] = s;
    }
    Out* dkt = x.dk[t];
    Out* dvt = x.dv[t];
    for (index_t i = 0; i < K; ++i) dkt[i] = static_cast<Out>(dk_row[i]);
    for (index_t j = 0; j < V; ++j) dvt[j] = static_cast<Out>(dv_row[j]);
    if constexpr (axis == GateAxis::key) {
      for (index_t i = 0; i < K; ++i) {
        Acc s = -static_cast<Acc>(kt[i]) * dk_row[i];
        for (index_t r = 0; r < R; ++r)
          s += static_cast<Acc>(x.q[static_cast<std::size_t>(r)][t][i]) * static_cast<Acc>(x.dq[static_cast<std::size_t>(r)][t][i]);
        acc[i] += s;
      }
    } else {
      for (index_t j = 0; j < V; ++j) {
        Acc s = -static_cast<Acc>(vt[j]) * dv_row[j];
        for (index_t r = 0; r < R; ++r)
          s += outs[(r * len + t) * V + j] * static_cast<Acc>(x.dout[static_cast<std::size_t>(r)][t][j]);
        acc[j] += s;
      }
    }
    load_gate(t);
    if (x.dg) {
      Out* dgt = x.dg[t];
      if (linear) {
        // dL/df_t = G_t ⊙ S_{t-1} (K = 1): dS is G_t here, before the decay.
        for (index_t j = 0; j < V; ++j) dgt[j] = static_cast<Out>(dS[j] * hist[t * V + j]);
      } else {
        for (index_t w = 0; w < gate_width; ++w) dgt[w] = static_cast<Out>(acc[w]);
      }
    }
    for (index_t i = 0; i < K; ++i) {
      Acc* dSi = dS + i * V;
      if constexpr (axis == GateAxis::key) {
        const Acc ai = a[i];
        for (index_t j = 0; j < V; ++j) dSi[j] *= ai;
      } else {
        for (index_t j = 0; j < V; ++j) dSi[j] *= a[j];
      }
    }
  }
  if (x.dh0) std::copy_n(dS, K * V, x.dh0);
}

}  // namespace linattn::detail::inline LINATTN_RECURRENCE_ISA
