#include "core/aligned_scratch.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace dsv4 {
namespace {

// Every buffer handed out is 64-byte aligned and holds the elements asked for (written
// and read back in full); a request within the capacity keeps the buffer and what the
// caller left in it; growth at least doubles, so a caller growing by small steps remaps
// only a logarithmic number of times.
TEST(ScratchBuffer, AlignedLargeEnoughReusedAndDoubling) {
  ScratchBuffer<float> b;
  EXPECT_EQ(b.capacity(), 0u);
  float* p = b.get(1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  for (int i = 0; i < 1000; ++i) p[i] = float(i);
  EXPECT_EQ(b.get(10), p);  // smaller: same buffer, contents kept
  EXPECT_EQ(b.get(1000), p);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(p[i], float(i));
  const size_t cap = b.capacity();
  EXPECT_GE(cap, 1000u);
  float* q = b.get(int64_t(cap) + 1);  // one more than it holds: grows to at least twice
  EXPECT_GE(b.capacity(), 2 * cap);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
  for (size_t i = 0; i < b.capacity(); ++i) q[i] = 1.0f;  // all of it is usable
  int remaps = 0;
  float* last = q;
  for (int64_t n = 1; n <= (int64_t(1) << 22); n += n / 8 + 1) {  // ~130 growing requests
    float* r = b.get(n);
    remaps += r != last;
    last = r;
    r[n - 1] = 0.0f;
  }
  EXPECT_LE(remaps, 12);
  // Zero and negative sizes give a valid (one-element) buffer.
  ScratchBuffer<uint16_t> z;
  EXPECT_NE(z.get(0), nullptr);
  // Moving hands over the buffer.
  ScratchBuffer<float> moved(std::move(b));
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(moved.get(1), last);
}

}  // namespace
}  // namespace dsv4
