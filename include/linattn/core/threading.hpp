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

// A decode step touches each state element once (a few ns per thousand elements); waking a
// second thread costs more than it saves below about 128K state elements. Measured (Zen 5,
// fp32, B=1, H=4, K=V=128 = 64K elements): 1 thread 4.3 us, 2 threads 6.2 us per step.
inline constexpr index_t kMinStepElementsPerThread = index_t(1) << 17;

inline Threads step_threads(Threads requested, index_t state_elements) {
  const index_t useful = std::max<index_t>(1, state_elements / kMinStepElementsPerThread);
  const int n = requested.count > 0 ? requested.count : max_threads();
  return Threads{static_cast<int>(std::min<index_t>(n, useful))};
}

// Runs fn(i) for i in [0, n). Exceptions thrown by fn are rethrown on the caller's thread.
#if defined(_OPENMP)
// Limits nested OpenMP regions started from this thread (Eigen's GEMM) to one thread for the
// guard's lifetime; restores the previous setting even when the work throws.
class SingleThreadedNesting {
 public:
  SingleThreadedNesting() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedNesting() { omp_set_num_threads(previous_); }
  SingleThreadedNesting(const SingleThreadedNesting&) = delete;
  SingleThreadedNesting& operator=(const SingleThreadedNesting&) = delete;

 private:
  int previous_;
};
#endif

template <class Fn>
void parallel_for(index_t n, Threads threads, Fn&& fn) {
  const int nt = resolve_threads(threads, n);
#if defined(_OPENMP)
  if (nt == 1) {
    // No parallel region at all: opening one costs about a microsecond, which is a third of
    // a whole decode step at K = V = 64.
    SingleThreadedNesting guard;
    for (index_t i = 0; i < n; ++i) fn(i);
    return;
  }
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
