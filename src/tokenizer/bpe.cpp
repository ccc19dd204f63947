#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace dsv4::tok::detail {

namespace {
constexpr uint32_t kNoRank = ~uint32_t{0};
constexpr size_t kSmallMax = 256;  // pieces up to this many bytes use the array algorithm
}  // namespace

void BpeModel::grow() {
  std::vector<Slot> old = std::move(slots_);
  const size_t cap = old.empty() ? 1024 : old.size() * 2;
  slots_.assign(cap, Slot{kEmpty, 0, 0});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = hash(s.key) & mask_;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void BpeModel::add_merge(int32_t left, int32_t right, int32_t result, uint32_t rank) {
  if ((count_ + 1) * 2 > slots_.size()) grow();  // load factor <= 0.5
  const uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  size_t i = hash(key) & mask_;
  while (slots_[i].key != kEmpty) {
    if (slots_[i].key == key) return;  // first occurrence wins
    i = (i + 1) & mask_;
  }
  slots_[i] = Slot{key, rank, result};
  ++count_;
}

void BpeModel::encode(const char* piece, size_t n, std::vector<int32_t>& out) const {
  if (n == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
  } else if (n <= kSmallMax) {
    encode_small(piece, n, out);
  } else {
    encode_heap(piece, n, out);
  }
}

// Array algorithm: ids[k] is symbol k, rank[k]/res[k] describe the pair (k, k+1). Each step
// merges the lowest-ranked pair (leftmost on ties) and recomputes only its two neighbours.
void BpeModel::encode_small(const char* piece, size_t n, std::vector<int32_t>& out) const {
  int32_t ids[kSmallMax];
  uint32_t rank[kSmallMax];
  int32_t res[kSmallMax];
  for (size_t k = 0; k < n; ++k) ids[k] = byte_ids_[static_cast<uint8_t>(piece[k])];
  auto pair_rank = [&](size_t k) {
    const Slot* s = find(ids[k], ids[k + 1]);
    if (s) {
      rank[k] = s->rank;
      res[k] = s->result;
    } else {
      rank[k] = kNoRank;
    }
  };
  for (size_t k = 0; k + 1 < n; ++k) pair_rank(k);
  size_t len = n;
  while (len > 1) {
    size_t best = 0;
    uint32_t best_rank = rank[0];
    for (size_t k = 1; k + 1 < len; ++k) {
      if (rank[k] < best_rank) {
        best_rank = rank[k];
        best = k;
      }
    }
    if (best_rank == kNoRank) break;
    ids[best] = res[best];
    // Remove symbol best+1 and pair entry best+1 (pair (best+1, best+2) no longer exists).
    const size_t tail = len - best - 2;
    if (tail > 0) std::memmove(ids + best + 1, ids + best + 2, tail * sizeof(int32_t));
    if (tail > 1) {
      std::memmove(rank + best + 1, rank + best + 2, (tail - 1) * sizeof(uint32_t));
      std::memmove(res + best + 1, res + best + 2, (tail - 1) * sizeof(int32_t));
    }
    --len;
    if (best + 1 < len) pair_rank(best);
    if (best > 0) pair_rank(best - 1);
  }
  out.insert(out.end(), ids, ids + len);
}

// Heap algorithm for long pieces: doubly linked symbols plus a min-heap of candidate pairs
// keyed by (rank, position); stale entries are skipped when popped.
void BpeModel::encode_heap(const char* piece, size_t n, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Cand {
    uint32_t rank;
    int32_t pos;      // left symbol index (also its byte position: leftmost on ties)
    int32_t right;    // right symbol index at push time
    int32_t left_id, right_id, result;
    bool operator>(const Cand& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Cand> heap;
  syms.resize(n);
  for (size_t k = 0; k < n; ++k) {
    syms[k] = Sym{byte_ids_[static_cast<uint8_t>(piece[k])], int32_t(k) - 1,
                  k + 1 < n ? int32_t(k + 1) : -1};
  }
  heap.clear();
  const auto cmp = std::greater<Cand>{};  // min-heap
  auto push = [&](int32_t l) {
    if (l < 0) return;
    const int32_t r = syms[l].next;
    if (r < 0) return;
    if (const Slot* s = find(syms[l].id, syms[r].id)) {
      heap.push_back(Cand{s->rank, l, r, syms[l].id, syms[r].id, s->result});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  for (size_t k = 0; k + 1 < n; ++k) push(int32_t(k));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const Cand c = heap.back();
    heap.pop_back();
    Sym& l = syms[c.pos];
    if (l.id < 0 || l.next != c.right || l.id != c.left_id) continue;
    Sym& r = syms[c.right];
    if (r.id != c.right_id) continue;
    l.id = c.result;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.pos;
    r.id = -1;  // dead
    push(l.prev);
    push(c.pos);
  }
  for (int32_t k = 0; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
}

}  // namespace dsv4::tok::detail
