// Gated slot attention (SPEC §3): two gated linear-attention passes over M memory slots,
// joined by a softmax over the slots.
//
//   q [B, T, HQ, K]   k [B, T, H, K]   v [B, T, H, V]   s, g [B, T, H, M]   o [B, T, HQ, V]
//   state: hk [N, H, K, M], hv [N, H, M, V]   (N = B, or sequences in cu_seqlens; HQ = G·H)
//
//   pass 1  hk_t = hk_{t-1} · diag(e^{g_t}) + k_tᵀ s_t     ok_t = scale · q_t hk_t     gate on the slot
//                                                                                     (value) axis
//   p_t = softmax_M(ok_t)                                  (in float or wider)
//   pass 2  hv_t = diag(e^{g_t}) · hv_{t-1} + s_tᵀ v_t     o_t  = p_t hv_t             gate on the slot
//                                                                                     (key) axis, scale 1
//
// Both passes are the gated recurrence of ops/gated_recurrence.hpp, which GLA also uses,
// with the gate on the value axis for pass 1 and on the key axis for pass 2. Query head h
// reads kv head ⌊h / G⌋ (SPEC §1), and the states belong to the kv heads.
//
// g may be absent (an empty view): the softmax-over-time fallback of SPEC §3 (ABC), per slot
//   z_t = log Σ_{τ≤t} e^{s_τ},  g_t = z_{t-1} − z_t (g = 0 at a sequence start),  s_t ← e^{s_t − z_t},
// so that hv_t is the softmax-over-time weighted mean of v per slot. Upstream has no working
// path for it (SPEC §8.12). The running z is part of the state, so a prefill followed by
// steps equals one pass in this mode too.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/form.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/state.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/ops/gated_recurrence.hpp"
#include "linattn/ops/recurrence/chunk.hpp"
#include "linattn/ops/recurrence/driver.hpp"
#include "linattn/ops/recurrence/chunk_backward.hpp"
#include "linattn/ops/recurrence/recurrent_backward.hpp"

namespace linattn::gsa {

// The GSA recurrent state of every sequence and kv head; a value (copy = snapshot).
template <class T>
struct State {
  using value_type = acc_t<T>;
  RecurrentState<T> hk;             // [N, H, K, M]
  RecurrentState<T> hv;             // [N, H, M, V]
  Array<value_type, 3> log_norm;    // [N, H, M] running z of the g-absent fallback; -inf = none yet

