#include "kv/kv_state.h"

#include <cmath>

namespace dsv4::kv {

void CompressorState::init(int64_t ratio_, int64_t row_width_, bool overlap) {
  ratio = ratio_;
  row_width = row_width_;
  const size_t n = size_t(ratio * row_width);
  cur_kv.assign(n, 0.0f);
  cur_score.assign(n, -INFINITY);
  prev_kv.assign(overlap ? n : 0, 0.0f);
  prev_score.assign(overlap ? n : 0, -INFINITY);
  has_prev = false;
  n_entries = 0;
}

static int64_t vec_bytes(const std::vector<float>& v) { return int64_t(v.capacity() * sizeof(float)); }

int64_t SequenceState::bytes() const {
  int64_t total = 0;
  for (const auto& l : layers) {
    total += vec_bytes(l.ring) + l.comp_kv.bytes() + l.index_keys.bytes();
    for (const auto* c : {&l.compressor, &l.index_compressor})
      total += vec_bytes(c->cur_kv) + vec_bytes(c->cur_score) + vec_bytes(c->prev_kv) + vec_bytes(c->prev_score);
  }
  return total;
}

}  // namespace dsv4::kv
