// DeepSeek-V4 hybrid attention for one layer: low-rank queries, one shared K=V latent,
// a sliding window of raw keys, plus compressed entries (ratio 4 with overlapping
// windows and a lightning indexer choosing top-k entries; other ratios use all entries),
// a per-head sink in the softmax denominator, and a grouped low-rank output projection.
//
// One code path serves prefill and decode: a chunk of n_tok tokens at positions
// start_pos.. is processed against the layer state, which it then advances.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/ops.h"
#include "io/config.h"
#include "kv/kv_state.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsv4::model {

// Sets up an empty state for a layer with compression ratio `ratio`.
void init_layer_state(const io::Config& c, int64_t ratio, kv::LayerState& st);

// Appends n_tok projected tokens (positions start_pos..) to a compressor's partial block
// and emits one entry (pooled, RMS-normed, RoPE'd at ratio*j) per completed block.
//   kv, score: [n_tok, coff*w.dim] rows of the compressor projections of those tokens;
//   entries: [n_entries, w.dim], grows.
void compress_tokens(backend::Ops& ops, const io::Config& c, const CompressorWeights& w, const Rope& rope,
                     kv::CompressorState& st, const float* kv, const float* score, int64_t n_tok, int64_t start_pos,
                     kv::RowStore& entries);

// Indexer top-k: the k highest-scoring entries, ties to the lower index, returned sorted
// ascending. scores: [n]. k is clamped to n.
std::vector<int32_t> top_k_entries(const float* scores, int64_t n, int64_t k);

struct AttentionTrace {
  std::vector<std::vector<int32_t>> index_topk;  // per query: chosen entries, ascending (CSA only)
};

// One sequence's rows in a batch: rows [row0, row0+n_tok) are its tokens at positions
// start_pos.., attending over (and advancing) its own layer state.
struct SeqSlice {
  kv::LayerState* state = nullptr;
  int64_t row0 = 0;
  int64_t n_tok = 0;
  int64_t start_pos = 0;
  AttentionTrace* trace = nullptr;  // optional
};

// x: [n_rows, n_embd] (the attn_norm output of every sequence's tokens) -> out: [n_rows, n_embd].
// Projections run once over the whole batch; the attention itself per sequence.
void attention_forward(backend::Ops& ops, const io::Config& c, const AttentionWeights& w, const Rope& rope,
                       std::span<const SeqSlice> seqs, const float* x, int64_t n_rows, float* out);

}  // namespace dsv4::model
