// A persistent thread pool for the compute kernels. Threads are created once; each
// parallel_for wakes them (short spin, then a futex wait), splits the tasks statically
// into contiguous ranges (thread t gets tasks [t*n/T, (t+1)*n/T)), runs its own range on
// the calling thread, and returns when every range is done. A static contiguous split
// means that for a matrix product split over output rows each core streams a disjoint,
// contiguous part of the weights.
//
// One parallel_for runs at a time (concurrent callers are serialised); a parallel_for
// issued from inside a task runs serially on that thread. An exception thrown by a task
// is rethrown from parallel_for after all ranges have finished.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace dsv4 {

// Physical cores available to this process (SMT siblings counted once), from the sysfs
// CPU topology restricted to the affinity mask; falls back to hardware_concurrency.
int default_threads();

class ThreadPool {
 public:
  // n_threads <= 0 means default_threads(). The calling thread counts as thread 0, so
  // n_threads - 1 workers are created.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // fn(task, thread) for every task in [0, n_tasks); thread in [0, n_threads()).
  template <class Fn>
  void parallel_for(int64_t n_tasks, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n_tasks, [](const void* ctx, int64_t begin, int64_t end, int thread) {
          F& f = *static_cast<F*>(const_cast<void*>(ctx));
          for (int64_t i = begin; i < end; ++i) f(i, thread);
        }, &fn);
  }

  // fn(begin, end, thread) once per thread with its contiguous range of [0, n_tasks)
  // (empty ranges are skipped).
  template <class Fn>
  void parallel_ranges(int64_t n_tasks, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n_tasks, [](const void* ctx, int64_t begin, int64_t end, int thread) {
          F& f = *static_cast<F*>(const_cast<void*>(ctx));
          f(begin, end, thread);
        }, &fn);
  }

  // Dynamic variant for machines whose cores are shared with other work: [0, n_tasks) is
  // cut into contiguous pieces of `grain` tasks that the threads claim in order from an
  // atomic counter, fn(begin, end, thread) per piece. A thread that is preempted then no
  // longer holds everybody up at the barrier, while each piece is still one contiguous
  // stream (pick grain so that a piece is tens of KiB of weights).
  template <class Fn>
  void parallel_chunks(int64_t n_tasks, int64_t grain, Fn&& fn) {
    if (grain < 1) grain = 1;
    const int64_t n_pieces = (n_tasks + grain - 1) / grain;
    if (n_pieces <= 1 || n_threads_ == 1) {
      for (int64_t b = 0; b < n_tasks; b += grain) fn(b, std::min(n_tasks, b + grain), 0);
      return;
    }
    std::atomic<int64_t> next{0};
    parallel_ranges(std::min<int64_t>(n_threads_, n_pieces), [&](int64_t, int64_t, int thread) {
      for (;;) {
        const int64_t piece = next.fetch_add(1, std::memory_order_relaxed);
        if (piece >= n_pieces) return;
        const int64_t b = piece * grain;
        fn(b, std::min(n_tasks, b + grain), thread);
      }
    });
  }

  // The range of [0, n_tasks) that thread t of n_threads gets.
  static int64_t range_begin(int64_t n_tasks, int t, int n_threads) {
    return n_tasks * t / n_threads;
  }

 private:
  using RangeFn = void (*)(const void* ctx, int64_t begin, int64_t end, int thread);
  void run(int64_t n_tasks, RangeFn fn, const void* ctx);
  void worker(int t);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time

  // The current job, published by bumping generation_.
  RangeFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
  int n_active_ = 1;                 // threads taking part in this job
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};      // workers still running this job
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;  // first exception thrown by a task, rethrown by run()
};

}  // namespace dsv4