  State() = default;
  State(index_t sequences, index_t heads, index_t key_dim, index_t slots, index_t value_dim)
      : hk(sequences, heads, key_dim, slots),
        hv(sequences, heads, slots, value_dim),
        log_norm(Shape<3>{sequences, heads, slots}) {
    std::fill(log_norm.vector().begin(), log_norm.vector().end(), -std::numeric_limits<value_type>::infinity());
  }
  index_t sequences() const { return hk.sequences(); }
  index_t heads() const { return hk.heads(); }
  index_t key_dim() const { return hk.key_dim(); }
  index_t slots() const { return hk.value_dim(); }
  index_t value_dim() const { return hv.value_dim(); }
  bool operator==(const State&) const = default;
};

struct Options {
  std::optional<double> scale;               // pass-1 scale, default K^-1/2 (the GSA layer passes 1.0)
  index_t chunk_size = 64;                   // chunk form: rows per chunk, any value >= 1
  std::span<const std::int64_t> cu_seqlens;  // packed sequences [N+1]; empty: B sequences
  Threads threads;                           // parallel over (sequence, kv head)
};

struct StepOptions {
  std::optional<double> scale;
  Threads threads;
};

namespace detail {

using linattn::detail::GateAxis;
using linattn::detail::HeadSlice;

using linattn::Form;  // core/form.hpp

struct Dims {
  index_t B, T, HQ, H, G, K, V, M;
};

template <class T>
Dims check_inputs(const char* where, TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
                  TensorView<const T, 4> s, TensorView<const T, 4> g, TensorView<const T, 4> o,
                  const char* o_name = "o") {  // o: the output, or do in the backward
  using linattn::detail::check_inner_contiguous;
  using linattn::detail::check_shape;
  check_shape(where, "q", q, {-1, -1, -1, -1});
  const index_t B = q.size(0), T_ = q.size(1), HQ = q.size(2), K = q.size(3);
  check_shape(where, "k", k, {B, T_, -1, K});
  const index_t H = k.size(2);
  if (H < 1 || HQ % H != 0)
    linattn::detail::fail(where, "q has " + std::to_string(HQ) + " heads, which is not a multiple of the " +
                                     std::to_string(H) + " heads of k (q " + shape_string(q.shape()) + ", k " +
                                     shape_string(k.shape()) + ")");
  check_shape(where, "v", v, {B, T_, H, -1});
  check_shape(where, "s", s, {B, T_, H, -1});
  const index_t V = v.size(3), M = s.size(3);
  if (!(g.empty() && g.numel() == 0)) check_shape(where, "g", g, {B, T_, H, M});
  check_shape(where, o_name, o, {B, T_, HQ, V});
  check_inner_contiguous(where, "q", q);
  check_inner_contiguous(where, "k", k);
  check_inner_contiguous(where, "v", v);
  check_inner_contiguous(where, "s", s);
  if (!g.empty()) check_inner_contiguous(where, "g", g);
  check_inner_contiguous(where, o_name, o);
  return {B, T_, HQ, H, HQ / H, K, V, M};
}

template <class T>
void check_state(const char* where, const char* name, const State<T>& st, index_t N, const Dims& d) {
  linattn::detail::check_state(where, std::string(name) + ".hk", st.hk, {N, d.H, d.K, d.M});
  linattn::detail::check_state(where, std::string(name) + ".hv", st.hv, {N, d.H, d.M, d.V});
  if (st.log_norm.shape() != Shape<3>{N, d.H, d.M})
    linattn::detail::fail(where, std::string(name) + ".log_norm has shape " + shape_string(st.log_norm.shape()) +
                                     ", expected " + shape_string(Shape<3>{N, d.H, d.M}));
}

// s and g rows of one (sequence, kv head) as dense [L, M] buffers of Acc: without g, the
// fallback's s' and g' from the running log-normaliser z (updated in place); with g, a copy
// (only needed when the input type is not Acc).
// z_rows (optional, [L, M]): z after each row, for the fallback's backward.
template <class Acc, class T>
void slot_inputs(const T* s, index_t s_rs, const T* g, index_t g_rs, index_t L, index_t M, Acc* z,
                 std::vector<Acc>& s_out, std::vector<Acc>& g_out, Acc* z_rows = nullptr) {
  s_out.resize(static_cast<std::size_t>(L * M));
  g_out.resize(static_cast<std::size_t>(L * M));
  for (index_t t = 0; t < L; ++t) {
    const T* st = s + t * s_rs;
    Acc* so = s_out.data() + t * M;
    Acc* go = g_out.data() + t * M;
    if (g != nullptr) {
      const T* gt = g + t * g_rs;
      for (index_t m = 0; m < M; ++m) {
        so[m] = static_cast<Acc>(st[m]);
        go[m] = static_cast<Acc>(gt[m]);
      }
      continue;
    }
    for (index_t m = 0; m < M; ++m) {
      const Acc x = static_cast<Acc>(st[m]);
      const Acc z_new = linattn::detail::log_add_exp(z[m], x);
      go[m] = z[m] == -std::numeric_limits<Acc>::infinity() ? Acc(0) : z[m] - z_new;
      so[m] = std::exp(x - z_new);
      z[m] = z_new;
    }
    if (z_rows) std::copy_n(z, M, z_rows + t * M);
  }
}

template <class T>
void forward(Form form, TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
             TensorView<const T, 4> s, TensorView<const T, 4> g, TensorView<T, 4> o, const State<T>* initial_state,
             State<T>* final_state, const Options& opt) {
  using Acc = acc_t<T>;
  const char* where = form == Form::chunk         ? "linattn::gsa::chunk"
                      : form == Form::fused_chunk ? "linattn::gsa::fused_chunk"
                                                  : "linattn::gsa::recurrent";
  const Dims d = check_inputs<T>(where, q, k, v, s, g, o);
  if (form == Form::chunk && opt.chunk_size < 1)
    linattn::detail::fail(where, "chunk_size must be >= 1, got " + std::to_string(opt.chunk_size));
  const auto spans = linattn::detail::sequence_spans(where, d.B, d.T, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  if (initial_state) check_state(where, "initial_state", *initial_state, N, d);
  if (final_state && final_state != initial_state &&
      (final_state->hk.shape() != Shape<4>{N, d.H, d.K, d.M} || final_state->hv.shape() != Shape<4>{N, d.H, d.M, d.V}))
    *final_state = State<T>(N, d.H, d.K, d.M, d.V);
  const Acc scale = static_cast<Acc>(opt.scale.value_or(1.0 / std::sqrt(static_cast<double>(d.K))));
  const bool has_gate = !g.empty();
  // Rows per block: pass 1, softmax and pass 2 run on one block of one kv head before the next,
  // so the [block, M] slot scores stay in cache; the chunk form's block is one chunk.
  // (No longer than the longest sequence: any chunk size is allowed, and buffers are sized by it.)
  index_t longest = 1;
  for (const auto& sp : spans) longest = std::max(longest, sp.end - sp.begin);
  const index_t block =
      form == Form::chunk ? std::min(opt.chunk_size, longest) : linattn::detail::RecurrentTiles<Acc>::kTimeBlock;
  const index_t K = d.K, V = d.V, M = d.M, G = d.G;
  struct Item {
    std::vector<Acc> hk, hv, z;      // [heads of the item, K, M], [.., M, V], [.., M]
    std::vector<Acc> hk0, hv0;       // [K, M], [M, V]: a block's entering states, for readers 2..G
    std::vector<Acc> s_rows, g_rows;  // [block, M] slot weights and gates (when not read in place)
    std::vector<Acc> scores;         // [block, M] ok, then p
    linattn::detail::ChunkWorkspace<Acc> cw1, cw2;
    linattn::detail::RecurrentWorkspace<Acc> rw1, rw2;
    linattn::detail::FusedWorkspace<Acc> fw1, fw2;
  };
  using linattn::detail::HeadRange;
  using linattn::detail::SequenceSpan;
  const auto begin = [&](const HeadRange& r, const SequenceSpan&) {
    const index_t n = r.sequence, heads = r.last - r.first;
    Item item;
    item.hk.assign(static_cast<std::size_t>(heads * K * M), Acc(0));
    item.hv.assign(static_cast<std::size_t>(heads * M * V), Acc(0));
    item.z.assign(static_cast<std::size_t>(heads * M), -std::numeric_limits<Acc>::infinity());
    item.scores.resize(static_cast<std::size_t>(block * M));
    if (initial_state)
      for (index_t h = r.first; h < r.last; ++h) {
        const index_t i = h - r.first;
        std::copy_n(initial_state->hk.head(n, h), K * M, item.hk.begin() + i * K * M);
        std::copy_n(initial_state->hv.head(n, h), M * V, item.hv.begin() + i * M * V);
        std::copy_n(initial_state->log_norm.view().ptr(n, h), M, item.z.begin() + i * M);
      }
    return item;
  };
  const auto run = [&](Item& item, const HeadRange& r, const SequenceSpan& sp, index_t h, index_t t0, index_t len) {
    const index_t i = h - r.first;
    Acc* hk = item.hk.data() + i * K * M;
    Acc* hv = item.hv.data() + i * M * V;
    // Slot weights and gates [len, M]: the inputs themselves when given in Acc, else dense buffers.
    const Acc* s_base = nullptr;
    const Acc* g_base = nullptr;
    index_t slot_rs = M, gate_rs = M;
    if constexpr (std::is_same_v<T, Acc>) {
      if (has_gate) {
        s_base = s.ptr(sp.batch, t0, h);
        g_base = g.ptr(sp.batch, t0, h);
        slot_rs = s.stride(1);
        gate_rs = g.stride(1);
      }
    }
    if (s_base == nullptr) {
      slot_inputs(s.ptr(sp.batch, t0, h), s.stride(1), has_gate ? g.ptr(sp.batch, t0, h) : nullptr,
                  has_gate ? g.stride(1) : 0, len, M, item.z.data() + i * M, item.s_rows, item.g_rows);
      s_base = item.s_rows.data();
      g_base = item.g_rows.data();
    }
    HeadSlice<T, T, Acc, Acc, Acc> p1;  // pass 1: keys into slots, gate on the slot (value) axis
    p1.k = k.ptr(sp.batch, t0, h);
    p1.v = s_base;
    p1.g = g_base;
    p1.o = item.scores.data();
    p1.q_rs = q.stride(1);
    p1.k_rs = k.stride(1);
    p1.v_rs = slot_rs;
    p1.g_rs = gate_rs;
    p1.o_rs = M;
    p1.len = len;
    p1.K = K;
    p1.V = M;
    HeadSlice<Acc, Acc, T, Acc, T> p2;  // pass 2: slot values, gate on the slot (key) axis
    p2.q = item.scores.data();
    p2.k = s_base;
    p2.v = v.ptr(sp.batch, t0, h);
    p2.g = g_base;
    p2.q_rs = M;
    p2.k_rs = slot_rs;
    p2.g_rs = gate_rs;
    p2.v_rs = v.stride(1);
    p2.o_rs = o.stride(1);
    p2.len = len;
    p2.K = M;
    p2.V = V;
    if (form == Form::chunk) {
      // The G query heads read the kv head's states entering the chunk; each state is then
      // advanced once.
      using linattn::detail::chunk_output;
      linattn::detail::chunk_prepare<GateAxis::value>(item.cw1, block, K, M);
      linattn::detail::chunk_prepare<GateAxis::key>(item.cw2, block, M, V);
      linattn::detail::chunk_load_keys<GateAxis::value>(p1, 0, len, item.cw1);
      linattn::detail::chunk_load_keys<GateAxis::key>(p2, 0, len, item.cw2);
      for (index_t gq = 0; gq < G; ++gq) {
        const index_t hq = h * G + gq;
        chunk_output<GateAxis::value>(q.ptr(sp.batch, t0, hq), q.stride(1), len, scale, hk, K, M, item.cw1);
        linattn::detail::softmax_rows(item.cw1.O.data(), len, M, M);
        chunk_output<GateAxis::key>(item.cw1.O.data(), M, len, Acc(1), hv, M, V, item.cw2);
        linattn::detail::store_output(o.ptr(sp.batch, t0, hq), o.stride(1), item.cw2.O.data(), V, len, V);
      }
      linattn::detail::chunk_advance<GateAxis::value>(hk, K, M, len, item.cw1);
      linattn::detail::chunk_advance<GateAxis::key>(hv, M, V, len, item.cw2);
      return;
    }
    // The recurrent and fused kernels compute the outputs and the state update in one pass over
    // the state tiles: each query head runs the block from the states that entered it.
    if (G > 1) {
      item.hk0.assign(hk, hk + K * M);
      item.hv0.assign(hv, hv + M * V);
    }
    for (index_t gq = 0; gq < G; ++gq) {
      if (gq > 0) {
        std::copy(item.hk0.begin(), item.hk0.end(), hk);
        std::copy(item.hv0.begin(), item.hv0.end(), hv);
      }
      const index_t hq = h * G + gq;
      p1.q = q.ptr(sp.batch, t0, hq);
      p2.o = o.ptr(sp.batch, t0, hq);
      if (form == Form::fused_chunk) {
        linattn::detail::fused_chunk_head<GateAxis::value>(p1, hk, scale, item.fw1);
        linattn::detail::softmax_rows(item.scores.data(), len, M, M);
        linattn::detail::fused_chunk_head<GateAxis::key>(p2, hv, Acc(1), item.fw2);
      } else {
        linattn::detail::recurrent_head<GateAxis::value>(p1, hk, scale, item.rw1);
        linattn::detail::softmax_rows(item.scores.data(), len, M, M);
        linattn::detail::recurrent_head<GateAxis::key>(p2, hv, Acc(1), item.rw2);
      }
    }
  };
  const auto finish = [&](Item& item, const HeadRange& r, const SequenceSpan&) {
    if (!final_state) return;
    for (index_t h = r.first; h < r.last; ++h) {
      const index_t i = h - r.first;
      std::copy_n(item.hk.begin() + i * K * M, K * M, final_state->hk.head(r.sequence, h));
      std::copy_n(item.hv.begin() + i * M * V, M * V, final_state->hv.head(r.sequence, h));
      std::copy_n(item.z.begin() + i * M, M, final_state->log_norm.view().ptr(r.sequence, h));
    }
  };
  linattn::detail::for_each_block(spans, d.H, M, block, opt.threads, /*split_values=*/false, begin, run, finish);
}

// out[j] = scale · Σ_i x[i] S[i][j]   (S: [rows, cols])
template <class Acc, class X>
void read_state(const X* x, const Acc* S, index_t rows, index_t cols, Acc scale, Acc* out) {
  for (index_t j = 0; j < cols; ++j) out[j] = Acc(0);
  for (index_t i = 0; i < rows; ++i) {
    const Acc xi = static_cast<Acc>(x[i]) * scale;
    const Acc* row = S + i * cols;
    for (index_t j = 0; j < cols; ++j) out[j] += xi * row[j];
  }
}

}  // namespace detail

// Token-by-token reference form. g may be an empty view (softmax-over-time fallback).
template <class T>
void recurrent(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, TensorView<T, 4> o,
               const State<T>* initial_state = nullptr, State<T>* final_state = nullptr,
               const Options& options = {}) {
  detail::forward(detail::Form::recurrent, q, k, v, s, g, o, initial_state, final_state, options);
}

// Chunk-parallel form: both passes as matrix products over chunks of options.chunk_size rows.
template <class T>
void chunk(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, TensorView<T, 4> o, const State<T>* initial_state = nullptr,
           State<T>* final_state = nullptr, const Options& options = {}) {
  detail::forward(detail::Form::chunk, q, k, v, s, g, o, initial_state, final_state, options);
}

// Fused chunk form: both passes with the state held in registers over chunks of a few tokens
// (upstream's non-materialised algorithm, SPEC §2); the fastest form for prefill on a CPU.
// options.chunk_size does not apply.
template <class T>
void fused_chunk(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, TensorView<T, 4> o,
                 const State<T>* initial_state = nullptr, State<T>* final_state = nullptr,
                 const Options& options = {}) {
  detail::forward(detail::Form::fused_chunk, q, k, v, s, g, o, initial_state, final_state, options);
}

// The form named by a tag (core/form.hpp): gsa::forward(form::chunk, ...) is gsa::chunk(...).
template <class F, class T>
void forward(F, in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, TensorView<T, 4> o,
             const State<T>* initial_state = nullptr, State<T>* final_state = nullptr, const Options& options = {}) {
  if constexpr (form::is_tag_v<F>)
    detail::forward(F::value, q, k, v, s, g, o, initial_state, final_state, options);
  else
    static_assert(linattn::detail::dependent_false<F>,
                  "linattn::gsa::forward: the first argument is not a form of linattn::gsa "
                  "(form::recurrent, form::chunk or form::fused_chunk)");
}

// Gradients of L = Σ o ⊙ do + Σ hk_T ⊙ dht.hk + Σ hv_T ⊙ dht.hv (SPEC §9.4) w.r.t. every input,
// written into views of the inputs' shapes (dg is not touched when g is absent). dh0's hk and
// hv are (re)shaped as needed; its log_norm (the fallback's running normaliser, an input
// treated as a constant) gets zeros. A null dh0: not wanted.
template <class T>
struct Gradients {
  TensorView<T, 4> dq, dk, dv, ds, dg;
  State<T>* dh0 = nullptr;
};

namespace detail {

template <class T>
void backward(Form form, TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
              TensorView<const T, 4> s, TensorView<const T, 4> g, TensorView<const T, 4> dout,
              const State<T>* initial_state, const State<T>* dht, const Gradients<T>& grads, const Options& opt) {
  using Acc = acc_t<T>;
  static_assert(std::is_same_v<T, Acc>, "linattn::gsa backward takes float or double inputs");
  const char* where = form == Form::recurrent ? "linattn::gsa::recurrent_backward" : "linattn::gsa::chunk_backward";
  const detail::Dims d = detail::check_inputs<T>(where, q, k, v, s, g, dout, "do");
  if (form != Form::recurrent && opt.chunk_size < 1)
    linattn::detail::fail(where, "chunk_size must be >= 1, got " + std::to_string(opt.chunk_size));
  const bool has_gate = !g.empty();
  using linattn::detail::check_shape;
  check_shape(where, "dq", grads.dq, {d.B, d.T, d.HQ, d.K});
  check_shape(where, "dk", grads.dk, {d.B, d.T, d.H, d.K});
  check_shape(where, "dv", grads.dv, {d.B, d.T, d.H, d.V});
  check_shape(where, "ds", grads.ds, {d.B, d.T, d.H, d.M});
  if (has_gate) check_shape(where, "dg", grads.dg, {d.B, d.T, d.H, d.M});
  for (const TensorView<T, 4>* view : {&grads.dq, &grads.dk, &grads.dv, &grads.ds})
    linattn::detail::check_inner_contiguous(where, "gradient", *view);
  if (has_gate) linattn::detail::check_inner_contiguous(where, "dg", grads.dg);
  const auto spans = linattn::detail::sequence_spans(where, d.B, d.T, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  if (initial_state) detail::check_state(where, "initial_state", *initial_state, N, d);
  if (dht) {
    linattn::detail::check_state(where, "dht.hk", dht->hk, {N, d.H, d.K, d.M});
    linattn::detail::check_state(where, "dht.hv", dht->hv, {N, d.H, d.M, d.V});
  }
  if (grads.dh0) {
    if (grads.dh0->hk.shape() != Shape<4>{N, d.H, d.K, d.M} || grads.dh0->hv.shape() != Shape<4>{N, d.H, d.M, d.V})
      *grads.dh0 = State<T>(N, d.H, d.K, d.M, d.V);
    std::fill(grads.dh0->log_norm.vector().begin(), grads.dh0->log_norm.vector().end(), Acc(0));
  }
  const Acc scale = static_cast<Acc>(opt.scale.value_or(1.0 / std::sqrt(static_cast<double>(d.K))));
  using linattn::detail::Rows;
  using linattn::detail::GateAxis;

  linattn::detail::parallel_for(N * d.H, opt.threads, [&](index_t item) {
    const index_t n = item / d.H, h = item % d.H, G = d.G, M = d.M;
    const auto& sp = spans[static_cast<std::size_t>(n)];
    const index_t L = sp.end - sp.begin;
    const auto rows = [&](auto view, index_t head) {
      using E = std::remove_pointer_t<decltype(view.data())>;
      return Rows<E>{view.ptr(sp.batch, sp.begin, head), view.stride(1)};
    };
    // s', g' (the fallback's, or copies) and z after each row [L, M].
    std::vector<Acc> z(static_cast<std::size_t>(M), -std::numeric_limits<Acc>::infinity());
    if (initial_state) std::copy_n(initial_state->log_norm.view().ptr(n, h), M, z.begin());
    const std::vector<Acc> z_start = z;
    // Per-thread buffers, every element written before it is read: fresh zeroed vectors of
    // G·L·M values per item were half the backward's time (memset and page faults, measured
    // with perf on BM_GSA_ChunkBackward, K = 64, T = 2048).
    struct Buffers {
      std::vector<Acc> s_rows, g_rows, z_rows;  // [L, M]
      std::vector<Acc> p, dp;                   // [G, L, M] pass 2's queries (softmax), their gradient
      std::vector<Acc> ds1, dg1, ds2, dg2;      // [L, M] each pass's ds', dg'
      std::vector<Acc> hk, hk_states;           // [K, M]; [NT + 1, K, M] pass 1's chunk states
    };
    thread_local Buffers buf;
    const auto sized = [](std::vector<Acc>& b, index_t count) -> std::vector<Acc>& {
      b.resize(static_cast<std::size_t>(count));
      return b;
    };
    std::vector<Acc>& s_rows = buf.s_rows;
    std::vector<Acc>& g_rows = buf.g_rows;
    std::vector<Acc>& z_rows = sized(buf.z_rows, has_gate ? 0 : L * M);
    detail::slot_inputs(s.ptr(sp.batch, sp.begin, h), s.stride(1), has_gate ? g.ptr(sp.batch, sp.begin, h) : nullptr,
                        has_gate ? g.stride(1) : 0, L, M, z.data(), s_rows, g_rows, has_gate ? nullptr : z_rows.data());
    const Rows<const Acc> s_in{s_rows.data(), M}, g_in{g_rows.data(), M};

    // Pass 1 forward per reader: p = softmax(scale · q hk) [G, L, M]. The chunk form reads the
    // kv head's state entering each chunk once for all G readers and keeps those states
    // (hk_states [NT + 1, K, M]) for pass 1's backward, which then does not recompute them.
    std::vector<Acc>& p = sized(buf.p, G * L * M);
    std::vector<Acc>& hk = sized(buf.hk, d.K * M);
    std::vector<Acc>& hk_states = buf.hk_states;
    linattn::detail::HeadSlice<T, T, Acc, Acc, Acc> p1;
    p1.k = k.ptr(sp.batch, sp.begin, h);
    p1.v = s_rows.data();
    p1.g = g_rows.data();
    p1.q_rs = q.stride(1);
    p1.k_rs = k.stride(1);
    p1.v_rs = p1.g_rs = p1.o_rs = M;
    p1.K = d.K;
    p1.V = M;
    if (form != Form::recurrent) {
      const index_t C = opt.chunk_size, NT = (L + C - 1) / C, KM = d.K * M;
      hk_states.resize(static_cast<std::size_t>((NT + 1) * KM));
      if (initial_state) std::copy_n(initial_state->hk.head(n, h), KM, hk_states.begin());
      else std::fill_n(hk_states.begin(), KM, Acc(0));
      thread_local linattn::detail::ChunkWorkspace<Acc> cw;
      linattn::detail::chunk_prepare<GateAxis::value>(cw, std::min(C, std::max<index_t>(L, 1)), d.K, M);
      for (index_t c = 0; c < NT; ++c) {
        const index_t s0 = c * C, Lc = std::min(C, L - s0);
        Acc* H_in = hk_states.data() + c * KM;
        linattn::detail::chunk_load_keys<GateAxis::value>(p1, s0, Lc, cw);
        for (index_t r = 0; r < G; ++r) {
          linattn::detail::chunk_output<GateAxis::value>(q.ptr(sp.batch, sp.begin + s0, h * G + r), q.stride(1), Lc,
                                                         scale, H_in, d.K, M, cw);
          linattn::detail::store_output(p.data() + (r * L + s0) * M, M, cw.O.data(), M, Lc, M);
        }
        std::copy_n(H_in, KM, H_in + KM);
        linattn::detail::chunk_advance<GateAxis::value>(H_in + KM, d.K, M, Lc, cw);
      }
    } else {
      thread_local linattn::detail::RecurrentWorkspace<Acc> rw;
      const index_t block = linattn::detail::RecurrentTiles<Acc>::kTimeBlock;
      for (index_t r = 0; r < G; ++r) {
        if (initial_state) std::copy_n(initial_state->hk.head(n, h), d.K * M, hk.begin());
        else std::fill(hk.begin(), hk.end(), Acc(0));
        for (index_t t0 = 0; t0 < L; t0 += block) {
          auto part = p1;
          part.q = q.ptr(sp.batch, sp.begin + t0, h * G + r);
          part.k = p1.k + t0 * p1.k_rs;
          part.v = s_rows.data() + t0 * M;
          part.g = g_rows.data() + t0 * M;
          part.o = p.data() + (r * L + t0) * M;
          part.len = std::min(block, L - t0);
          linattn::detail::recurrent_head<GateAxis::value>(part, hk.data(), scale, rw);
        }
      }
    }
    linattn::detail::softmax_rows(p.data(), G * L, M, M);

    // Pass 2 backward → dp [G, L, M], ds2, dg2 [L, M], dv, dh0.hv.
    std::vector<Acc>& dp = sized(buf.dp, G * L * M);
    std::vector<Acc>& ds2 = sized(buf.ds2, L * M);
    std::vector<Acc>& dg2 = sized(buf.dg2, L * M);
    std::vector<Acc>& ds1 = sized(buf.ds1, L * M);
    std::vector<Acc>& dg1 = sized(buf.dg1, L * M);
    thread_local std::vector<Acc> ws;
    thread_local linattn::detail::ChunkBackwardWorkspace<Acc> cws;
    const auto run = [&](auto axis, const linattn::detail::BackwardSlice<Acc, Acc, Acc>& b, const Acc* saved) {
      if (form == Form::recurrent) linattn::detail::recurrent_backward_slice<decltype(axis)::value>(b, ws);
      else linattn::detail::chunk_backward_slice<decltype(axis)::value>(b, opt.chunk_size, cws, saved);
    };
    using KeyAxis = std::integral_constant<GateAxis, GateAxis::key>;
    using ValueAxis = std::integral_constant<GateAxis, GateAxis::value>;
    {
      linattn::detail::BackwardSlice<Acc, Acc, Acc> b;
      b.len = L;
      b.K = M;
      b.V = d.V;
      b.readers = G;
      b.scale = Acc(1);
      for (index_t r = 0; r < G; ++r) {
        b.q.push_back({p.data() + r * L * M, M});
        b.dout.push_back(rows(dout, h * G + r));
        b.dq.push_back({dp.data() + r * L * M, M});
      }
      b.k = s_in;
      b.v = rows(v, h);
      b.g = g_in;
      b.h0 = initial_state ? initial_state->hv.head(n, h) : nullptr;
      b.dht = dht ? dht->hv.head(n, h) : nullptr;
      b.dk = {ds2.data(), M};
      b.dv = rows(grads.dv, h);
      b.dg = {dg2.data(), M};
      b.dh0 = grads.dh0 ? grads.dh0->hv.head(n, h) : nullptr;
      run(KeyAxis{}, b, nullptr);
    }
    // Softmax backward, in place: dok = p ⊙ (dp − Σ_m p_m dp_m).
    for (index_t row = 0; row < G * L; ++row) {
      const Acc* pr = p.data() + row * M;
      Acc* dr = dp.data() + row * M;
      Acc dot = 0;
      for (index_t m = 0; m < M; ++m) dot += pr[m] * dr[m];
      for (index_t m = 0; m < M; ++m) dr[m] = pr[m] * (dr[m] - dot);
    }
    // Pass 1 backward → dq, dk, ds1, dg1, dh0.hk.
    {
      linattn::detail::BackwardSlice<Acc, Acc, Acc> b;
      b.len = L;
      b.K = d.K;
      b.V = M;
      b.readers = G;
      b.scale = scale;
      for (index_t r = 0; r < G; ++r) {
        b.q.push_back(rows(q, h * G + r));
        b.dout.push_back({dp.data() + r * L * M, M});
        b.dq.push_back(rows(grads.dq, h * G + r));
      }
      b.k = rows(k, h);
      b.v = s_in;
      b.g = g_in;
      b.h0 = initial_state ? initial_state->hk.head(n, h) : nullptr;
      b.dht = dht ? dht->hk.head(n, h) : nullptr;
      b.dk = rows(grads.dk, h);
      b.dv = {ds1.data(), M};
      b.dg = {dg1.data(), M};
      b.dh0 = grads.dh0 ? grads.dh0->hk.head(n, h) : nullptr;
      run(ValueAxis{}, b, form != Form::recurrent ? hk_states.data() : nullptr);
    }
    // ds' and dg' of both passes; with g given they are the gradients, else through the
    // fallback: s'_t = e^{s_t − z_t}, g'_t = z_{t−1} − z_t, z_t = log(e^{z_{t−1}} + e^{s_t}).
    const auto ds_out = rows(grads.ds, h);
    if (has_gate) {
      const auto dg_out = rows(grads.dg, h);
      for (index_t t = 0; t < L; ++t)
        for (index_t m = 0; m < M; ++m) {
          ds_out[t][m] = ds1[t * M + m] + ds2[t * M + m];
          dg_out[t][m] = dg1[t * M + m] + dg2[t * M + m];
        }
      return;
    }
    std::vector<Acc> dz(static_cast<std::size_t>(M), Acc(0));  // dL/dz_t carried from row t + 1
    for (index_t t = L; t-- > 0;) {
      for (index_t m = 0; m < M; ++m) {
        const index_t i = t * M + m;
        const Acc st = s_rows[static_cast<std::size_t>(i)], dst = ds1[i] + ds2[i], dgt = dg1[i] + dg2[i];
        const Acc z_prev = t ? z_rows[static_cast<std::size_t>(i - M)] : z_start[static_cast<std::size_t>(m)];
        const bool first = z_prev == -std::numeric_limits<Acc>::infinity();  // g'_t = 0, a constant
        const Acc Z = dz[m] - dst * st - (first ? Acc(0) : dgt);  // total dL/dz_t
        ds_out[t][m] = dst * st + Z * st;
        // To z_{t−1}: through g'_t (+dg'_t) and through z_t = lae(z_{t−1}, s_t) (Z e^{z_{t−1} − z_t}).
        const Acc z_t = z_rows[static_cast<std::size_t>(i)];
        dz[m] = first ? Acc(0) : dgt + Z * std::exp(z_prev - z_t);
      }
    }
  });
}

}  // namespace detail

// Backward of the forward above, token by token: pass 2's backward (q = p, k = s, v, key-axis
// gate, scale 1), the softmax's, then pass 1's (value-axis gate), each the gated recurrence's
// backward (ops/recurrence/recurrent_backward.hpp) with the G query heads of a kv head as
// readers of its states, so dk, dv, ds, dg and dh0 are summed per kv head. Without g, the
// gradients flow through the fallback's construction of s and g (SPEC §3) back to s.
// Nothing is kept from the forward: per (sequence, kv head) the backward recomputes pass 1
// and holds (4 + 3·G)·L·M values of slot scores and their gradients besides the states.
template <class T>
void recurrent_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, in<T, 4> dout, const State<T>* initial_state,
                        const State<T>* dht, const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::recurrent, q, k, v, s, g, dout, initial_state, dht, grads, opt);
}

// The same gradients in chunk form: both passes' backward over chunks of options.chunk_size
// rows (ops/recurrence/chunk_backward.hpp), pass 1 recomputed by the chunk forward. Memory as
// recurrent_backward, plus ⌈L / C⌉ + 1 states of each pass per (sequence, kv head) in flight.
template <class T>
void chunk_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, in<T, 4> dout, const State<T>* initial_state,
                    const State<T>* dht, const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::chunk, q, k, v, s, g, dout, initial_state, dht, grads, opt);
}

