// kv::RowStore: rows survive growth in place, runs cover every row once, copies and
// equality behave like the std::vector it replaced.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "kv/row_store.h"

namespace dsv4::kv {
namespace {

std::vector<float> make_row(int64_t width, int64_t i) {
  std::vector<float> row(static_cast<size_t>(width));
  for (int64_t k = 0; k < width; ++k) row[size_t(k)] = float(i * 1000 + k);
  return row;
}

TEST(RowStore, AppendsAcrossChunksWithoutMovingRows) {
  // 100000 floats per row: 5 rows per 2 MiB chunk, so 23 rows span 5 chunks.
  const int64_t width = 100000, n = 23;
  RowStore s(width);
  for (int64_t i = 0; i < 10; ++i) s.append(make_row(width, i).data());
  std::vector<const float*> where;  // rows of the two full chunks
  for (int64_t i = 0; i < 10; ++i) where.push_back(s.row(i));
  for (int64_t i = 10; i < n; ++i) s.append(make_row(width, i).data());
  ASSERT_EQ(s.rows(), n);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(s.row(i), where[size_t(i)]) << "row " << i << " moved";
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(s.row(i)[0], float(i * 1000));
    EXPECT_EQ(s.row(i)[width - 1], float(i * 1000 + width - 1));
  }
  const std::vector<float> flat = s.to_vector();
  ASSERT_EQ(int64_t(flat.size()), n * width);
  EXPECT_EQ(flat[size_t(7 * width + 3)], 7003.0f);
  EXPECT_GE(s.bytes(), int64_t(n * width * sizeof(float)));
}

// Rows of a multiple of 16 floats start on cache lines (the KV kernels' vector loads),
// in every chunk, also after the last chunk has grown (reallocated) several times.
TEST(RowStore, RowsAreCacheLineAligned) {
  for (int64_t width : {128, 512}) {
    RowStore s(width);
    const int64_t n = 3 * (RowStore::kChunkBytes / (width * 4)) + 17;
    for (int64_t i = 0; i < n; ++i) s.append(make_row(width, i).data());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(reinterpret_cast<uintptr_t>(s.row(i)) % 64, 0u) << "width " << width << " row " << i;
  }
}

TEST(RowStore, RunsCoverEachRowOnceAndAreContiguous) {
  const int64_t width = 100000;
  RowStore s(width);
  for (int64_t i = 0; i < 17; ++i) s.append(make_row(width, i).data());
  for (int64_t begin : {0, 3, 5, 16})
    for (int64_t end : {begin, begin + 1, int64_t(17)}) {
      if (end < begin) continue;
      int64_t next = begin, runs = 0;
      s.for_each_run(begin, end, [&](int64_t first, int64_t rows, const float* data) {
        EXPECT_EQ(first, next);
        EXPECT_GT(rows, 0);
        for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(data[r * width], float((first + r) * 1000));
        next += rows;
        ++runs;
      });
      EXPECT_EQ(next, end);
      if (begin == 0 && end == 17) {
        EXPECT_EQ(runs, 4);  // chunks of 5 rows
      }
    }
}

TEST(RowStore, CopyEqualityAndClear) {
  RowStore a(4), b(4);
  for (int64_t i = 0; i < 3; ++i) {
    a.append(make_row(4, i).data());
    b.append(make_row(4, i).data());
  }
  EXPECT_TRUE(a == b);
  RowStore c = a;  // deep copy (prefix-cache snapshots)
  b.append(make_row(4, 9).data());
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a == c);
  c.clear(4);
  EXPECT_EQ(c.rows(), 0);
  EXPECT_EQ(a.rows(), 3);
  EXPECT_FALSE(RowStore(4) == RowStore(5));
}

TEST(RowStore, WidthlessStoreRejectsAppend) {
  RowStore s(0);
  EXPECT_TRUE(s.empty());
  const float x = 1.0f;
  EXPECT_THROW(s.append(&x), Error);
  EXPECT_THROW(s.clear(-1), Error);
}

}  // namespace
}  // namespace dsv4::kv
