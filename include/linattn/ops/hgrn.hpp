// HGRN: the element-wise gated recurrence of the MatMul-free LM's token mixer (SPEC §4).
//
//   x, gate, o [B, T, D]   state h [N, 1, 1, D]   (N = B, or sequences in cu_seqlens)
//   h_t = a_t ⊙ h_{t-1} + x_t,   o_t = h_t
//
// The decay a_t comes in one of two conventions, and the type says which (SPEC §8.1):
//   hgrn::log_gates(g)     a = e^{g}   (fla's HGRN op, the golden cases)
//   hgrn::linear_gates(f)  a = f       (matmulfreellm's kernel; MLGRU passes f = σ(·) directly)
// mmf(f) equals fla(log f); passing one where the other is meant is a compile error.
//
// This is the gated recurrence of ops/gated_recurrence.hpp with a one-row state (K = 1,
// q = k = 1, gate on the value axis); D is split into column blocks that run in parallel.
#pragma once

#include <algorithm>
#include <cstdint>
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
#include "linattn/ops/recurrence/recurrent_backward.hpp"

namespace linattn::hgrn {

// HGRN is the gated recurrence with one key (K = 1) and one head over all D features, so its
// state is GLA's and GSA's type, RecurrentState, of shape [N, 1, 1, D] (fla's [N, D] with H = K = 1),
// fp32 or wider (SPEC §8.15: upstream's fused kernels keep it in bf16; we do not).
template <class T>
using State = RecurrentState<T>;

// The state shape of N sequences of D features, and a zero state of it.
inline Shape<4> state_shape(index_t sequences, index_t features) { return {sequences, 1, 1, features}; }
template <class T>
State<T> zero_state(index_t sequences, index_t features) {
  return State<T>(sequences, 1, 1, features);
}
// A copy of a state in fla's layout, h [N, D] (any strides).
template <class T>
State<T> state_from_rows(TensorView<const acc_t<T>, 2> h) {
  return State<T>::from_tensor(TensorView<const acc_t<T>, 4>(h.data(), state_shape(h.size(0), h.size(1)),
                                                             {h.stride(0), h.stride(0), h.stride(0), h.stride(1)}));
}

template <class T>
struct LogGates {
  TensorView<const T, 3> g;  // [B, T, D] log decay (<= 0)
};
template <class T>
struct LinearGates {
  TensorView<const T, 3> f;  // [B, T, D] decay in (0, 1)
};
template <class T>
LogGates<T> log_gates(TensorView<const T, 3> g) {
  return {g};
}
template <class T>
LinearGates<T> linear_gates(TensorView<const T, 3> f) {
  return {f};
}

struct Options {
  index_t chunk_size = 128;                  // chunk form (SPEC §4: fla's chunk_hgrn uses 128)
  std::span<const std::int64_t> cu_seqlens;  // packed sequences [N+1]; empty: B sequences
  Threads threads;                           // parallel over (sequence, column block)
};

namespace detail {

using linattn::detail::GateAxis;
using linattn::detail::GateSpace;

// Columns per work item: enough for long vector loops, small enough that D = 1024 gives
// every thread work.
inline constexpr index_t kColumnBlock = 256;

template <class T, class Gates>
std::pair<TensorView<const T, 3>, GateSpace> gate_view(const Gates& gates) {
  if constexpr (std::is_same_v<Gates, LogGates<T>>)
    return {gates.g, GateSpace::log};
  else if constexpr (std::is_same_v<Gates, LinearGates<T>>)
    return {gates.f, GateSpace::linear};
  else
    static_assert(linattn::detail::dependent_false<Gates>,
                  "linattn::hgrn: pass the gate as hgrn::log_gates(g) (decay e^g, fla's convention) or "
                  "hgrn::linear_gates(f) (decay f, matmulfreellm's), of the inputs' element type: a bare view "
                  "does not say which of the two it holds (SPEC 8.1)");
}

using linattn::Form;  // core/form.hpp

template <class T, class Gates>
void forward(Form form, TensorView<const T, 3> x, const Gates& gates, TensorView<T, 3> o,
             const State<T>* initial_state, State<T>* final_state, const Options& opt) {
  using Acc = acc_t<T>;
  const char* where = form == Form::chunk ? "linattn::hgrn::chunk" : "linattn::hgrn::recurrent";
  if (form == Form::fused_chunk) linattn::detail::fail(where, "HGRN has no fused_chunk form");
  // Not a structured binding: lambdas below capture g and space, which C++20 compilers
  // before clang 16 reject for bindings.
  const std::pair<TensorView<const T, 3>, GateSpace> gate_and_space = gate_view<T>(gates);
  const TensorView<const T, 3> g = gate_and_space.first;
  const GateSpace space = gate_and_space.second;
  linattn::detail::check_shape(where, "x", x, {-1, -1, -1});
  const index_t B = x.size(0), T_ = x.size(1), D = x.size(2);
  linattn::detail::check_shape(where, space == GateSpace::log ? "g" : "f", g, {B, T_, D});
  linattn::detail::check_shape(where, "o", o, {B, T_, D});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "gate", g);
  linattn::detail::check_inner_contiguous(where, "o", o);
  if (form == Form::chunk && opt.chunk_size < 1)
    linattn::detail::fail(where, "chunk_size must be >= 1, got " + std::to_string(opt.chunk_size));
  const auto spans = linattn::detail::sequence_spans(where, B, T_, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  if (initial_state) linattn::detail::check_state(where, "initial_state", *initial_state, state_shape(N, D));
  if (final_state && final_state != initial_state && final_state->shape() != state_shape(N, D))
    *final_state = zero_state<T>(N, D);
  // One head of a one-row state (K = 1) whose D columns the driver may split across threads.
  // Blocks of rows: the recurrent kernels' time block, or whole chunks.
  const index_t block = form == Form::chunk ? opt.chunk_size * std::max<index_t>(1, 64 / opt.chunk_size)
                                            : linattn::detail::RecurrentTiles<Acc>::kTimeBlock;
  static const T one = T(1);
  struct Item {
    std::vector<Acc> h;  // [v1 - v0] the item's columns of the state
    linattn::detail::ChunkWorkspace<Acc> chunk;
    linattn::detail::RecurrentWorkspace<Acc> recurrent;
  };
  using linattn::detail::HeadRange;
  using linattn::detail::SequenceSpan;
  const auto begin = [&](const HeadRange& r, const SequenceSpan&) {
    Item item;
    item.h.assign(static_cast<std::size_t>(r.v1 - r.v0), Acc(0));
    if (initial_state) std::copy_n(initial_state->data() + r.sequence * D + r.v0, r.v1 - r.v0, item.h.begin());
    return item;
  };
  const auto run = [&](Item& item, const HeadRange& r, const SequenceSpan& sp, index_t, index_t t0, index_t len) {
    linattn::detail::HeadSlice<T, T, T, T, T> s;
    s.q = s.k = &one;  // q_rs = k_rs = 0: the scalar 1 on every row
    s.v = x.ptr(sp.batch, t0) + r.v0;
    s.g = g.ptr(sp.batch, t0) + r.v0;
    s.o = o.ptr(sp.batch, t0) + r.v0;
    s.v_rs = x.stride(1);
    s.g_rs = g.stride(1);
    s.o_rs = o.stride(1);
    s.len = len;
    s.K = 1;
    s.V = r.v1 - r.v0;
    s.gate_space = space;
    if (form == Form::chunk)
      linattn::detail::chunk_head<GateAxis::value>(s, item.h.data(), Acc(1), opt.chunk_size, item.chunk);
    else
      linattn::detail::recurrent_head<GateAxis::value>(s, item.h.data(), Acc(1), item.recurrent);
  };
  const auto finish = [&](Item& item, const HeadRange& r, const SequenceSpan&) {
    if (final_state) std::copy(item.h.begin(), item.h.end(), final_state->data() + r.sequence * D + r.v0);
  };
  linattn::detail::for_each_block(spans, 1, D, block, opt.threads, /*split_values=*/true, begin, run, finish);
}

}  // namespace detail

// Token-by-token form. gates: hgrn::log_gates(g) or hgrn::linear_gates(f).
template <class T, class Gates>
void recurrent(in<T, 3> x, const Gates& gates, TensorView<T, 3> o, const State<T>* initial_state = nullptr,
               State<T>* final_state = nullptr, const Options& options = {}) {
  detail::forward(detail::Form::recurrent, x, gates, o, initial_state, final_state, options);
}

// Chunk form (SPEC §4: local scans per chunk, then the carried state added).
template <class T, class Gates>
void chunk(in<T, 3> x, const Gates& gates, TensorView<T, 3> o, const State<T>* initial_state = nullptr,
           State<T>* final_state = nullptr, const Options& options = {}) {
  detail::forward(detail::Form::chunk, x, gates, o, initial_state, final_state, options);
}

// The form named by a tag (core/form.hpp): hgrn::forward(form::chunk, ...) is hgrn::chunk(...).
template <class F, class T, class Gates>
void forward(F, in<T, 3> x, const Gates& gates, TensorView<T, 3> o, const State<T>* initial_state = nullptr,
             State<T>* final_state = nullptr, const Options& options = {}) {
  if constexpr (std::is_same_v<F, form::fused_chunk_t>)
    static_assert(linattn::detail::dependent_false<F>,
                  "linattn::hgrn::forward: HGRN has no fused_chunk form (its state is one row per "
                  "sequence, already held in registers by the recurrent form): use form::recurrent or form::chunk");
  else if constexpr (form::is_tag_v<F>)
    detail::forward(F::value, x, gates, o, initial_state, final_state, options);
  else
    static_assert(linattn::detail::dependent_false<F>,
                  "linattn::hgrn::forward: the first argument is not a form of linattn::hgrn "
                  "(form::recurrent or form::chunk)");
}

// Gradients of L = Σ o ⊙ do + Σ h_T ⊙ dht (SPEC §9.5) w.r.t. x, the gate (dL/dg for log gates,
// dL/df for linear ones) and h0, written into views of the inputs' shapes; dh0 [N, 1, 1, D] is
// (re)shaped as needed, null: not wanted.
template <class T>
struct Gradients {
  TensorView<T, 3> dx, dgate;
  State<T>* dh0 = nullptr;
};

namespace detail {

template <class T, class Gates>
void backward(Form form, TensorView<const T, 3> x, const Gates& gates, TensorView<const T, 3> dout,
              const State<T>* initial_state, const State<T>* dht, const Gradients<T>& grads, const Options& opt) {
  using Acc = acc_t<T>;
  const char* where = form == Form::chunk ? "linattn::hgrn::chunk_backward" : "linattn::hgrn::recurrent_backward";
  if (form == Form::chunk && opt.chunk_size < 1)
    linattn::detail::fail(where, "chunk_size must be >= 1, got " + std::to_string(opt.chunk_size));
  const auto gate_and_space = detail::gate_view<T>(gates);  // no structured binding: captured below
  const TensorView<const T, 3> g = gate_and_space.first;
  const detail::GateSpace space = gate_and_space.second;
  linattn::detail::check_shape(where, "x", x, {-1, -1, -1});
  const index_t B = x.size(0), T_ = x.size(1), D = x.size(2);
  linattn::detail::check_shape(where, space == detail::GateSpace::log ? "g" : "f", g, {B, T_, D});
  linattn::detail::check_shape(where, "do", dout, {B, T_, D});
  linattn::detail::check_shape(where, "dx", grads.dx, {B, T_, D});
  linattn::detail::check_shape(where, "dgate", grads.dgate, {B, T_, D});
  linattn::detail::check_inner_contiguous(where, "x", x);
  linattn::detail::check_inner_contiguous(where, "gate", g);
  linattn::detail::check_inner_contiguous(where, "do", dout);
  linattn::detail::check_inner_contiguous(where, "dx", grads.dx);
  linattn::detail::check_inner_contiguous(where, "dgate", grads.dgate);
  const auto spans = linattn::detail::sequence_spans(where, B, T_, opt.cu_seqlens);
  const index_t N = static_cast<index_t>(spans.size());
  if (initial_state) linattn::detail::check_state(where, "initial_state", *initial_state, state_shape(N, D));
  if (dht) linattn::detail::check_state(where, "dht", *dht, state_shape(N, D));
  if (grads.dh0 && grads.dh0->shape() != state_shape(N, D)) *grads.dh0 = zero_state<T>(N, D);
  const index_t blocks = (D + detail::kColumnBlock - 1) / detail::kColumnBlock;
  static const T one = T(1);
  linattn::detail::parallel_for(N * blocks, opt.threads, [&](index_t item) {
    const index_t n = item / blocks, c0 = (item % blocks) * detail::kColumnBlock,
                  width = std::min(detail::kColumnBlock, D - c0);
    const auto& sp = spans[static_cast<std::size_t>(n)];
    T sink[2] = {};  // dq and dk of the scalar q = k = 1: not inputs, discarded
    linattn::detail::BackwardSlice<T, T, Acc> s;
    s.len = sp.end - sp.begin;
    s.K = 1;
    s.V = width;
    s.gate_space = space;
    s.q = {{&one, 0}};
    s.k = {&one, 0};
    s.v = {x.ptr(sp.batch, sp.begin) + c0, x.stride(1)};
    s.g = {g.ptr(sp.batch, sp.begin) + c0, g.stride(1)};
    s.dout = {{dout.ptr(sp.batch, sp.begin) + c0, dout.stride(1)}};
    s.dq = {{sink, 0}};
    s.dk = {sink + 1, 0};
    s.dv = {grads.dx.ptr(sp.batch, sp.begin) + c0, grads.dx.stride(1)};
    s.dg = {grads.dgate.ptr(sp.batch, sp.begin) + c0, grads.dgate.stride(1)};
    std::vector<Acc> h0(static_cast<std::size_t>(initial_state ? width : 0)),
        dhT(static_cast<std::size_t>(dht ? width : 0)), dh0(static_cast<std::size_t>(grads.dh0 ? width : 0));
    if (initial_state) std::copy_n(initial_state->data() + n * D + c0, width, h0.data());
    if (dht) std::copy_n(dht->data() + n * D + c0, width, dhT.data());
    s.h0 = initial_state ? h0.data() : nullptr;
    s.dht = dht ? dhT.data() : nullptr;
    s.dh0 = grads.dh0 ? dh0.data() : nullptr;
    thread_local std::vector<Acc> ws;
    linattn::detail::recurrent_backward_slice<detail::GateAxis::value>(s, ws);
    if (grads.dh0) std::copy_n(dh0.data(), width, grads.dh0->data() + n * D + c0);
  });
}

}  // namespace detail

// Backward of the forward above, token by token: the gated recurrence's backward with a
// one-row state (ops/recurrence/recurrent_backward.hpp). `dout` is dL/do; `initial_state` and
// `dht` [N, 1, 1, D] may be null (zeros). Nothing is kept from the forward; per column block the
// backward holds the state, its gradient and, for linear gates, the T states of the block.
template <class T, class Gates>
void recurrent_backward(in<T, 3> x, const Gates& gates, in<T, 3> dout, const State<T>* initial_state, const State<T>* dht,
                        const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::recurrent, x, gates, dout, initial_state, dht, grads, opt);
}

