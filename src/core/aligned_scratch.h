// Reusable temporaries (kernels, forward pass): a std::vector kept by the caller (usually
// thread_local) that only ever grows, handed out 64-byte aligned. resize() to a larger
// size zero-fills the new tail even within capacity, so products and attention calls of
// alternating sizes paid a memset on every call; full-vector loads that split cache
// lines cost like a second load (measured on Zen 5).
#pragma once

#include <cstdint>
#include <vector>

namespace dsv4 {

// At least n elements of v, 64-byte aligned; contents are whatever was left there.
template <class T>
T* aligned_scratch(std::vector<T>& v, int64_t n) {
  const size_t want = size_t(n) + 64 / sizeof(T);
  if (v.size() < want) v.resize(want);
  T* p = v.data();
  while (reinterpret_cast<uintptr_t>(p) % 64 != 0) ++p;
  return p;
}

}  // namespace dsv4
