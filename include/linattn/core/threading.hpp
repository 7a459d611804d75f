// Threading: one process-wide team of worker threads that every parallel loop of the library
// runs on, and the rule that turns a requested thread count into a team size.
//
// Why not one OpenMP region per call: a MatMul-free decode token makes ~200 small parallel
// calls with serial stages between them. Each OpenMP region forks, statically splits and joins,
// so every call waits at its barrier for the slowest worker — and a worker the OS has not
// scheduled (a busy machine) stalls the call for a whole time slice: decode fell from 307 to
// 5.5 tokens/s under one compile. The team here is built for that pattern:
//   - workers live as long as the process and spin between calls (~50 µs, longer inside a
//     TeamScope, i.e. a whole model step), so a call costs a store and a few cache misses, no
//     system call;
//   - the items are split into one contiguous range per team member, each claimed through its
//     own counter (its own cache line: 16 threads claiming 4 KB items from one shared counter
//     spent more time on that line than on the items); a member that finishes takes what is
//     left of the others' ranges. The caller claims too, so a worker that is not running never
//     holds a call up — its range is taken by the others, and the caller returns without
//     waiting for workers that never started; it waits only for workers that are mid-item;
//   - idle workers sleep on a condition variable, so a quiet process costs nothing. (Not
//     std::atomic::wait: libstdc++ 12's can miss a notify and sleep for ever, GCC PR 106183.)
//
// Results never depend on which thread runs an item, so every kernel gives bit-identical
// results at any thread count with the same split (the splits themselves depend only on the
// requested count and the shapes).
//
// Threads{0} means every core this process may run on (its CPU affinity mask); a count above
// that is clamped to it — more threads than cores only adds time-slicing — and detail::
// resolve_threads reports the clamp to callers that want to say so (the CLI does).
//
// Inside a worker, Eigen must not start threads of its own: with OpenMP enabled, each worker
// (and the caller while it runs items) sets its own OpenMP thread count to 1, which is what
// Eigen::nbThreads() reads, without touching any global.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <type_traits>
#include <thread>
#include <vector>

#include "linattn/core/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace linattn {

// Threads a kernel or model step may use; 0 means every core the process may run on.
struct Threads {
  int count = 0;
};

