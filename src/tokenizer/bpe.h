// Byte-level BPE core (spec B.3 step 2): merges the byte tokens of one pre-tokenized piece,
// always merging the adjacent pair with the lowest merge rank (leftmost on ties), exactly as
// Hugging Face `tokenizers` does. Internal to dsv4_tokenizer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsv4::tok::detail {

class BpeModel {
 public:
  // Registers merge number `rank` (0 = highest priority): left + right -> result.
  // Later duplicates of the same pair are ignored (the first rank wins, as in HF).
  void add_merge(int32_t left, int32_t right, int32_t result, uint32_t rank);
  void set_byte_token(uint8_t byte, int32_t id) { byte_ids_[byte] = id; }
  int32_t byte_token(uint8_t byte) const { return byte_ids_[byte]; }
  size_t num_merges() const { return count_; }

  // Appends the ids of piece[0, n) (raw UTF-8 bytes, n > 0) to out.
  void encode(const char* piece, size_t n, std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key;    // (left << 32) | right, kEmpty when unused
    uint32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // Returns the slot for (left, right) or nullptr.
  const Slot* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
    size_t i = hash(key) & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  void grow();

  void encode_small(const char* piece, size_t n, std::vector<int32_t>& out) const;
  void encode_heap(const char* piece, size_t n, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_{};
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
};

}  // namespace dsv4::tok::detail
