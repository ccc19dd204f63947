#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dsv4 {
namespace {

TEST(ThreadPool, DefaultThreadsIsPositive) {
  const int n = default_threads();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, int(std::thread::hardware_concurrency() > 0 ? std::thread::hardware_concurrency() : 1024));
}

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.n_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t i, int t) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, threads);
        hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, StaticContiguousSplit) {
  ThreadPool pool(3);
  const int64_t n = 100;
  std::vector<int> owner(size_t(n), -1);
  pool.parallel_for(n, [&](int64_t i, int t) { owner[size_t(i)] = t; });
  for (int t = 0; t < 3; ++t)
    for (int64_t i = ThreadPool::range_begin(n, t, 3); i < ThreadPool::range_begin(n, t + 1, 3); ++i)
      EXPECT_EQ(owner[size_t(i)], t);
  // parallel_ranges: one contiguous range per thread, covering [0, n) in order.
  std::vector<std::pair<int64_t, int64_t>> ranges(3, {-1, -1});
  pool.parallel_ranges(n, [&](int64_t b, int64_t e, int t) { ranges[size_t(t)] = {b, e}; });
  EXPECT_EQ(ranges[0].first, 0);
  EXPECT_EQ(ranges[0].second, ranges[1].first);
  EXPECT_EQ(ranges[1].second, ranges[2].first);
  EXPECT_EQ(ranges[2].second, n);
}

TEST(ThreadPool, ManySmallJobsReuseThreads) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 20000; ++rep)
    pool.parallel_for(4, [&](int64_t i, int) { sum.fetch_add(i + 1); });
  EXPECT_EQ(sum.load(), 20000 * 10);
}

TEST(ThreadPool, NestedCallRunsSerially) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](int64_t, int) {
    pool.parallel_for(5, [&](int64_t, int t) {
      inner.fetch_add(1);
      (void)t;
    });
  });
  EXPECT_EQ(inner.load(), 20);
}

TEST(ThreadPool, ExceptionPropagates) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(10, [&](int64_t i, int) {
                 if (i == 9) throw std::runtime_error("task failed");
               }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> n{0};
  pool.parallel_for(10, [&](int64_t, int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 10);
}

}  // namespace
}  // namespace dsv4

namespace dsv4 {
namespace {

TEST(ThreadPool, ParallelChunksCoversRangeOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 64, 1001}) {
      for (int64_t grain : {1, 3, 64, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_chunks(n, grain, [&](int64_t b, int64_t e, int t) {
          EXPECT_LT(b, e);
          EXPECT_LE(e - b, grain);
          EXPECT_GE(t, 0);
          EXPECT_LT(t, threads);
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)].load(), 1);
      }
    }
  }
}

}  // namespace
}  // namespace dsv4
