// Reusable temporaries of the forward pass. Every forward call needs the same large
// buffers (a 512-token prefill: 67 MB for the attention queries alone); a fresh
// std::vector of that size is a new mapping whose pages fault in and are zeroed on every
// call, which was about a quarter of prefill time. scratch<Id>(n) keeps one buffer per
// call site and thread across calls, so steady-state decode and prefill allocate nothing.
//
// Contents are NOT zeroed and survive only until the same site runs again: each Id
// belongs to exactly one site, whose code overwrites all n elements before reading them.
// The buffers keep their largest size (memory of the largest batch stays reserved).
#pragma once

#include <cstdint>
#include <vector>

#include "core/aligned_scratch.h"

namespace dsv4::model {

enum class ScratchId {
  kStreams,
  kBlockX,
  kBlockSub,
  kAttnQLatent,
  kAttnKv,
  kAttnQ,
  kAttnOut,
  kGroupIn,
  kGroupLatent,
  kGroupConcat,
  kCompKv,
  kCompScore,
  kIndexCompKv,
  kIndexCompScore,
  kIndexWeights,
  kIndexQ,
  kMoeAcc,
  kMoeX,
  kMoeGate,
  kMoeUp,
  kMoeDown,
};

template <ScratchId Id, class T = float>
T* scratch(int64_t n) {
  thread_local ScratchBuffer<T> buf;
  return buf.get(n);
}

}  // namespace dsv4::model
