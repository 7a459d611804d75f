// MLGRU, the MatMul-free LM's token mixer (matmulfreellm HGRNBitAttention, SPEC §5.3):
//
//   i = BitLinear_i(x),  f = σ(BitLinear_f(x)),  f ← lb + (1 − lb) ⊙ f   (lower bound, if any)
//   i ← silu(i) ⊙ (1 − f)
//   h_t = f_t ⊙ h_{t−1} + i_t                      (HGRN with linear-space gates, SPEC §4)
//   out = BitLinear_o( RMSNorm_E(BitLinear_g(x); w_g, eps) ⊙ silu(h) )
//
//   x, out [B, T, D]   state h [B, E]
//
// The g projection is the normalised input and the recurrence output is the swish gate: what
// the released code computes (and the checkpoints learned), not the paper's equations (§8.8).
// The short-convolution branch is broken upstream and off in every model: not implemented.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/norm.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/nn/bitlinear.hpp"
#include "linattn/nn/options.hpp"
#include "linattn/ops/hgrn.hpp"

namespace linattn::nn {


class MLGRU {
 public:
  MLGRU() = default;
  // i, f, g: D → E; o: E → D; g_norm_weight [E]; lower_bound [E] or empty (layer 0, or
  // use_lower_bound = false).
  MLGRU(BitLinear i_proj, BitLinear f_proj, BitLinear g_proj, BitLinear o_proj, std::vector<float> g_norm_weight,
        float eps, std::vector<float> lower_bound = {})
      : i_(std::move(i_proj)),
        f_(std::move(f_proj)),
        g_(std::move(g_proj)),
        o_(std::move(o_proj)),
        g_norm_(std::move(g_norm_weight)),
        lower_bound_(std::move(lower_bound)),
        eps_(eps) {
    constexpr const char* where = "linattn::nn::MLGRU";
    const index_t D = i_.in_features(), E = i_.out_features();
    auto same = [&](const BitLinear& p, index_t in, index_t out, const char* name) {
      linattn::detail::require(p.in_features() == in && p.out_features() == out, where,
                               std::string(name) + " is " + std::to_string(p.out_features()) + "×" +
                                   std::to_string(p.in_features()) + ", expected " + std::to_string(out) + "×" +
                                   std::to_string(in));
    };
    same(f_, D, E, "f_proj");
    same(g_, D, E, "g_proj");
    same(o_, E, D, "o_proj");
    linattn::detail::require(static_cast<index_t>(g_norm_.size()) == E, where,
                             "g_norm weight has " + std::to_string(g_norm_.size()) + " elements, expected " +
                                 std::to_string(E));
    linattn::detail::require(lower_bound_.empty() || static_cast<index_t>(lower_bound_.size()) == E, where,
                             "lower_bound has " + std::to_string(lower_bound_.size()) + " elements, expected " +
                                 std::to_string(E) + " or none");
  }

  index_t hidden_size() const { return i_.in_features(); }
  index_t expanded_size() const { return i_.out_features(); }
  const BitLinear& i_proj() const { return i_; }
  const BitLinear& f_proj() const { return f_; }
  const BitLinear& g_proj() const { return g_; }
  const BitLinear& o_proj() const { return o_; }
  std::span<const float> g_norm() const { return g_norm_; }
  std::span<const float> lower_bound() const { return lower_bound_; }  // empty: none
  std::size_t weight_bytes() const {
    return i_.weight_bytes() + f_.weight_bytes() + g_.weight_bytes() + o_.weight_bytes() + g_norm_.size() * sizeof(float);
  }
  // The dense float path of every projection (see BitLinear::keep_dense_weights).
  void keep_dense_weights() {
    for (BitLinear* p : {&i_, &f_, &g_, &o_}) p->keep_dense_weights();
  }

