// Per-sequence decode state of every attention layer: the sliding-window ring of raw KV
// rows, the compressors' partial blocks, the compressed KV entries and the indexer keys.
// Plain copyable data, so a state can be snapshotted (prefix cache) or rolled back.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/row_store.h"

namespace dsv4::kv {

// A compressor's pending tokens. Rows are per slot in the block (slot = pos % ratio):
// each holds the token's projected value and its gate score (ape already added).
// With overlap (ratio 4) a row has two halves [A | B] of `dim` channels each and the
// previous complete block is kept too, because entry j pools block j-1's A-halves with
// block j's B-halves.
struct CompressorState {
  int64_t ratio = 0;
  int64_t row_width = 0;             // coff * dim
  std::vector<float> cur_kv;         // [ratio, row_width] current (incomplete) block
  std::vector<float> cur_score;      // [ratio, row_width]
  std::vector<float> prev_kv;        // [ratio, row_width] previous complete block (overlap only)
  std::vector<float> prev_score;     // [ratio, row_width]
  bool has_prev = false;             // false until the first block completes
  int64_t n_entries = 0;             // compressed entries emitted so far

  void init(int64_t ratio_, int64_t row_width_, bool overlap);
};

struct LayerState {
  int64_t window = 0;                // sliding window length W
  int64_t head_dim = 0;
  std::vector<float> ring;           // [W, head_dim]: the token at position p lives in row p % W
  CompressorState compressor;        // ratio != 0
  RowStore comp_kv;                  // [n_entries, head_dim] compressed KV entries
  CompressorState index_compressor;  // ratio == 4
  RowStore index_keys;               // [n_entries, index_head_dim] indexer keys
};

// State of one sequence: all main layers, then the MTP blocks.
struct SequenceState {
  int64_t n_past = 0;                // tokens already processed by the main model
  int64_t n_past_mtp = 0;            // positions already processed by the MTP block(s)
  std::vector<LayerState> layers;    // [n_layer + n_mtp]

  // Bytes held by this state (for reporting and cache budgets).
  int64_t bytes() const;
};

}  // namespace dsv4::kv
