// Must not compile: a form HGRN does not have, named by its tag (core/form.hpp).
#include "linattn/ops/hgrn.hpp"

void fused_chunk_hgrn(linattn::TensorView<const float, 3> x, linattn::TensorView<const float, 3> f,
                      linattn::TensorView<float, 3> o) {
  linattn::hgrn::forward(linattn::form::fused_chunk, x, linattn::hgrn::linear_gates(f), o);
}
