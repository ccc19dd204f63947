#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/scratch.h"

namespace dsv4::model {

namespace {

// Pools one compressed entry from the block in `st` (all ratio slots filled).
// Per channel, a softmax over the pooled rows' gate scores weights their values.
// Overlap: rows are the previous block's A-halves (if any) and this block's B-halves.
void pool_entry(const kv::CompressorState& st, int64_t dim, bool overlap, float* entry) {
  const int64_t ratio = st.ratio, width = st.row_width;
  std::vector<double> gate, value;
  for (int64_t ch = 0; ch < dim; ++ch) {
    gate.clear();
    value.clear();
    if (overlap && st.has_prev) {
      for (int64_t s = 0; s < ratio; ++s) {
        gate.push_back(st.prev_score[size_t(s * width + ch)]);
        value.push_back(st.prev_kv[size_t(s * width + ch)]);
      }
    }
    const int64_t half = overlap ? dim : 0;  // B-half channels for overlap, the only half otherwise
    for (int64_t s = 0; s < ratio; ++s) {
      gate.push_back(st.cur_score[size_t(s * width + half + ch)]);
      value.push_back(st.cur_kv[size_t(s * width + half + ch)]);
    }
    const double m = *std::max_element(gate.begin(), gate.end());
    double denom = 0.0, acc = 0.0;
    for (size_t r = 0; r < gate.size(); ++r) {
      const double p = std::exp(gate[r] - m);
      denom += p;
      acc += p * value[r];
    }
    entry[ch] = float(acc / denom);
  }
}

// Window keys visible to the query at position pos: positions max(0, pos-W+1)..pos, oldest
// first. Positions before the chunk come from the ring, the others from the chunk's kv.
void window_keys(const kv::LayerState& st, const float* chunk_kv, int64_t start_pos, int64_t pos,
                 std::vector<const float*>& keys) {
  const int64_t W = st.window, hd = st.head_dim;
  for (int64_t q = std::max<int64_t>(0, pos - W + 1); q <= pos; ++q)
    keys.push_back(q < start_pos ? st.ring.data() + (q % W) * hd : chunk_kv + (q - start_pos) * hd);
}

// Stores the chunk's last min(n_tok, W) kv rows in the ring (row = position % W).
void update_ring(kv::LayerState& st, const float* chunk_kv, int64_t n_tok, int64_t start_pos) {
  const int64_t W = st.window, hd = st.head_dim;
  for (int64_t t = std::max<int64_t>(0, n_tok - W); t < n_tok; ++t)
    std::copy_n(chunk_kv + t * hd, hd, st.ring.data() + ((start_pos + t) % W) * hd);
}

// Rotates the last rope_dim channels of each row's n_vec vectors of width dim by the row's position.
//   v: [rows, n_vec, dim], pos: [rows]
void rope_rows(backend::Ops& ops, const Rope& rope, float* v, const std::vector<int64_t>& pos, int64_t n_vec,
               int64_t dim, bool inverse) {
  ops.parallel_rows(int64_t(pos.size()), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      rope.apply_all(v + t * n_vec * dim, n_vec, dim, pos[size_t(t)], inverse);
  });
}

// A compressor's value and gate projections of every row of a batch (scratch memory).
struct Projection {
  int64_t width = 0;
  float* kv = nullptr;     // [n_rows, coff*dim]
  float* score = nullptr;  // [n_rows, coff*dim]
};

// Points a compressor's projections at the scratch of its site and queues their products
// of x (run as one group).
template <ScratchId KvId, ScratchId ScoreId>
void queue_compressor(const CompressorWeights& w, const float* x, int64_t n_rows, Projection& p,
                      std::vector<backend::Ops::MatmulJob>& jobs) {
  p.width = w.wkv.n_out;
  p.kv = scratch<KvId>(n_rows * p.width);
  p.score = scratch<ScoreId>(n_rows * p.width);
  jobs.push_back({&w.wkv, x, n_rows, p.kv});
  jobs.push_back({&w.wgate, x, n_rows, p.score});
}

// Grouped low-rank output: heads are split into o_groups groups; group g's concatenated
// head outputs go through rows [g*o_lora_rank, (g+1)*o_lora_rank) of wo_a; then wo_b.
//   o: [n_tok, n_head*head_dim] -> out: [n_tok, n_embd]
void grouped_output(backend::Ops& ops, const io::Config& c, const AttentionWeights& w, const float* o,
                    int64_t n_tok, float* out) {
  const int64_t G = c.o_groups, group_in = c.n_head * c.head_dim / G, rank = c.o_lora_rank;
  // og: [G, n_tok, group_in], zg: [G, n_tok, rank]; the G group products form one group.
  float* og = scratch<ScratchId::kGroupIn>(G * n_tok * group_in);
  float* zg = scratch<ScratchId::kGroupLatent>(G * n_tok * rank);
  float* z = scratch<ScratchId::kGroupConcat>(n_tok * G * rank);  // [n_tok, G * rank]
  std::vector<WeightView> wg(static_cast<size_t>(G));
  std::vector<backend::Ops::MatmulJob> jobs;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < n_tok; ++t)
      std::copy_n(o + t * G * group_in + g * group_in, group_in, og + (g * n_tok + t) * group_in);
    wg[size_t(g)] = weight_rows(w.wo_a, g * rank, rank);
    jobs.push_back({&wg[size_t(g)], og + g * n_tok * group_in, n_tok, zg + g * n_tok * rank});
  }
  ops.matmul_many(jobs.data(), int64_t(jobs.size()));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t t = 0; t < n_tok; ++t)
      std::copy_n(zg + (g * n_tok + t) * rank, rank, z + t * G * rank + g * rank);
  ops.matmul(w.wo_b, z, n_tok, out);
}

}  // namespace

