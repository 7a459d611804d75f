// Must compile: the control for the compile_fail tests, the same calls made correctly with the
// same command, so that those fail for the reason they name and not for a broken include or flag.
#include "linattn/ops/gla.hpp"
#include "linattn/ops/hgrn.hpp"

void wrapped_gate(linattn::TensorView<const float, 3> x, linattn::TensorView<const float, 3> f,
                  linattn::TensorView<float, 3> o) {
  linattn::hgrn::recurrent<float>(x, linattn::hgrn::linear_gates(f), o);
  linattn::hgrn::forward(linattn::form::chunk, x, linattn::hgrn::log_gates(f), o);
}

void form_tag(linattn::TensorView<const float, 4> q, linattn::TensorView<float, 4> o) {
  linattn::gla::forward(linattn::form::fused_chunk, q, q, q, q, o);
}
