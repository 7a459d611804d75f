// Gated linear attention (SPEC §2): S_t = diag(e^{gk_t}) S_{t-1} + k_tᵀ v_t,  o_t = scale · q_t S_t.
//
//   q, k, gk [B, T, H, K]   v, o [B, T, H, V]   state [N, H, K, V]   (N = B, or sequences in cu_seqlens)
//
// gla::recurrent and gla::chunk compute the same thing (token by token / matrix products over
// chunks); gla::step advances a state by one token (decode). The state is a value
// (RecurrentState): pass it as the initial state and/or receive the final state; the two
// pointers may be the same object (prefill in place).
#pragma once

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/form.hpp"
#include "linattn/core/state.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/ops/gated_recurrence.hpp"
#include "linattn/ops/recurrence/chunk.hpp"
#include "linattn/ops/recurrence/driver.hpp"
#include "linattn/ops/recurrence/chunk_backward.hpp"
#include "linattn/ops/recurrence/recurrent_backward.hpp"

namespace linattn::gla {

template <class T>
using State = RecurrentState<T>;

struct Options {
  std::optional<double> scale;                // default K^-1/2 (SPEC §2)
  index_t chunk_size = 64;                    // rows per chunk (chunk form); any value >= 1
  std::span<const std::int64_t> cu_seqlens;   // packed sequences [N+1]; empty: B sequences
  Threads threads;                            // parallel over (sequence, head)
};

// What a training forward (gla::chunk_train) keeps for gla::chunk_backward: for every
// (sequence, head), the state entering each of its ⌈len / C⌉ chunks and the final state, in
// acc_t<T> — (⌈len / C⌉ + 1)·K·V values per (sequence, head), the chunk algorithm's one state
// per chunk (B = 1, H = 4, K = V = 128, T = 8192, C = 64: 33.8 MB beside 84 MB of inputs).
// With it the backward does not recompute them (a fifth of its work).
template <class T>
struct ChunkStates {
  using value_type = acc_t<T>;
  index_t heads = 0, key_dim = 0, value_dim = 0, chunk_size = 0;
  std::vector<index_t> first;     // [N + 1]: sequence n's states are [first[n], first[n + 1]) per head
  std::vector<value_type> data;   // per sequence n: [H, first[n + 1] − first[n], K, V]

