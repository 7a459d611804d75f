// Threading: parallel loops over independent work items with OpenMP when the compiler
// has it, serially otherwise.
//
// Kernels parallelise over (sequence, head). Inside a worker, Eigen must not start threads
// of its own (that would oversubscribe the cores): each worker sets its own nested OpenMP
// thread count to 1, which is what Eigen::nbThreads() reads, without touching any global.
#pragma once

#include <algorithm>
#include <exception>
#include <mutex>

#include "linattn/core/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace linattn {

// Threads a kernel may use; 0 means "what OpenMP would use by default".
struct Threads {
  int count = 0;
};

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace detail {

inline int resolve_threads(Threads t, index_t work_items) {
  int n = t.count > 0 ? t.count : max_threads();
  if (work_items < n) n = static_cast<int>(std::max<index_t>(work_items, 1));
  return std::max(n, 1);
}

// Runs fn(i) for i in [0, n). Exceptions thrown by fn are rethrown on the caller's thread.
template <class Fn>
void parallel_for(index_t n, Threads threads, Fn&& fn) {
  const int nt = resolve_threads(threads, n);
#if defined(_OPENMP)
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(nt)
  {
    omp_set_num_threads(1);  // nested regions (Eigen's GEMM) stay on this worker
#pragma omp for schedule(dynamic, 1)
    for (index_t i = 0; i < n; ++i) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
#else
  (void)nt;
  for (index_t i = 0; i < n; ++i) fn(i);
#endif
}

}  // namespace detail
}  // namespace linattn
