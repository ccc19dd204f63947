// LRU cache of sequence-state snapshots keyed by the exact token prefix that produced
// them. A snapshot is a full copy of kv::SequenceState taken at a token boundary (the
// sliding-window ring, every compressor's partial block and the compressed entries), so
// restoring one and feeding the remaining tokens is exactly equivalent to a full prefill.
// Owned and used by the scheduler's worker thread only (not thread-safe).
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <vector>

#include "kv/kv_state.h"

namespace dsv4::runtime {

class PrefixCache {
 public:
  // budget_bytes: bound on the sum of stored states' bytes() (0 disables the cache);
  // min_tokens: shorter keys are never stored.
  PrefixCache(int64_t budget_bytes, int64_t min_tokens);

  // Finds the longest stored key that is a prefix of `tokens` and at most max_len long,
  // copies its state into *out and marks it most recently used. Returns the key length,
  // or 0 on a miss (out untouched). If `common` is given it receives the longest common
  // prefix of `tokens` with any stored key (whole or not): where two conversations branch.
  int64_t lookup(std::span<const int32_t> tokens, int64_t max_len, kv::SequenceState* out,
                 int64_t* common = nullptr);

  // Stores a copy of `state` (whose n_past must equal key.size()) under `key`, evicting
  // least recently used entries to stay within budget. Returns false when not stored
  // (too short, larger than the whole budget, cache off); an existing equal key is only
  // marked most recently used.
  bool insert(std::span<const int32_t> key, const kv::SequenceState& state);

  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return int64_t(lru_.size()); }
  int64_t budget() const { return budget_; }
  bool enabled() const { return budget_ > 0; }
  void clear();

 private:
  struct Entry {
    std::vector<int32_t> key;
    kv::SequenceState state;
    int64_t bytes = 0;
  };
  void evict_to(int64_t limit);

  int64_t budget_, min_tokens_;
  int64_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
};

}  // namespace dsv4::runtime
