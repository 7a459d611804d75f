// The MatMul-free LM's channel mixer (matmulfreellm HGRNBitMLP, SPEC §5.4):
//   u = BitLinear_gate(x)          D → 2I   (outputs [0, I) the gate, [I, 2I) the value)
//   out = BitLinear_down(silu(u[:, :I]) ⊙ u[:, I:])    I → D
#pragma once

#include <string>
#include <utility>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/nn/bitlinear.hpp"
#include "linattn/nn/mlgru.hpp"

namespace linattn::nn {

class GLU {
 public:
  GLU() = default;
  GLU(BitLinear gate_proj, BitLinear down_proj) : gate_(std::move(gate_proj)), down_(std::move(down_proj)) {
    constexpr const char* where = "linattn::nn::GLU";
    linattn::detail::require(gate_.out_features() % 2 == 0, where,
                             "gate_proj has " + std::to_string(gate_.out_features()) +
                                 " outputs; expected 2·intermediate_size (gate, then value)");
    linattn::detail::require(down_.in_features() == gate_.out_features() / 2 && down_.out_features() == gate_.in_features(),
                             where,
                             "down_proj is " + std::to_string(down_.out_features()) + "×" +
                                 std::to_string(down_.in_features()) + ", expected " +
                                 std::to_string(gate_.in_features()) + "×" + std::to_string(gate_.out_features() / 2));
  }

  index_t hidden_size() const { return gate_.in_features(); }
  index_t intermediate_size() const { return down_.in_features(); }
  const BitLinear& gate_proj() const { return gate_; }
  const BitLinear& down_proj() const { return down_; }
  std::size_t weight_bytes() const { return gate_.weight_bytes() + down_.weight_bytes(); }
  void keep_dense_weights() {
    gate_.keep_dense_weights();
    down_.keep_dense_weights();
  }
  // As the channel mixer of lm::CausalLM (run.threads for every stage).
  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, const RunOptions& run) const {
    forward(x, out, run.arithmetic, run.threads);
  }

  // x, out [N, D]
  void forward(TensorView<const float, 2> x, TensorView<float, 2> out, Arithmetic arithmetic = Arithmetic::integer,
               Threads threads = {}) const {
    constexpr const char* where = "linattn::nn::GLU::forward";
    const index_t N = x.size(0), D = hidden_size(), I = intermediate_size();
    linattn::detail::check_shape(where, "x", x, {-1, D});
    linattn::detail::check_shape(where, "out", out, {N, D});
    Array<float, 2> u({N, 2 * I}), z({N, I});
    gate_.forward(x, u.view(), arithmetic, threads);
    linattn::detail::parallel_rows(N, 2 * I, threads, [&](index_t r0, index_t r1) {
      for (index_t n = r0; n < r1; ++n) {
        float* un = u.view().ptr(n);
        linattn::detail::silu_inplace(un, I);
        for (index_t j = 0; j < I; ++j) z(n, j) = un[j] * un[I + j];
      }
    });
    down_.forward(z.cview(), out, arithmetic, threads);
  }

 private:
  BitLinear gate_, down_;
};

}  // namespace linattn::nn
