// How a layer runs: which recurrence form, how many threads, which arithmetic.
#pragma once

#include <optional>

#include "linattn/core/form.hpp"
#include "linattn/core/threading.hpp"

namespace linattn::nn {

// Which arithmetic a ternary layer uses: the integer kernels (the deployment path), or the
// dequantised float weights through Eigen (the reference the tests compare against).
enum class Arithmetic { integer, reference };

// The recurrence form a token mixer uses over a sequence (core/form.hpp), or none for upstream's
// rule (SPEC §8.11): the recurrent kernel for T <= 64, the chunk form beyond. `fused_chunk` is
// the state-in-registers chunk form (gla::fused_chunk, gsa::fused_chunk), the fastest prefill on
// a CPU. Decode always steps. The element-wise MLGRU mixer has one form whatever is asked.
using linattn::Form;

inline constexpr index_t kRecurrentUpTo = 64;  // upstream's switch point (fla layers)

struct RunOptions {
  std::optional<Form> form;  // none: automatic (upstream's rule)
  Threads threads;
  Arithmetic arithmetic = Arithmetic::integer;

  // The form for a sequence of T tokens.
  Form form_for(index_t T) const {
    if (form) return *form;
    return T > kRecurrentUpTo ? Form::chunk : Form::recurrent;
  }
};

}  // namespace linattn::nn
