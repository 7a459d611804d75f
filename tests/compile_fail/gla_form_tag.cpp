// Must not compile: something that is not a form tag where gla::forward takes one (a run-time
// Form value belongs to gla::recurrent/chunk/fused_chunk or nn::RunOptions, not here).
#include "linattn/ops/gla.hpp"

void not_a_tag(linattn::TensorView<const float, 4> q, linattn::TensorView<float, 4> o) {
  linattn::gla::forward(linattn::Form::chunk, q, q, q, q, o);
}