  // As a token mixer of lm::CausalLM: the state of one sequence is h [1, 1, 1, E]. run.threads is
  // the thread count of every projection and elementwise stage.
  using State = hgrn::State<float>;
  State initial_state() const { return hgrn::zero_state<float>(1, expanded_size()); }
  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, State& state, const RunOptions& run) const {
    forward(TensorView<const float, 3>(x.data(), {1, x.size(0), x.size(1)}, {x.numel(), x.stride(0), x.stride(1)}),
            TensorView<float, 3>(out.data(), {1, out.size(0), out.size(1)}, {out.numel(), out.stride(0), out.stride(1)}),
            &state, run.arithmetic, run.threads);
  }
  // One token of N sequences: the states are gathered into one [N, E] batch and scattered back.
  void step(TensorView<const float, 2> x, TensorView<float, 2> out, std::span<State* const> states,
            const RunOptions& run) const {
    const index_t N = x.size(0), E = expanded_size();
    linattn::detail::require(static_cast<index_t>(states.size()) == N, "linattn::nn::MLGRU::step",
                             "one state per row of x required");
    State batch = hgrn::zero_state<float>(N, E);
    for (index_t n = 0; n < N; ++n) {
      linattn::detail::require(states[n]->shape() == hgrn::state_shape(1, E), "linattn::nn::MLGRU::step",
                               "state " + std::to_string(n) + " has shape " + shape_string(states[n]->shape()));
      std::copy_n(states[n]->data(), E, batch.data() + n * E);
    }
    forward(TensorView<const float, 3>(x.data(), {N, 1, x.size(1)}, {x.stride(0), x.size(1), x.stride(1)}),
            TensorView<float, 3>(out.data(), {N, 1, out.size(1)}, {out.stride(0), out.size(1), out.stride(1)}), &batch,
            run.arithmetic, run.threads);
    for (index_t n = 0; n < N; ++n) std::copy_n(batch.data() + n * E, E, states[n]->data());
  }

  // x, out [B, T, D] (contiguous); state [B, 1, 1, E]: the state before the first token (zeros if
  // null) and, when given, overwritten with the state after the last. T = 1 is a decode step.
  // threads: the projections, the recurrence and the elementwise stages.
  void forward(TensorView<const float, 3> x, TensorView<float, 3> out, hgrn::State<float>* state = nullptr,
               Arithmetic arithmetic = Arithmetic::integer, Threads threads = {}) const {
    constexpr const char* where = "linattn::nn::MLGRU::forward";
    const index_t B = x.size(0), T = x.size(1), D = hidden_size(), E = expanded_size();
    linattn::detail::check_shape(where, "x", x, {-1, -1, D});
    linattn::detail::check_shape(where, "out", out, {B, T, D});
    linattn::detail::require(x.is_contiguous() && out.is_contiguous(), where, "x and out must be contiguous");
    if (state && state->shape() != hgrn::state_shape(B, E)) {
      if (state->numel() != 0)
        linattn::detail::fail(where, "state has shape " + shape_string(state->shape()) + ", expected " +
                                         shape_string(hgrn::state_shape(B, E)));
      *state = hgrn::zero_state<float>(B, E);
    }
    const index_t rows = B * T;
    const TensorView<const float, 2> x2(x.data(), {rows, D});
    Array<float, 2> i({rows, E}), f({rows, E}), g({rows, E});
    i_.forward(x2, i.view(), arithmetic, threads);
    f_.forward(x2, f.view(), arithmetic, threads);
    g_.forward(x2, g.view(), arithmetic, threads);
    linattn::detail::parallel_rows(rows, E, threads, [&](index_t r0, index_t r1) {
      linattn::detail::sigmoid_inplace(f.data() + r0 * E, (r1 - r0) * E);
      linattn::detail::silu_inplace(i.data() + r0 * E, (r1 - r0) * E);
      for (index_t r = r0; r < r1; ++r)
        for (index_t e = 0; e < E; ++e) {
          float fe = f(r, e);
          if (!lower_bound_.empty()) fe = lower_bound_[e] + (1.0f - lower_bound_[e]) * fe;
          f(r, e) = fe;
          i(r, e) *= 1.0f - fe;
        }
    });
    Array<float, 3> h({B, T, E});
    hgrn::Options ropt;
    ropt.threads = linattn::detail::step_threads(threads, rows * E);
    hgrn::recurrent<float>(TensorView<const float, 3>(i.data(), {B, T, E}),
                           hgrn::linear_gates<float>(TensorView<const float, 3>(f.data(), {B, T, E})), h.view(), state,
                           state, ropt);
    Array<float, 2> y({rows, E});
    rms_norm(g.cview(), g_norm_, eps_, y.view(), threads);
    linattn::detail::parallel_rows(rows, E, threads, [&](index_t r0, index_t r1) {
      linattn::detail::silu_inplace(h.data() + r0 * E, (r1 - r0) * E);
      for (index_t j = r0 * E; j < r1 * E; ++j) y.data()[j] *= h.data()[j];
    });
    o_.forward(y.cview(), TensorView<float, 2>(out.data(), {rows, D}), arithmetic, threads);
  }

 private:
  BitLinear i_, f_, g_, o_;
  std::vector<float> g_norm_, lower_bound_;
  float eps_ = 1e-6f;
};

}  // namespace linattn::nn