void init_layer_state(const io::Config& c, int64_t ratio, kv::LayerState& st) {
  st.window = c.sliding_window;
  st.head_dim = c.head_dim;
  st.ring.assign(size_t(c.sliding_window * c.head_dim), 0.0f);
  st.comp_kv.clear(c.head_dim);
  st.index_keys.clear(c.index_head_dim);
  st.compressor = {};
  st.index_compressor = {};
  if (ratio != 0) st.compressor.init(ratio, (ratio == 4 ? 2 : 1) * c.head_dim, ratio == 4);
  if (ratio == 4) st.index_compressor.init(4, 2 * c.index_head_dim, true);
}

void compress_tokens(backend::Ops& ops, const io::Config& c, const CompressorWeights& w, const Rope& rope,
                     kv::CompressorState& st, const float* kv, const float* score, int64_t n_tok, int64_t start_pos,
                     kv::RowStore& entries) {
  const int64_t width = st.row_width, ratio = w.ratio, dim = w.dim;
  std::vector<float> entry(static_cast<size_t>(dim));
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = start_pos + t, slot = pos % ratio;
    for (int64_t i = 0; i < width; ++i) {
      st.cur_kv[size_t(slot * width + i)] = kv[t * width + i];
      st.cur_score[size_t(slot * width + i)] = score[t * width + i] + w.ape[size_t(slot * width + i)];
    }
    if (slot != ratio - 1) continue;
    // Block complete: entry j = pos / ratio, rotated at the position of its block's first token.
    const int64_t j = pos / ratio;
    pool_entry(st, dim, w.overlap, entry.data());
    ops.rms_norm(entry.data(), w.norm.data(), 1, dim, float(c.rms_norm_eps), entry.data());
    rope.apply(entry.data(), dim, ratio * j);
    entries.append(entry.data());
    st.n_entries = j + 1;
    if (w.overlap) {
      st.prev_kv = st.cur_kv;
      st.prev_score = st.cur_score;
      st.has_prev = true;
    }
  }
}

std::vector<int32_t> top_k_entries(const float* scores, int64_t n, int64_t k) {
  k = std::min(k, n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;  // exact ties: lower index first
  });
  order.resize(size_t(k));
  std::sort(order.begin(), order.end());
  return order;
}