  index_t sequences() const { return first.empty() ? 0 : static_cast<index_t>(first.size()) - 1; }
  // The states of (sequence n, head h), [⌈len / C⌉ + 1, K, V].
  index_t offset(index_t n, index_t h) const {
    const auto i = static_cast<std::size_t>(n);
    return (first[i] * heads + h * (first[i + 1] - first[i])) * key_dim * value_dim;
  }
  std::size_t bytes() const { return data.size() * sizeof(value_type); }
};

namespace detail {

using linattn::detail::GateAxis;

using linattn::Form;  // core/form.hpp

struct Dims {
  index_t B, T, H, K, V;
};

// The checks every GLA entry point makes on q, k, v, gk and one [B, T, H, V] tensor (o in the
// forward, do in the backward), and on the chunk size of the chunk form.
template <class T>
Dims check_inputs(const char* where, Form form, TensorView<const T, 4> q, TensorView<const T, 4> k,
                  TensorView<const T, 4> v, TensorView<const T, 4> gk, const char* out_name,
                  TensorView<const T, 4> out, const Options& opt) {
  using linattn::detail::check_inner_contiguous;
  using linattn::detail::check_shape;
  check_shape(where, "q", q, {-1, -1, -1, -1});
  const index_t B = q.size(0), T_ = q.size(1), H = q.size(2), K = q.size(3);
  check_shape(where, "k", k, {B, T_, H, K});
  check_shape(where, "gk", gk, {B, T_, H, K});
  check_shape(where, "v", v, {B, T_, H, -1});
  const index_t V = v.size(3);
  check_shape(where, out_name, out, {B, T_, H, V});
  check_inner_contiguous(where, "q", q);
  check_inner_contiguous(where, "k", k);
  check_inner_contiguous(where, "v", v);
  check_inner_contiguous(where, "gk", gk);
  check_inner_contiguous(where, out_name, out);
  if (form == Form::chunk && opt.chunk_size < 1)
    linattn::detail::fail(where, "chunk_size must be >= 1, got " + std::to_string(opt.chunk_size));
  return {B, T_, H, K, V};
}

template <class T>
void forward(Form form, TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
             TensorView<const T, 4> gk, TensorView<T, 4> o, const State<T>* initial_state,
             State<T>* final_state, const Options& opt, ChunkStates<T>* saved = nullptr) {
  using Acc = acc_t<T>;
  const char* where = form == Form::chunk         ? "linattn::gla::chunk"
                      : form == Form::fused_chunk ? "linattn::gla::fused_chunk"
                                                  : "linattn::gla::recurrent";
  const Dims dims = check_inputs<T>(where, form, q, k, v, gk, "o", TensorView<const T, 4>(o), opt);
  // named copies, not a structured binding: clang 14 cannot capture those in the lambda below
  const index_t B = dims.B, T_ = dims.T, H = dims.H, K = dims.K, V = dims.V;
  linattn::detail::check_inner_contiguous(where, "o", o);
  const auto spans = linattn::detail::sequence_spans(where, B, T_, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  const Shape<4> state_shape{N, H, K, V};
  if (initial_state) linattn::detail::check_state(where, "initial_state", *initial_state, state_shape);
  if (final_state && final_state != initial_state && final_state->shape() != state_shape)
    *final_state = State<T>(N, H, K, V);
  const Acc scale = static_cast<Acc>(opt.scale.value_or(1.0 / std::sqrt(static_cast<double>(K))));
  if (saved) {  // the chunk form only: one state per chunk and the final one, per (sequence, head)
    saved->heads = H;
    saved->key_dim = K;
    saved->value_dim = V;
    saved->chunk_size = opt.chunk_size;
    saved->first.assign(1, 0);
    for (const auto& sp : spans)
      saved->first.push_back(saved->first.back() + (sp.end - sp.begin + opt.chunk_size - 1) / opt.chunk_size + 1);
    saved->data.resize(static_cast<std::size_t>(
        checked_mul(checked_mul(saved->first.back(), H, "saved states"), checked_mul(K, V, "saved states"), "saved states")));
  }

  // Rows per block: the kernels' own time block (64), or whole chunks for the chunk form.
  const index_t block = form == Form::chunk ? opt.chunk_size * std::max<index_t>(1, 64 / opt.chunk_size) : 64;
  struct Item {
    std::vector<Acc> S;  // [heads of the item, K, Vb]: the item's value columns of each state
    linattn::detail::ChunkWorkspace<Acc> chunk;
    linattn::detail::FusedWorkspace<Acc> fused;
    linattn::detail::RecurrentWorkspace<Acc> recurrent;
  };
  using linattn::detail::HeadRange;
  using linattn::detail::SequenceSpan;
  const auto begin = [&](const HeadRange& r, const SequenceSpan&) {
    const index_t Vb = r.v1 - r.v0;
    Item item;
    item.S.assign(static_cast<std::size_t>((r.last - r.first) * K * Vb), Acc(0));
    if (initial_state)
      for (index_t h = r.first; h < r.last; ++h)
        for (index_t i = 0; i < K; ++i)
          std::copy_n(initial_state->head(r.sequence, h) + i * V + r.v0, Vb, item.S.begin() + ((h - r.first) * K + i) * Vb);
    return item;
  };
  const auto run = [&](Item& item, const HeadRange& r, const SequenceSpan& sp, index_t h, index_t t0, index_t len) {
    const index_t Vb = r.v1 - r.v0;
    linattn::detail::HeadSlice<T, T, T, T, T> x;
    x.q = q.ptr(sp.batch, t0, h);
    x.k = k.ptr(sp.batch, t0, h);
    x.v = v.ptr(sp.batch, t0, h) + r.v0;
    x.g = gk.ptr(sp.batch, t0, h);
    x.o = o.ptr(sp.batch, t0, h) + r.v0;
    x.q_rs = q.stride(1);
    x.k_rs = k.stride(1);
    x.v_rs = v.stride(1);
    x.g_rs = gk.stride(1);
    x.o_rs = o.stride(1);
    x.len = len;
    x.K = K;
    x.V = Vb;
    Acc* Sh = item.S.data() + (h - r.first) * K * Vb;
    if (form == Form::chunk)
      linattn::detail::chunk_head<GateAxis::key>(
          x, Sh, scale, opt.chunk_size, item.chunk,
          saved ? saved->data.data() + saved->offset(r.sequence, h) + (t0 - sp.begin) / opt.chunk_size * K * V : nullptr);
    else if (form == Form::fused_chunk)
      linattn::detail::fused_chunk_head<GateAxis::key>(x, Sh, scale, item.fused);
    else
      linattn::detail::recurrent_head<GateAxis::key>(x, Sh, scale, item.recurrent);
  };
  const auto finish = [&](Item& item, const HeadRange& r, const SequenceSpan& sp) {
    const index_t Vb = r.v1 - r.v0;
    if (final_state)
      for (index_t h = r.first; h < r.last; ++h)
        for (index_t i = 0; i < K; ++i)
          std::copy_n(item.S.begin() + ((h - r.first) * K + i) * Vb, Vb, final_state->head(r.sequence, h) + i * V + r.v0);
    if (saved)  // the last of the slice's states: the final one (Vb = V in the chunk form)
      for (index_t h = r.first; h < r.last; ++h)
        std::copy_n(item.S.begin() + (h - r.first) * K * V, K * V,
                    saved->data.data() + saved->offset(r.sequence, h) +
                        (sp.end - sp.begin + opt.chunk_size - 1) / opt.chunk_size * K * V);
  };
  linattn::detail::for_each_block(spans, H, V, block, opt.threads, /*split_values=*/form != Form::chunk, begin, run,
                                  finish);
}

}  // namespace detail

// Token-by-token reference form.
template <class T>
void recurrent(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, TensorView<T, 4> o,
               const State<T>* initial_state = nullptr, State<T>* final_state = nullptr,
               const Options& options = {}) {
  detail::forward(detail::Form::recurrent, q, k, v, gk, o, initial_state, final_state, options);
}

// Chunk-parallel form (matrix products over chunks of options.chunk_size rows).
template <class T>
void chunk(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, TensorView<T, 4> o,
           const State<T>* initial_state = nullptr, State<T>* final_state = nullptr,
           const Options& options = {}) {
  detail::forward(detail::Form::chunk, q, k, v, gk, o, initial_state, final_state, options);
}

// The chunk forward of a training step: gla::chunk, and `saved` receives the chunk states that
// chunk_backward then reads instead of recomputing them (see ChunkStates for their size).
template <class T>
void chunk_train(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, TensorView<T, 4> o, const State<T>* initial_state,
                 State<T>* final_state, ChunkStates<T>& saved, const Options& options = {}) {
  detail::forward(detail::Form::chunk, q, k, v, gk, o, initial_state, final_state, options, &saved);
}

// Fused chunk form: chunks of 2 tokens (FusedTiles::kGroup) with the state held in registers, never stored
// (upstream's non-materialised "fused_chunk" algorithm, SPEC §2). The fastest form for
// prefill on a CPU; options.chunk_size does not apply.
template <class T>
void fused_chunk(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, TensorView<T, 4> o,
                 const State<T>* initial_state = nullptr, State<T>* final_state = nullptr,
                 const Options& options = {}) {
  detail::forward(detail::Form::fused_chunk, q, k, v, gk, o, initial_state, final_state, options);
}

// The form named by a tag (core/form.hpp): gla::forward(form::chunk, q, k, v, gk, o, ...) is
// gla::chunk(q, k, v, gk, o, ...), for code that chooses the form in a template parameter.
template <class F, class T>
void forward(F, in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, TensorView<T, 4> o, const State<T>* initial_state = nullptr,
             State<T>* final_state = nullptr, const Options& options = {}) {
  if constexpr (form::is_tag_v<F>)
    detail::forward(F::value, q, k, v, gk, o, initial_state, final_state, options);
  else
    static_assert(linattn::detail::dependent_false<F>,
                  "linattn::gla::forward: the first argument is not a form of linattn::gla "
                  "(form::recurrent, form::chunk or form::fused_chunk)");
}

// Gradients of L = Σ o ⊙ do + Σ S_T ⊙ dht (SPEC §9.1) with respect to every input of the
// forward, written into views of the inputs' shapes; dh0 [N, H, K, V] is (re)shaped as needed.
// A null dh0 pointer: not wanted.
template <class T>
struct Gradients {
  TensorView<T, 4> dq, dk, dv, dgk;
  State<T>* dh0 = nullptr;
};

namespace detail {

template <class T>
void backward(Form form, TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
              TensorView<const T, 4> gk, TensorView<const T, 4> dout, const State<T>* initial_state,
              const State<T>* dht, const Gradients<T>& grads, const Options& opt,
              const ChunkStates<T>* saved = nullptr) {
  using Acc = acc_t<T>;
  using linattn::detail::check_inner_contiguous;
  using linattn::detail::check_shape;
  const char* where = form == Form::recurrent ? "linattn::gla::recurrent_backward" : "linattn::gla::chunk_backward";
  const Dims dims = check_inputs<T>(where, form, q, k, v, gk, "do", dout, opt);
  // named copies, not a structured binding: clang 14 cannot capture those in the lambda below
  const index_t B = dims.B, T_ = dims.T, H = dims.H, K = dims.K, V = dims.V;
  check_shape(where, "dq", grads.dq, {B, T_, H, K});
  check_shape(where, "dk", grads.dk, {B, T_, H, K});
  check_shape(where, "dv", grads.dv, {B, T_, H, V});
  check_shape(where, "dgk", grads.dgk, {B, T_, H, K});
  check_inner_contiguous(where, "dq", grads.dq);
  check_inner_contiguous(where, "dk", grads.dk);
  check_inner_contiguous(where, "dv", grads.dv);
  check_inner_contiguous(where, "dgk", grads.dgk);
  const auto spans = linattn::detail::sequence_spans(where, B, T_, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  const Shape<4> state_shape{N, H, K, V};
  if (initial_state) linattn::detail::check_state(where, "initial_state", *initial_state, state_shape);
  if (dht) linattn::detail::check_state(where, "dht", *dht, state_shape);
  if (grads.dh0 && grads.dh0->shape() != state_shape) *grads.dh0 = State<T>(N, H, K, V);
  if (saved) {
    bool same = saved->sequences() == N && saved->heads == H && saved->key_dim == K && saved->value_dim == V &&
                saved->chunk_size == opt.chunk_size;
    for (index_t n = 0; same && n < N; ++n) {
      const auto& sp = spans[static_cast<std::size_t>(n)];
      same = saved->first[static_cast<std::size_t>(n) + 1] - saved->first[static_cast<std::size_t>(n)] ==
             (sp.end - sp.begin + opt.chunk_size - 1) / opt.chunk_size + 1;
    }
    same = same && saved->data.size() == static_cast<std::size_t>(saved->first.back() * H * K * V);
    if (!same)
      linattn::detail::fail(where, "saved chunk states (N = " + std::to_string(saved->sequences()) + ", H = " +
                                       std::to_string(saved->heads) + ", K = " + std::to_string(saved->key_dim) +
                                       ", V = " + std::to_string(saved->value_dim) + ", chunk_size = " +
                                       std::to_string(saved->chunk_size) + ") are not from a forward of these inputs (N = " +
                                       std::to_string(N) + ", H = " + std::to_string(H) + ", K = " + std::to_string(K) +
                                       ", V = " + std::to_string(V) + ", chunk_size = " + std::to_string(opt.chunk_size) + ")");
  }
  const Acc scale = static_cast<Acc>(opt.scale.value_or(1.0 / std::sqrt(static_cast<double>(K))));
  linattn::detail::parallel_for(N * H, opt.threads, [&](index_t item) {
    const index_t n = item / H, h = item % H;
    const auto& sp = spans[static_cast<std::size_t>(n)];
    const auto rows = [&](auto view) {
      using E = std::remove_pointer_t<decltype(view.data())>;
      return linattn::detail::Rows<E>{view.ptr(sp.batch, sp.begin, h), view.stride(1)};
    };
    linattn::detail::BackwardSlice<T, T, Acc> x;
    x.len = sp.end - sp.begin;
    x.K = K;
    x.V = V;
    x.scale = scale;
    x.q = {rows(q)};
    x.dout = {rows(dout)};
    x.k = rows(k);
    x.v = rows(v);
    x.g = rows(gk);
    x.h0 = initial_state ? initial_state->head(n, h) : nullptr;
    x.dht = dht ? dht->head(n, h) : nullptr;
    x.dq = {rows(grads.dq)};
    x.dk = rows(grads.dk);
    x.dv = rows(grads.dv);
    x.dg = rows(grads.dgk);
    x.dh0 = grads.dh0 ? grads.dh0->head(n, h) : nullptr;
    if (form == Form::recurrent) {
      thread_local std::vector<Acc> ws;
      linattn::detail::recurrent_backward_slice<GateAxis::key>(x, ws);
    } else {
      thread_local linattn::detail::ChunkBackwardWorkspace<Acc> ws;
      linattn::detail::chunk_backward_slice<GateAxis::key>(x, opt.chunk_size, ws,
                                                           saved ? saved->data.data() + saved->offset(n, h) : nullptr);
    }
  });
}

}  // namespace detail

// Backward of the forward above, token by token (the reference form). `dout` [B, T, H, V] is
// dL/do; `dht` (dL/dS_T, [N, H, K, V]) and `initial_state` may be null (zeros). Nothing is kept
// from the forward: the sweep recomputes the states from the inputs, so the memory between
// forward and backward is the inputs alone; per (sequence, head) the backward holds 2·K·V
// accumulators. Parallel over (sequence, head); each item is computed the same way whatever
// the thread count, so gradients are identical for any options.threads.
template <class T>
void recurrent_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, in<T, 4> dout, const State<T>* initial_state,
                        const State<T>* dht, const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::recurrent, q, k, v, gk, dout, initial_state, dht, grads, opt);
}

// Backward in chunk form (SPEC §9.3; ops/recurrence/chunk_backward.hpp), chunks of
// options.chunk_size rows in reverse. Two ways to get the state entering each chunk:
//   saved == nullptr  recomputed from the inputs: nothing but the inputs lives between forward
//                     and backward; while it runs, each (sequence, head) in flight holds
//                     ⌈len / C⌉ + 1 states of K·V;
//   saved             the ChunkStates gla::chunk_train kept from the same inputs and options
//                     (one state per chunk between forward and backward; a fifth less work).
//                     The first of them is h0, so initial_state is not read (pass null): an
//                     in-place prefill (initial_state == final_state) loses nothing.
// Both give the same gradients (to rounding); they are identical for any options.threads.
template <class T>
void chunk_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, in<T, 4> dout, const State<T>* initial_state,
                    const State<T>* dht, const Gradients<T>& grads, const Options& opt = {},
                    const ChunkStates<T>* saved = nullptr) {
  detail::backward(detail::Form::chunk, q, k, v, gk, dout, initial_state, dht, grads, opt, saved);
}

