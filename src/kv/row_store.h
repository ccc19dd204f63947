// Rows of one width appended over time (compressed KV entries, indexer keys), stored in
// chunks so that growth never moves the rows already there. A std::vector copies all of
// them at every capacity doubling: at 1M tokens of context that is a 512 MB copy per
// CSA layer inside one decode step. Here the last chunk grows like a vector up to
// kChunkBytes and then a new chunk starts, so an append copies at most one chunk and a
// short sequence holds no more than about twice its rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/aligned_allocator.h"

namespace dsv4::kv {

class RowStore {
 public:
  static constexpr int64_t kChunkBytes = int64_t(2) << 20;

  RowStore() = default;
  explicit RowStore(int64_t width) { clear(width); }

  // Drops every row; later rows have `width` floats (0: nothing may be appended).
  void clear(int64_t width);
  // Appends one row: row[0 .. width).
  void append(const float* row);

  int64_t width() const { return width_; }
  int64_t rows() const { return rows_; }
  bool empty() const { return rows_ == 0; }
  // Row i: [width] floats, valid until the store is cleared or destroyed.
  const float* row(int64_t i) const {
    return chunks_[size_t(i / chunk_rows_)].data() + (i % chunk_rows_) * width_;
  }
  // Rows [begin, end) as contiguous runs: fn(first_row, n_rows, data [n_rows, width]).
  template <class Fn>
  void for_each_run(int64_t begin, int64_t end, Fn&& fn) const {
    while (begin < end) {
      const int64_t in_chunk = begin % chunk_rows_;
      const int64_t n = std::min(end - begin, chunk_rows_ - in_chunk);
      fn(begin, n, row(begin));
      begin += n;
    }
  }
  // Every row in order, [rows, width] (tests, reports).
  std::vector<float> to_vector() const;
  // Bytes allocated.
  int64_t bytes() const;

  friend bool operator==(const RowStore& a, const RowStore& b);

 private:
  int64_t width_ = 0;
  int64_t chunk_rows_ = 1;                 // rows per chunk: ~kChunkBytes, at least 1
  int64_t rows_ = 0;
  // Each [<= chunk_rows_, width], 64-byte aligned: rows of a multiple of 16 floats then
  // start on cache lines for the attention and indexer kernels.
  std::vector<std::vector<float, AlignedAllocator<float>>> chunks_;
};

}  // namespace dsv4::kv
