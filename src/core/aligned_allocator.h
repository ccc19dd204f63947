// A std::allocator that hands out 64-byte aligned storage (one cache line), for long-lived
// arrays the SIMD kernels stream with full-vector loads (KV cache chunks): a vector load
// that straddles two cache lines costs about as much as a second load. Large blocks from
// the default allocator start 16 bytes past a page boundary.
#pragma once

#include <cstddef>
#include <new>

namespace dsv4 {

template <class T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};

  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlign); }

  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
};

}  // namespace dsv4
