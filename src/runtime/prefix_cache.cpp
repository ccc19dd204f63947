#include "runtime/prefix_cache.h"

#include <algorithm>

namespace dsv4::runtime {

PrefixCache::PrefixCache(int64_t budget_bytes, int64_t min_tokens)
    : budget_(std::max<int64_t>(0, budget_bytes)), min_tokens_(std::max<int64_t>(1, min_tokens)) {}

int64_t PrefixCache::lookup(std::span<const int32_t> tokens, int64_t max_len, kv::SequenceState* out,
                            int64_t* common) {
  max_len = std::min<int64_t>(max_len, int64_t(tokens.size()));
  auto best = lru_.end();
  int64_t best_len = 0, best_common = 0;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const int64_t n = int64_t(it->key.size());
    if (common) {
      const size_t m = std::min(it->key.size(), tokens.size());
      const int64_t c = int64_t(std::mismatch(it->key.begin(), it->key.begin() + ptrdiff_t(m), tokens.begin()).first -
                                it->key.begin());
      best_common = std::max(best_common, c);
      if (c < n) continue;  // not a whole-key prefix
    } else {
      // Compare the last token first: most non-matching keys of a shared history differ there.
      if (n > int64_t(tokens.size()) || it->key.back() != tokens[size_t(n - 1)]) continue;
      if (!std::equal(it->key.begin(), it->key.end(), tokens.begin())) continue;
    }
    if (n <= best_len || n > max_len) continue;
    best = it;
    best_len = n;
  }
  if (common) *common = best_common;
  if (best == lru_.end()) return 0;
  lru_.splice(lru_.begin(), lru_, best);
  *out = best->state;  // a copy: the sequence will mutate it
  return best_len;
}

bool PrefixCache::insert(std::span<const int32_t> key, const kv::SequenceState& state) {
  if (budget_ <= 0 || int64_t(key.size()) < min_tokens_ || state.n_past != int64_t(key.size())) return false;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->key.size() == key.size() && std::equal(key.begin(), key.end(), it->key.begin())) {
      lru_.splice(lru_.begin(), lru_, it);
      return true;
    }
  }
  Entry e;
  e.key.assign(key.begin(), key.end());
  e.state = state;  // copied vectors hold exactly their size, so bytes() is tight
  e.bytes = e.state.bytes() + int64_t(e.key.capacity() * sizeof(int32_t));
  if (e.bytes > budget_) return false;
  evict_to(budget_ - e.bytes);
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  return true;
}

void PrefixCache::evict_to(int64_t limit) {
  while (bytes_ > limit && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    lru_.pop_back();
  }
}

void PrefixCache::clear() {
  lru_.clear();
  bytes_ = 0;
}

}  // namespace dsv4::runtime
