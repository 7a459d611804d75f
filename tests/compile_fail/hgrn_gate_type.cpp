// Must not compile: gates of another element type than the inputs (float gates for double x),
// which would otherwise be read through the wrong type (ops/hgrn.hpp).
#include "linattn/ops/hgrn.hpp"

void gate_of_another_type(linattn::TensorView<const double, 3> x, linattn::TensorView<const float, 3> f,
                          linattn::TensorView<double, 3> o) {
  linattn::hgrn::recurrent<double>(x, linattn::hgrn::linear_gates(f), o);
}