// Cores this process may run on: its CPU affinity mask on Linux (what taskset, cgroups and
// container CPU sets give it), std::thread::hardware_concurrency() elsewhere; at least 1.
inline int hardware_threads() {
  static const int n = [] {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      const int c = CPU_COUNT(&set);
      if (c > 0) return c;
    }
#endif
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

// The thread count Threads{0} resolves to.
inline int max_threads() { return hardware_threads(); }

namespace detail {

// The team size for a request: 0 → all cores; above the cores → the cores (the documented
// clamp); never more than the work items; at least 1.
inline int clamp_threads(Threads t) {
  const int cores = hardware_threads();
  return t.count <= 0 ? cores : std::min(t.count, cores);
}

inline int resolve_threads(Threads t, index_t work_items) {
  const int n = clamp_threads(t);
  return static_cast<int>(std::clamp<index_t>(work_items, 1, n));
}

// The least work worth a thread of its own in the projections: below it a stage runs on fewer
// threads (one, for the tiny models) and never wakes the rest. A parallel call on the hot team
// costs about 1 µs end to end (2-vCPU Zen 5); 32K dense multiply-adds stream 128 KB of fp32
// weights (~4 µs on one core) and 128K ternary ones 32 KB of 2-bit codes (~1.5 µs).
inline constexpr index_t kMinDenseMacsPerThread = index_t(1) << 15;
inline constexpr index_t kMinTernaryMacsPerThread = index_t(1) << 17;

// Threads worth using for `work` units of `min_per_thread` each, at most the request.
inline Threads work_threads(Threads requested, index_t work, index_t min_per_thread) {
  const index_t useful = std::max<index_t>(1, work / std::max<index_t>(min_per_thread, 1));
  return Threads{static_cast<int>(std::min<index_t>(clamp_threads(requested), useful))};
}

// A decode step touches each state element once (a few ns per thousand elements); sharing it
// costs more than it saves below about 128K state elements a thread. Measured (Zen 5, fp32,
// B=1, H=4, K=V=128 = 64K elements): 1 thread 4.3 us, 2 threads 6.2 us per step (OpenMP fork);
// on the persistent team 1 thread stays ahead up to this size as well.
inline constexpr index_t kMinStepElementsPerThread = index_t(1) << 17;

inline Threads step_threads(Threads requested, index_t state_elements) {
  return work_threads(requested, state_elements, kMinStepElementsPerThread);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

#if defined(_OPENMP)
// Limits nested OpenMP regions started from this thread (Eigen's GEMM) to one thread for the
// guard's lifetime; restores the previous setting even when the work throws.
class SingleThreadedNesting {
 public:
  SingleThreadedNesting() : previous_(omp_get_max_threads()) {
    if (previous_ != 1) omp_set_num_threads(1);
  }
  ~SingleThreadedNesting() {
    if (previous_ != 1) omp_set_num_threads(previous_);
  }
  SingleThreadedNesting(const SingleThreadedNesting&) = delete;
  SingleThreadedNesting& operator=(const SingleThreadedNesting&) = delete;

 private:
  int previous_;
};
#else
struct SingleThreadedNesting {
  SingleThreadedNesting() {}  // user-provided: no unused-variable warning where it is declared
};
#endif

// The process-wide team: hardware_threads() − 1 workers plus whichever thread calls run().
class ThreadPool {
 public:
  // How long an idle worker spins before it sleeps, and how long a held (TeamScope) worker
  // spins before it starts yielding its core between checks. Measured on the 2-vCPU Zen 5:
  // the serial stages between two parallel calls of a decode step last 1–20 µs, so 50 µs
  // keeps the team hot through a step without holding cores long after it.
  static constexpr std::chrono::microseconds kSpin{50};

  static ThreadPool& instance() {
    static ThreadPool pool(hardware_threads() - 1);
    return pool;
  }

  ~ThreadPool() {
    stop_.store(true);
    epoch_.fetch_add(1);
    for (auto& s : slots_) {
      const std::lock_guard<std::mutex> lock(s->mutex);
      s->wake.notify_one();
    }
    for (auto& t : threads_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int workers() const { return static_cast<int>(threads_.size()); }

  // Runs fn(i) for i in [0, n) on `team` threads (the caller and team − 1 workers). Returns
  // false without running anything when the team is in use (a nested call, or another thread
  // of the program in a parallel call): the caller then runs the items itself.
  template <class Fn>
  bool run(index_t n, int team, Fn& fn) {
    if (busy_.test_and_set(std::memory_order_acquire)) return false;
    struct Release {
      std::atomic_flag& f;
      ~Release() { f.clear(std::memory_order_release); }
    } release{busy_};
    team = std::min(team, workers() + 1);
    job_.call = [](void* f, index_t i) { (*static_cast<Fn*>(f))(i); };
    job_.fn = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    job_.n = n;
    job_.team = team;
    for (int p = 0; p < team; ++p) {
      Range& r = ranges_[static_cast<std::size_t>(p)];
      r.next.store(n * p / team, std::memory_order_relaxed);
      r.end = n * (p + 1) / team;
    }
    job_.error = nullptr;
    closed_.store(false);  // seq_cst: publishes the job's fields to a worker that reads it open
    epoch_.fetch_add(1);
    for (int w = 0; w + 1 < team; ++w) {  // wake the team's sleepers only
      Slot& s = *slots_[static_cast<std::size_t>(w)];
      if (s.sleeping.load()) {
        const std::lock_guard<std::mutex> lock(s.mutex);
        s.wake.notify_one();
      }
    }
    {
      SingleThreadedNesting nesting;
      work(0);
    }
    // Every item is claimed: close the job, then wait for the workers still inside it. A
    // worker that joins after this sees it closed and leaves without touching fn.
    closed_.store(true);
    wait_until([&] { return users_.load() == 0; });
    if (job_.error) std::rethrow_exception(job_.error);
    return true;
  }

  // While held (a TeamScope is open), the first team − 1 workers keep spinning instead of
  // sleeping; the others sleep as usual (a 2-thread step on a 16-core machine spins one worker).
  void hold(int team) {
    int seen = held_team_.load(std::memory_order_relaxed);
    while (seen < team && !held_team_.compare_exchange_weak(seen, team, std::memory_order_relaxed)) {
    }
    holds_.fetch_add(1, std::memory_order_relaxed);
  }
  void unhold() {
    if (holds_.fetch_sub(1, std::memory_order_relaxed) == 1) held_team_.store(0, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Slot {
    std::mutex mutex;
    std::condition_variable wake;
    std::atomic<bool> sleeping{false};
  };
  struct Job {
    void (*call)(void*, index_t) = nullptr;
    void* fn = nullptr;
    index_t n = 0;
    int team = 1;
    std::exception_ptr error;
    std::mutex error_mutex;
  };
  // Team member p's items [next, end), claimed one at a time (by p, then by whoever is done).
  struct alignas(64) Range {
    std::atomic<index_t> next{0};
    index_t end = 0;
  };

  explicit ThreadPool(int workers) : ranges_(static_cast<std::size_t>(std::max(workers, 0) + 1)) {
    for (int w = 0; w < std::max(workers, 0); ++w) slots_.push_back(std::make_unique<Slot>());
    for (int w = 0; w < std::max(workers, 0); ++w) threads_.emplace_back([this, w] { worker(w); });
  }

  // Member p runs its own range, then what is left of the others'; the first exception is
  // kept for the caller.
  void work(int p) {
    const int team = job_.team;
    for (int k = 0; k < team; ++k) {
      Range& r = ranges_[static_cast<std::size_t>((p + k) % team)];
      for (;;) {
        const index_t i = r.next.fetch_add(1, std::memory_order_relaxed);
        if (i >= r.end) break;
        try {
          job_.call(job_.fn, i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(job_.error_mutex);
          if (!job_.error) job_.error = std::current_exception();
        }
      }
    }
  }

  // Spins on cond, then yields the core between checks (a descheduled thread we wait for
  // needs it more than we do).
  template <class Cond>
  static void wait_until(const Cond& cond) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned k = 0; !cond(); ++k) {
      cpu_relax();
      if ((k & 255) == 255 && std::chrono::steady_clock::now() - start > kSpin) std::this_thread::yield();
    }
  }

  void worker(int w) {
#if defined(_OPENMP)
    omp_set_num_threads(1);  // this thread's nested regions (Eigen's GEMM) stay on it
#endif
    Slot& slot = *slots_[static_cast<std::size_t>(w)];
    // The epoch at construction, not at this thread's start: a job or the destructor may
    // already have advanced it, and a worker that took the new value as its own would wait
    // for a change that never comes.
    std::uint64_t seen = 0;
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      for (unsigned k = 0; epoch_.load(std::memory_order_relaxed) == seen; ++k) {
        cpu_relax();
        if ((k & 255) != 255 || std::chrono::steady_clock::now() - start < kSpin) continue;
        if (holds_.load(std::memory_order_relaxed) > 0 && w + 1 < held_team_.load(std::memory_order_relaxed)) {
          std::this_thread::yield();
          continue;
        }
        // Sleep until woken. The store to `sleeping` and the epoch check pair with run()'s
        // epoch increment and `sleeping` check (both seq_cst): one of the two sees the other,
        // and the waker takes the mutex, so its notify cannot fall between check and wait.
        {
          std::unique_lock<std::mutex> lock(slot.mutex);
          slot.sleeping.store(true);
          while (epoch_.load() == seen && !stop_.load()) slot.wake.wait(lock);
          slot.sleeping.store(false);
        }
        start = std::chrono::steady_clock::now();
      }
      if (stop_.load()) return;
      seen = epoch_.load(std::memory_order_acquire);
      // Join the job only while it is open; run() waits for users_ to drain after closing it.
      users_.fetch_add(1);
      if (!closed_.load() && w + 1 < job_.team) work(w + 1);
      users_.fetch_sub(1);
    }
  }

  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> threads_;
  Job job_;
  std::vector<Range> ranges_;  // [workers + 1]
  alignas(64) std::atomic<std::uint64_t> epoch_{0};
  alignas(64) std::atomic<int> users_{0};
  alignas(64) std::atomic<bool> closed_{true};
  std::atomic<int> holds_{0};
  std::atomic<int> held_team_{0};
  std::atomic<bool> stop_{false};
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
};

// Runs fn(i) for i in [0, n) on up to `threads` threads (resolve_threads). Exceptions thrown by
// fn are rethrown on the caller's thread (the first one; the other items still run).
template <class Fn>
void parallel_for(index_t n, Threads threads, Fn&& fn) {
  if (n <= 0) return;
  const int nt = resolve_threads(threads, n);
  if (nt > 1 && ThreadPool::instance().run(n, nt, fn)) return;
  SingleThreadedNesting nesting;
  for (index_t i = 0; i < n; ++i) fn(i);
}

// Elements an item of an elementwise stage gets at least: 16K (a few µs of work, well above a
// parallel call's cost on the persistent team).
inline constexpr index_t kMinRowItemElements = index_t(1) << 14;

// Rows [0, rows) of `row_elements` elements each, in blocks of at least kMinRowItemElements and
// at most a few blocks a thread: fn(r0, r1). For the elementwise stages (norms, gates,
// activations) between the projections of a model step, which are too small to share at
// decode (one block, on the caller) and too large to leave serial at prefill.
template <class Fn>
void parallel_rows(index_t rows, index_t row_elements, Threads threads, Fn&& fn) {
  if (rows <= 0) return;
  const index_t min_rows = std::max<index_t>(1, kMinRowItemElements / std::max<index_t>(row_elements, 1));
  const int nt = resolve_threads(threads, rows / min_rows);
  if (nt <= 1) {
    fn(index_t(0), rows);
    return;
  }
  const index_t per = std::max<index_t>(min_rows, (rows + 4 * nt - 1) / (4 * nt));
  const index_t blocks = (rows + per - 1) / per;
  parallel_for(blocks, Threads{nt}, [&](index_t b) { fn(b * per, std::min(rows, (b + 1) * per)); });
}

// Keeps the team's workers spinning (hot) for the scope's lifetime: a model's decode step or
// prefill opens one, so its many parallel calls never wait for a worker to wake. Only when the
// step is long enough to share: `macs` multiply-adds give a worker per kMinHeldMacsPerThread.
// Spinning cores cost the working one turbo headroom: on the 16-core Xeon a tiny model (20 µs a
// token, every stage on one thread) decoded 0.71× slower with 15 held workers than with none.
inline constexpr index_t kMinHeldMacsPerThread = index_t(1) << 20;

class TeamScope {
 public:
  explicit TeamScope(Threads threads, index_t macs = std::numeric_limits<index_t>::max())
      : team_(work_threads(threads, macs, kMinHeldMacsPerThread).count) {
    if (team_ > 1) ThreadPool::instance().hold(team_);
  }
  ~TeamScope() {
    if (team_ > 1) ThreadPool::instance().unhold();
  }
  TeamScope(const TeamScope&) = delete;
  TeamScope& operator=(const TeamScope&) = delete;

 private:
  int team_;
};

}  // namespace detail
}  // namespace linattn