// The fused chunk form's backward is the chunk form's (the gradients of the same function).
template <class T>
void fused_chunk_backward(in<T, 4> q, in<T, 4> k, in<T, 4> v, in<T, 4> gk, in<T, 4> dout, const State<T>* initial_state,
                          const State<T>* dht, const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::chunk, q, k, v, gk, dout, initial_state, dht, grads, opt);
}

struct StepOptions {
  std::optional<double> scale;  // default K^-1/2
  Threads threads;
};

// One decode step for every sequence and head, updating `state` in place:
//   q, k, gk [N, H, K]   v, o [N, H, V]   state [N, H, K, V]
// This form takes the state as a view of memory the caller owns (its own buffers, a numpy
// array: the Python binding's decode step), each head's [K, V] matrix contiguous; the one
// below takes a RecurrentState.
template <class T>
void step(in<T, 3> q, in<T, 3> k, in<T, 3> v, in<T, 3> gk, TensorView<T, 3> o, TensorView<acc_t<T>, 4> state,
          const StepOptions& options = {}) {
  using Acc = acc_t<T>;
  using linattn::detail::check_inner_contiguous;
  using linattn::detail::check_shape;
  constexpr const char* where = "linattn::gla::step";
  check_shape(where, "q", q, {-1, -1, -1});
  const index_t N = q.size(0), H = q.size(1), K = q.size(2);
  check_shape(where, "k", k, {N, H, K});
  check_shape(where, "gk", gk, {N, H, K});
  check_shape(where, "v", v, {N, H, -1});
  const index_t V = v.size(2);
  check_shape(where, "o", o, {N, H, V});
  check_inner_contiguous(where, "q", q);
  check_inner_contiguous(where, "k", k);
  check_inner_contiguous(where, "v", v);
  check_inner_contiguous(where, "gk", gk);
  check_inner_contiguous(where, "o", o);
  check_shape(where, "state", state, {N, H, K, V});
  linattn::detail::require(state.stride(3) == 1 && state.stride(2) == V, where,
                           "state must hold each head's [K, V] matrix contiguously (strides [*, *, V, 1])");
  const Acc scale = static_cast<Acc>(options.scale.value_or(1.0 / std::sqrt(static_cast<double>(K))));
  linattn::detail::parallel_for(N * H, linattn::detail::step_threads(options.threads, N * H * K * V), [&](index_t item) {
    const index_t n = item / H, h = item % H;
    thread_local std::vector<Acc> scratch;
    linattn::detail::step_head<linattn::detail::GateAxis::key>(
        q.ptr(n, h), k.ptr(n, h), v.ptr(n, h), gk.ptr(n, h), o.ptr(n, h), state.ptr(n, h), K, V, scale,
        scratch);
  });
}

template <class T>
void step(in<T, 3> q, in<T, 3> k, in<T, 3> v, in<T, 3> gk, TensorView<T, 3> o, State<T>& state,
          const StepOptions& options = {}) {
  step<T>(q, k, v, gk, o, state.view(), options);  // its shape is checked there
}

}  // namespace linattn::gla
