// Software prefetch distances of the decode kernels (one token: the weights stream from
// memory once). Shared by the exact kernels (matmul.cpp) and the BF16 dot-product ones.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/weight.h"

namespace dsv4::backend::cpu {

// Bytes ahead of the current load in a kernel that walks one row: the hardware
// prefetchers alone leave the FP4 expert products at half speed (kernels_bench on Zen 5,
// 2 threads: 18 GB/s without, 35 GB/s at 8 KiB, 38-41 GB/s at 16 KiB, less at 32-64 KiB;
// the T0/T1 hints were no better than NTA). Measurements in docs/performance-history.md.
#ifndef DSV4_PREFETCH_BYTES
#define DSV4_PREFETCH_BYTES 16384
#endif
constexpr int64_t kPrefetchBytes = DSV4_PREFETCH_BYTES;

// Cache level of the weight-stream prefetches, chosen once per process (prefetch.cpp):
// NTA on AMD, T1 (into L2) elsewhere. On Intel Xeons (Skylake-SP and later,
// non-inclusive L3) an NTA prefetch fills L1 alone, and the LM head's four rows
// prefetched 32 KiB ahead (128 KiB in flight per core) overflow the 48 KiB L1: the lines
// are gone before their loads and every load waits on DRAM. On an Emerald Rapids VM (2
// threads, kernels_bench) NTA held the BF16 head at 9.2 GB/s, the FP4 experts at 5.1 and
// FP8 at 10.3; T1 ran them at 27.2, 15.6 and 16.8 against a 25-26 GB/s read probe. On
// AMD the two measure the same (Zen 3) or NTA is ahead (Zen 5, exact LM head: 54-57
// against 46-50 GB/s). DSV4_PREFETCH=nta|l2 in the environment overrides the choice.
extern const bool g_prefetch_nta;

// The choice: env (the value of DSV4_PREFETCH, or null) "nta" or "l2" wins; otherwise
// (also for an unknown value, which the start-up choice reports on stderr) NTA exactly
// when the CPU is AMD's.
bool prefetch_nta_for(const char* env, bool amd);

// Name of the hint in use, for the benchmarks' reports: "nta" or "l2".
const char* prefetch_hint_name();

// One cache line of a weight stream, ahead of its loads (the test is one predictable
// branch per 64-128 weight bytes).
[[gnu::always_inline]] inline void prefetch_stream(const void* p) {
  if (g_prefetch_nta)
    __builtin_prefetch(p, 0, 0);
  else
    __builtin_prefetch(p, 0, 2);
}

// Distance for a kernel that walks `rows` rows side by side, `stride` rows apart. Adjacent
// rows (stride 1: one step = rows x row_bytes): a whole number of steps, at least
// kPrefetchBytes, so that each row's prefetch lands in the same row of a later step. A
// distance shorter than a step lands in a row of the current step for some of the rows,
// which is read at the same moment (the LM head, four 8 KiB rows at 16 KiB: 23-25 GB/s on
// one core; at one step, 32 KiB: 28-32 GB/s). Rows apart (for_row_pairs_apart): each
// row's stream continues in its next row, so the distance of one row.
inline int64_t prefetch_distance(int64_t rows, int64_t row_bytes, int64_t stride = 1) {
  const int64_t step = (stride == 1 ? rows : 1) * row_bytes;
  return step <= 0 ? kPrefetchBytes : step * ((kPrefetchBytes + step - 1) / step);
}

// Decode (one token) walks a piece of rows [r0, r1) as pairs half the piece apart: rows
// r0 + i and r0 + i + h for i < h = (r1 - r0) / 2, then the odd row left over. Two
// streams far apart read faster than adjacent rows taken side by side: the LM head
// ([129280, 4096] BF16, 8 KiB rows, kernels_bench --only bf16, 2 threads, Zen 5),
// alternating runs: four adjacent rows 52-56 GB/s, two adjacent rows 41-44, two rows
// half a piece apart 62-65 (avx512) and 57-66 against 48-58 (avx2). A pair kernel
// prefetches prefetch_distance(2, row_bytes, h) ahead.
// pair(ra, rb) (rb = ra + h) returns false, having written nothing, when a scale or code
// of the pair needs another path; both rows then go to one(r), as does the odd row.
template <class Pair, class One>
inline void for_row_pairs_apart(int64_t r0, int64_t r1, const Pair& pair, const One& one) {
  const int64_t h = (r1 - r0) / 2;
  for (int64_t i = 0; i < h; ++i) {
    if (pair(r0 + i, r0 + i + h)) continue;
    one(r0 + i);
    one(r0 + i + h);
  }
  if (2 * h < r1 - r0) one(r1 - 1);
}

// FP4 kernels prefetch the scale bytes of the row this many rows ahead: a 4096-wide
// row's 128 scale bytes are two lines, a stream apart from the weights, and leaving them
// to a demand miss stalls each row for a full DRAM latency.
constexpr int64_t kPrefetchScaleRows = 8;

// Every cache line of [p, p + n) (also the last, partly covered one) into L1 (T0).
// Always inlined: called from the kernels' target-specific code, an out-of-line copy
// (default target) was judged free of side effects and its calls deleted (GCC 12, -O3:
// no prefetcht0 left in matmul.o).
[[gnu::always_inline]] inline void prefetch_lines(const uint8_t* p, int64_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t l = a & ~uintptr_t(63); l < a + uintptr_t(n); l += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(l), 0, 3);
}

// The same over a weight stream, with prefetch_stream's hint.
[[gnu::always_inline]] inline void prefetch_stream_lines(const uint8_t* p, int64_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t l = a & ~uintptr_t(63); l < a + uintptr_t(n); l += 64)
    prefetch_stream(reinterpret_cast<const void*>(l));
}

// Multi-token tiles (prefill) meet a row block's weights in memory during the block's
// first token tile only; the later tiles find them in cache, and the tile kernels issue
// no software prefetch of their own (there it only took load slots). With few tokens per
// product, as for a routed expert (about 12 of a 512-token prefill), that cold first
// tile is a large share of the work, and its demand misses stalled it: kernels_bench
// `--only moe` (64 FP4 experts [2048, 4096], 12 tokens each, fast numerics) ran at
// 397-399 GFLOP/s against 504-508 on one cache-warm expert, and at 473-488 with this.
// A walk over rows [begin, end) in that first tile calls before(r) ahead of row r: the
// rows up to kPrefetchBytes further on (and their FP4 scales) are prefetched once each.
class RowPrefetcher {
 public:
  RowPrefetcher(const WeightView& w, int64_t begin, int64_t end)
      : w_(w), end_(end), next_(begin), row_bytes_(w.row_bytes()),
        ahead_(row_bytes_ > 0 ? (kPrefetchBytes + row_bytes_ - 1) / row_bytes_ : 0) {}

  void before(int64_t r) {
    const int64_t want = std::min(end_, r + 1 + ahead_);
    if (next_ >= want || row_bytes_ <= 0) return;
    prefetch_stream_lines(w_.data + next_ * row_bytes_, (want - next_) * row_bytes_);
    if (w_.format == WeightFormat::FP4_BLOCK32)
      prefetch_stream_lines(w_.scale + next_ * (w_.n_in / 32), (want - next_) * (w_.n_in / 32));
    next_ = want;
  }

  // Rows [begin, prefetched_until()) have been prefetched; never past `end`.
  int64_t prefetched_until() const { return next_; }

 private:
  const WeightView& w_;
  int64_t end_, next_, row_bytes_, ahead_;
};

}  // namespace dsv4::backend::cpu
