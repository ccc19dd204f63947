#include "core/aligned_scratch.h"

#include <sys/mman.h>

#include <new>

namespace dsv4::detail {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer the buffers come from the allocator it watches, so that a read
// or write past a buffer's capacity is still reported.
void* scratch_map(size_t bytes) { return ::operator new(bytes, std::align_val_t(64)); }
void scratch_unmap(void* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
#else
void* scratch_map(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (bytes >= kHugePage) ::madvise(p, bytes, MADV_HUGEPAGE);  // advice: 4 KiB pages still work
  return p;
}
void scratch_unmap(void* p, size_t bytes) { ::munmap(p, bytes); }
#endif

}  // namespace dsv4::detail
