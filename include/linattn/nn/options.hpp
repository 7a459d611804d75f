// How a layer runs: which recurrence form, how many threads, which arithmetic.
#pragma once

#include "linattn/core/threading.hpp"

namespace linattn::nn {

// Which arithmetic a ternary layer uses: the integer kernels (the deployment path), or the
// dequantised float weights through Eigen (the reference the tests compare against).
enum class Arithmetic { integer, reference };

// The recurrence form a token mixer uses over a sequence. `automatic` is upstream's rule
// (SPEC §8.11): the recurrent kernel for T <= 64, the chunk form beyond. Decode always steps.
enum class Form { automatic, recurrent, chunk };

inline constexpr index_t kRecurrentUpTo = 64;  // upstream's switch point (fla layers)

struct RunOptions {
  Form form = Form::automatic;
  Threads threads;
  Arithmetic arithmetic = Arithmetic::integer;

  bool use_chunk(index_t T) const { return form == Form::chunk || (form == Form::automatic && T > kRecurrentUpTo); }
};

}  // namespace linattn::nn