// The fused chunk form's backward is the chunk form's (the gradients of the same function).
template <class T>
void fused_chunk_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> s, in<T, 4> g, in<T, 4> dout, const State<T>* initial_state,
                          const State<T>* dht, const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::chunk, q, k, v, s, g, dout, initial_state, dht, grads, opt);
}

// One decode step for every sequence and head, updating `state` in place:
//   q [N, HQ, K]   k [N, H, K]   v [N, H, V]   s, g [N, H, M] (g may be empty)   o [N, HQ, V]
template <class T>
void step(in<T, 3> q, in<T, 3> k,
          in<T, 3> v, in<T, 3> s,
          in<T, 3> g, TensorView<T, 3> o, State<T>& state,
          const StepOptions& options = {}) {
  using Acc = acc_t<T>;
  constexpr const char* where = "linattn::gsa::step";
  // Reuse the sequence checks by viewing the token as a T = 1 sequence.
  auto as4 = [](auto view) {
    using E = std::remove_pointer_t<decltype(view.data())>;
    return TensorView<E, 4>(view.data(), {view.size(0), 1, view.size(1), view.size(2)},
                            {view.stride(0), view.stride(0), view.stride(1), view.stride(2)});
  };
  const auto d = detail::check_inputs<T>(where, as4(q), as4(k), as4(v), as4(s), as4(g), as4(o));
  detail::check_state(where, "state", state, d.B, d);
  const Acc scale = static_cast<Acc>(options.scale.value_or(1.0 / std::sqrt(static_cast<double>(d.K))));
  const bool has_gate = !g.empty();
  const auto threads = linattn::detail::step_threads(options.threads, d.B * d.H * (d.K + d.V) * d.M);
  linattn::detail::parallel_for(d.B * d.H, threads, [&](index_t item) {
    const index_t n = item / d.H, h = item % d.H;
    thread_local std::vector<Acc> s_row, g_row, scores, out, scratch;
    detail::slot_inputs(s.ptr(n, h), 0, has_gate ? g.ptr(n, h) : nullptr, 0, 1, d.M,
                        state.log_norm.view().ptr(n, h), s_row, g_row);
    scores.resize(static_cast<std::size_t>(d.M));
    Acc* hk = state.hk.head(n, h);
    Acc* hv = state.hv.head(n, h);
    for (index_t gq = 0; gq < d.G; ++gq) {
      const index_t hq = h * d.G + gq;
      if (gq == 0) {  // the first query head of the group advances the kv head's states
        linattn::detail::step_head<linattn::detail::GateAxis::value>(q.ptr(n, hq), k.ptr(n, h), s_row.data(),
                                                                      g_row.data(), scores.data(), hk, d.K, d.M,
                                                                      scale, scratch);
        linattn::detail::softmax_rows(scores.data(), 1, d.M, d.M);
        linattn::detail::step_head<linattn::detail::GateAxis::key>(scores.data(), s_row.data(), v.ptr(n, h),
                                                                    g_row.data(), o.ptr(n, hq), hv, d.M, d.V, Acc(1),
                                                                    scratch);
      } else {  // the others read the updated states
        detail::read_state(q.ptr(n, hq), hk, d.K, d.M, scale, scores.data());
        linattn::detail::softmax_rows(scores.data(), 1, d.M, d.M);
        out.resize(static_cast<std::size_t>(d.V));
        detail::read_state(scores.data(), hv, d.M, d.V, Acc(1), out.data());
        for (index_t j = 0; j < d.V; ++j) o.ptr(n, hq)[j] = static_cast<T>(out[static_cast<std::size_t>(j)]);
      }
    }
  });
}

}  // namespace linattn::gsa
