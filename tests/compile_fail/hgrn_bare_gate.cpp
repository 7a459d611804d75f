// Must not compile: HGRN's gate given as a bare view, which does not say whether it holds log
// decays g or decays f (ops/hgrn.hpp). tests/CMakeLists.txt expects the static_assert's sentence.
#include "linattn/ops/hgrn.hpp"

void bare_gate(linattn::TensorView<const float, 3> x, linattn::TensorView<const float, 3> f,
               linattn::TensorView<float, 3> o) {
  linattn::hgrn::recurrent<float>(x, f, o);
}
