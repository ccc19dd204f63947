// Measures the machine a benchmark runs on, in the same run and with the same thread
// count as the kernels it is compared with:
//  * read bandwidth: every thread streams a disjoint contiguous slice of a >= 1 GiB
//    buffer (transparent huge pages requested, pages touched before timing) with several
//    independent vector accumulators, best of several passes; every second pass also
//    prefetches 16 KiB ahead like the weight kernels (on a shared host with a busy
//    neighbour the hardware prefetchers alone under-report). A naive one-accumulator
//    summation loop is latency-bound and under-reports bandwidth several-fold.
//  * peak fp32 FMA rate: each thread runs many independent FMA chains in registers (and
//    likewise the BF16 dot product and the byte multiply-add of the other numerics).
// Both use Highway dynamic dispatch, so they run on the best (or forced) target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/thread_pool.h"

namespace dsv4::bench {

struct BandwidthResult {
  double gbps = 0;        // best pass, 1e9 bytes per second
  double median_gbps = 0;
  size_t bytes = 0;       // buffer size
  int passes = 0;
  int threads = 0;
};

// The read-bandwidth probe's buffer, allocated and touched once (from the threads that
// read it) so that a benchmark can probe again and again between its timed rounds: on a
// shared host the bandwidth moves within seconds, and only a probe taken next to a round
// tells what the machine gave that round.
class ReadProbe {
 public:
  ReadProbe(ThreadPool& pool, size_t bytes = size_t(1) << 30);
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;
  // Best of `passes` passes (every second one also prefetching); gbps 0 when the buffer
  // could not be allocated.
  BandwidthResult measure(int passes);
  // Whether the buffer was allocated.
  bool ok() const { return buf_ != nullptr; }

 private:
  ThreadPool& pool_;
  float* buf_ = nullptr;
  size_t n_ = 0;  // floats
};

// Read bandwidth with pool.n_threads() threads over a buffer of `bytes` (>= 1 GiB
// recommended), best of `passes`.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30,
                                       int passes = 7);

struct FlopsResult {
  double gflops = 0;  // best, 1e9 fp32 flops per second (an FMA counts 2)
  int threads = 0;
  std::string isa;    // the SIMD target the probe ran on
};

// Best-of-passes GB/s of a plain multi-accumulator read of the given buffers (each split
// across the pool's threads), e.g. of the very weights a kernel streams.
double read_gbps(ThreadPool& pool, const void* const* bufs, const size_t* bytes, size_t n_bufs,
                 int passes = 5);

// Peak fp32 FMA throughput of the current SIMD target with pool.n_threads() threads.
FlopsResult measure_peak_fma(ThreadPool& pool, int passes = 5);
// Peak of the AVX-512 BF16 dot product (the fast-numerics path); gflops 0 when this CPU
// lacks AVX512_BF16.
FlopsResult measure_peak_bf16dot(ThreadPool& pool, int passes = 5);

// Peak of the byte multiply-add (VPMADDUBSW, 256-bit) that int8 numerics runs its FP4
// products on, in 1e9 operations per second (a multiply-add counts 2); 0 on targets
// without the int8 vector kernel.
FlopsResult measure_peak_int8(ThreadPool& pool, int passes = 5);

// Monotonic seconds.
double now_seconds();

}  // namespace dsv4::bench
