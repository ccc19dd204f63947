#include "kv/row_store.h"

#include <algorithm>

#include "core/error.h"

namespace dsv4::kv {

void RowStore::clear(int64_t width) {
  check(width >= 0, "RowStore: negative row width");
  width_ = width;  // 0: a store that stays empty (e.g. indexer keys of a model without CSA)
  chunk_rows_ = width > 0 ? std::max<int64_t>(1, kChunkBytes / (width * int64_t(sizeof(float)))) : 1;
  rows_ = 0;
  chunks_.clear();
}

void RowStore::append(const float* row) {
  check(width_ > 0, "RowStore: append to a store without a row width");
  if (rows_ % chunk_rows_ == 0) chunks_.emplace_back();
  auto& last = chunks_.back();
  last.insert(last.end(), row, row + width_);
  ++rows_;
}

std::vector<float> RowStore::to_vector() const {
  std::vector<float> out;
  out.reserve(size_t(rows_ * width_));
  for (const auto& c : chunks_) out.insert(out.end(), c.begin(), c.end());
  return out;
}

int64_t RowStore::bytes() const {
  int64_t total = 0;
  for (const auto& c : chunks_) total += int64_t(c.capacity() * sizeof(float));
  return total;
}

bool operator==(const RowStore& a, const RowStore& b) {
  return a.width_ == b.width_ && a.rows_ == b.rows_ && a.chunks_ == b.chunks_;
}

}  // namespace dsv4::kv
