// Reusable temporaries (kernels, forward pass): a buffer kept by the caller (usually
// thread_local) that only ever grows, handed out 64-byte aligned, with no promise about
// its contents.
//
// Why not a std::vector: resize() value-initialises (a memset of every new element) and
// a reallocation copies the old contents, and a large vector is a fresh malloc mapping
// whose 4 KiB pages all fault in on first touch. The first 512-token prefill of a process
// paid 2.4 s for that on the dev VM (where a page fault is expensive), against 0.4 s for
// the second. ScratchBuffer maps its memory directly, asks for 2 MiB pages from 2 MiB on,
// at least doubles when it grows (so a growing caller remaps O(log n) times), and never
// fills or copies: callers overwrite what they read.
// Full-vector loads that split cache lines cost like a second load (measured on Zen 5),
// hence the 64-byte alignment (the mapping is page aligned).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace dsv4 {

namespace detail {
void* scratch_map(size_t bytes);  // page-aligned, huge pages advised if large; throws bad_alloc
void scratch_unmap(void* p, size_t bytes);
}  // namespace detail

template <class T>
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ScratchBuffer(ScratchBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  ScratchBuffer& operator=(ScratchBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~ScratchBuffer() { release(); }

  // At least n elements, 64-byte aligned; contents are whatever was left there (after
  // a growth: unspecified).
  T* get(int64_t n) {
    const size_t want = n > 0 ? size_t(n) : 1;
    if (want > n_) {
      const size_t grown = std::max(want, 2 * n_);
      release();
      p_ = static_cast<T*>(detail::scratch_map(grown * sizeof(T)));
      n_ = grown;
    }
    return p_;
  }
  size_t capacity() const { return n_; }

 private:
  void release() {
    if (p_ != nullptr) detail::scratch_unmap(p_, n_ * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;  // elements
};

}  // namespace dsv4