void attention_forward(backend::Ops& ops, const io::Config& c, const AttentionWeights& w, const Rope& rope,
                       std::span<const SeqSlice> seqs, const float* x, int64_t n_rows, float* out) {
  const int64_t H = c.n_head, hd = c.head_dim;
  const float eps = float(c.rms_norm_eps);
  std::vector<int64_t> pos(static_cast<size_t>(n_rows));  // [n_rows] absolute position of each row
  for (const SeqSlice& s : seqs)
    for (int64_t t = 0; t < s.n_tok; ++t) pos[size_t(s.row0 + t)] = s.start_pos + t;

  // Every product of x forms one group: the q_lora latent (shared with the indexer), the
  // single shared key/value latent, the compressors' value/gate projections and the
  // indexer's head weights.
  const int64_t IH = c.index_n_head, ID = c.index_head_dim;
  float* q_lat = scratch<ScratchId::kAttnQLatent>(n_rows * c.q_lora_rank);  // [n_rows, q_lora_rank]
  float* kv = scratch<ScratchId::kAttnKv>(n_rows * hd);                        // [n_rows, head_dim]
  float* iq = nullptr;  // [n_rows, IH, ID] indexer queries
  float* iw = nullptr;  // [n_rows, IH] indexer head weights
  Projection comp, icomp;
  std::vector<backend::Ops::MatmulJob> jobs;
  jobs.push_back({&w.wq_a, x, n_rows, q_lat});
  jobs.push_back({&w.wkv, x, n_rows, kv});
  if (w.ratio != 0) queue_compressor<ScratchId::kCompKv, ScratchId::kCompScore>(w.compressor, x, n_rows, comp, jobs);
  if (w.ratio == 4) {
    queue_compressor<ScratchId::kIndexCompKv, ScratchId::kIndexCompScore>(w.index_compressor, x, n_rows, icomp, jobs);
    iw = scratch<ScratchId::kIndexWeights>(n_rows * IH);
    jobs.push_back({&w.index_weights_proj, x, n_rows, iw});
  }
  ops.matmul_many(jobs.data(), int64_t(jobs.size()));

  // Queries: RMS-normed latent, then the per-head (and indexer) queries as one group, then
  // a per-head unweighted RMS norm.
  ops.rms_norm(q_lat, w.q_norm.data(), n_rows, c.q_lora_rank, eps, q_lat);
  float* q = scratch<ScratchId::kAttnQ>(n_rows * H * hd);  // [n_rows, n_head, head_dim]
  jobs.clear();
  jobs.push_back({&w.wq_b, q_lat, n_rows, q});
  if (w.ratio == 4) {
    iq = scratch<ScratchId::kIndexQ>(n_rows * IH * ID);
    jobs.push_back({&w.index_wq_b, q_lat, n_rows, iq});
  }
  ops.matmul_many(jobs.data(), int64_t(jobs.size()));
  ops.rms_norm(q, nullptr, n_rows * H, hd, eps, q);
  rope_rows(ops, rope, q, pos, H, hd, false);

  // The single shared key/value latent of each token.
  ops.rms_norm(kv, w.kv_norm.data(), n_rows, hd, eps, kv);
  rope_rows(ops, rope, kv, pos, 1, hd, false);

  // Compressed entries completed by a sequence's tokens become visible to its later queries.
  if (w.ratio != 0) {
    for (const SeqSlice& s : seqs)
      compress_tokens(ops, c, w.compressor, rope, s.state->compressor, comp.kv + s.row0 * comp.width,
                      comp.score + s.row0 * comp.width, s.n_tok, s.start_pos, s.state->comp_kv);
  }

  // Lightning indexer (CSA): its own compressed keys, queries from the q latent, head weights from x.
  if (w.ratio == 4) {
    for (const SeqSlice& s : seqs)
      compress_tokens(ops, c, w.index_compressor, rope, s.state->index_compressor, icomp.kv + s.row0 * icomp.width,
                      icomp.score + s.row0 * icomp.width, s.n_tok, s.start_pos, s.state->index_keys);
    rope_rows(ops, rope, iq, pos, IH, ID, false);
    const double head_scale = 1.0 / std::sqrt(double(ID) * double(IH));
    for (int64_t i = 0; i < n_rows * IH; ++i) iw[i] = float(double(iw[i]) * head_scale);
  }

  float* o = scratch<ScratchId::kAttnOut>(n_rows * H * hd);  // [n_rows, n_head, head_dim]
  std::vector<const float*> keys;
  std::vector<float> scores;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  for (const SeqSlice& s : seqs) {
    kv::LayerState& st = *s.state;
    const float* seq_kv = kv + s.row0 * hd;
    if (s.trace) s.trace->index_topk.assign(size_t(s.n_tok), {});
    for (int64_t t = 0; t < s.n_tok; ++t) {
      const int64_t row = s.row0 + t, p = s.start_pos + t;
      keys.clear();
      window_keys(st, seq_kv, s.start_pos, p, keys);
      if (w.ratio != 0) {
        const int64_t n_visible = (p + 1) / w.ratio;  // complete entries only
        if (w.ratio == 4) {
          scores.resize(size_t(n_visible));
          st.index_keys.for_each_run(0, n_visible, [&](int64_t first, int64_t n, const float* keys_run) {
            ops.index_scores(iq + row * IH * ID, iw + row * IH, IH, keys_run, n, ID, scores.data() + first);
          });
          std::vector<int32_t> chosen = top_k_entries(scores.data(), n_visible, c.index_topk);
          for (int32_t j : chosen) keys.push_back(st.comp_kv.row(j));
          if (s.trace) s.trace->index_topk[size_t(t)] = std::move(chosen);
        } else {
          for (int64_t j = 0; j < n_visible; ++j) keys.push_back(st.comp_kv.row(j));
        }
      }
      ops.attention(q + row * H * hd, keys.data(), int64_t(keys.size()), w.sink.data(), H, hd, scale,
                    o + row * H * hd);
    }
    update_ring(st, seq_kv, s.n_tok, s.start_pos);
  }

  // Values carry their keys' rotation; rotating back by the query position leaves a
  // relative-position encoding in the output.
  rope_rows(ops, rope, o, pos, H, hd, true);
  grouped_output(ops, c, w, o, n_rows, out);
}

}  // namespace dsv4::model