// The chunk form's backward. The element-wise recurrence has no matrix products to chunk
// (its chunk forward only reorders the same per-column scan), so its backward is the same
// reverse sweep, O(T·D) with the state and its gradient per column block; options.chunk_size
// is checked but does not change the gradients.
template <class T, class Gates>
void chunk_backward(in<T, 3> x, const Gates& gates, in<T, 3> dout, const State<T>* initial_state, const State<T>* dht,
                    const Gradients<T>& grads, const Options& opt = {}) {
  detail::backward(detail::Form::chunk, x, gates, dout, initial_state, dht, grads, opt);
}

// The decode step's options, as gla::StepOptions and gsa::StepOptions (HGRN has no scale).
struct StepOptions {
  Threads threads;
};

// One decode step, updating `state` [N, 1, 1, D] in place: x, gate, o [N, D].
template <class T, class Gate2>
void step(in<T, 2> x, const Gate2& gate, TensorView<T, 2> o, State<T>& state, const StepOptions& options = {}) {
  using Acc = acc_t<T>;
  constexpr const char* where = "linattn::hgrn::step";
  // The gate of one token: LogGates/LinearGates of a [N, 1, D] view.
  const auto gate_and_space = detail::gate_view<T>(gate);  // no structured binding: captured below
  const TensorView<const T, 3> g3 = gate_and_space.first;
  const detail::GateSpace space = gate_and_space.second;
  linattn::detail::check_shape(where, "x", x, {-1, -1});
  const index_t N = x.size(0), D = x.size(1);
  linattn::detail::check_shape(where, space == detail::GateSpace::log ? "g" : "f", g3, {N, 1, D});
  linattn::detail::check_shape(where, "o", o, {N, D});
  linattn::detail::check_state(where, "state", state, state_shape(N, D));
  static const T one = T(1);
  linattn::detail::parallel_for(N, linattn::detail::step_threads(options.threads, N * D), [&](index_t n) {
    thread_local std::vector<Acc> scratch;
    linattn::detail::step_head<detail::GateAxis::value>(&one, &one, x.ptr(n), g3.ptr(n), o.ptr(n),
                                                        state.data() + n * D, 1, D, Acc(1), scratch, space);
  });
}

// Gates for step: one token of every sequence, [N, D], as a [N, 1, D] view.
template <class T>
LogGates<T> log_gates(TensorView<const T, 2> g) {
  return {TensorView<const T, 3>(g.data(), {g.size(0), 1, g.size(1)}, {g.stride(0), g.stride(1), g.stride(1)})};
}
template <class T>
LinearGates<T> linear_gates(TensorView<const T, 2> f) {
  return {TensorView<const T, 3>(f.data(), {f.size(0), 1, f.size(1)}, {f.stride(0), f.stride(1), f.stride(1)})};
}

}  // namespace linattn::hgrn
