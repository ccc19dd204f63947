// Software prefetch distances of the decode kernels (one token: the weights stream from
// memory once). Shared by the exact kernels (matmul.cpp) and the BF16 dot-product ones.
#pragma once

#include <cstdint>

namespace dsv4::backend::cpu {

// Bytes ahead of the current load in a kernel that walks one row: the hardware
// prefetchers alone leave the FP4 expert products at half speed (kernels_bench on Zen 5,
// 2 threads: 18 GB/s without, 35 GB/s at 8 KiB, 38-41 GB/s at 16 KiB, less at 32-64 KiB;
// the T0/T1 hints were no better than NTA). Measurements in docs/performance.md.
constexpr int64_t kPrefetchBytes = 16384;

// Distance for a kernel that walks `rows` consecutive rows of `row_bytes` side by side
// (one step = rows x row_bytes): a whole number of steps, at least kPrefetchBytes, so that
// each row's prefetch lands in the same row of a later step. A distance shorter than a
// step lands in a row of the current step for some of the rows, which is read at the same
// moment (the LM head, four 8 KiB rows at 16 KiB: 23-25 GB/s on one core; at one step,
// 32 KiB: 28-32 GB/s).
inline int64_t prefetch_distance(int64_t rows, int64_t row_bytes) {
  const int64_t step = rows * row_bytes;
  return step <= 0 ? kPrefetchBytes : step * ((kPrefetchBytes + step - 1) / step);
}

}  // namespace dsv4::backend::cpu
