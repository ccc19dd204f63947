#include "core/thread_pool.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DSV4_CPU_RELAX() _mm_pause()
#else
#define DSV4_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace dsv4 {

namespace {

thread_local bool t_in_pool_task = false;

// Spin iterations (each one pause) before a waiting thread blocks in the kernel. Decode
// issues thousands of small parallel_fors per token, so a short spin saves the futex
// round trip; it is kept short because the machine may be shared.
constexpr int kSpinIters = 4000;

int read_int(const std::string& path) {
  std::ifstream f(path);
  int v = -1;
  if (f) f >> v;
  return f ? v : -1;
}

}  // namespace

int default_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<std::pair<int, int>> cores;  // (package, core)
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      const int pkg = read_int(base + "physical_package_id");
      const int core = read_int(base + "core_id");
      if (pkg < 0 || core < 0) {
        cores.clear();
        break;
      }
      cores.insert({pkg, core});
    }
  }
  if (!cores.empty()) return int(cores.size());
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? int(hc) : 1;
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_threads();
  workers_.reserve(size_t(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker(int t) {
  uint32_t seen = 0;
  t_in_pool_task = true;  // anything a task starts runs serially
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIters; ++i) {
      DSV4_CPU_RELAX();
      if ((i & 255) == 255) std::this_thread::yield();  // let a preempted peer run
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    if (t < n_active_) {
      const int64_t b = range_begin(n_tasks_, t, n_active_);
      const int64_t e = range_begin(n_tasks_, t + 1, n_active_);
      try {
        if (b < e) fn_(ctx_, b, e, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run(int64_t n_tasks, RangeFn fn, const void* ctx) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1 || t_in_pool_task) {
    fn(ctx, 0, n_tasks, 0);
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  fn_ = fn;
  ctx_ = ctx;
  n_tasks_ = n_tasks;
  n_active_ = int(n_tasks < n_threads_ ? n_tasks : n_threads_);
  error_ = nullptr;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();

  t_in_pool_task = true;
  try {
    fn(ctx, 0, range_begin(n_tasks, 1, n_active_), 0);
  } catch (...) {
    std::lock_guard<std::mutex> elock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
  t_in_pool_task = false;

  int p = pending_.load(std::memory_order_acquire);
  for (int i = 0; p != 0 && i < kSpinIters; ++i) {
    DSV4_CPU_RELAX();
    // A worker that the OS preempted (cores shared with other work) may be waiting for
    // this very core: yield now and then instead of only spinning.
    if ((i & 255) == 255) std::this_thread::yield();
    p = pending_.load(std::memory_order_acquire);
  }
  while (p != 0) {
    pending_.wait(p, std::memory_order_acquire);
    p = pending_.load(std::memory_order_acquire);
  }
  if (error_) {
    std::exception_ptr e = std::move(error_);
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace dsv4
