#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>

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

// Rotates the last rope_dim channels of each of n_vec vectors of width dim at the token's position.
void rope_rows(const Rope& rope, float* v, int64_t n_tok, int64_t n_vec_per_tok, int64_t dim, int64_t start_pos,
               bool inverse) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t h = 0; h < n_vec_per_tok; ++h) rope.apply(v + (t * n_vec_per_tok + h) * dim, dim, start_pos + t, inverse);
}

// Grouped low-rank output: heads are split into o_groups groups; group g's concatenated
// head outputs go through rows [g*o_lora_rank, (g+1)*o_lora_rank) of wo_a; then wo_b.
//   o: [n_tok, n_head*head_dim] -> out: [n_tok, n_embd]
void grouped_output(backend::Ops& ops, const io::Config& c, const AttentionWeights& w, const float* o,
                    int64_t n_tok, float* out) {
  const int64_t G = c.o_groups, group_in = c.n_head * c.head_dim / G, rank = c.o_lora_rank;
  std::vector<float> og(size_t(n_tok * group_in)), zg(size_t(n_tok * rank)), z(size_t(n_tok * G * rank));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < n_tok; ++t)
      std::copy_n(o + t * G * group_in + g * group_in, group_in, og.data() + t * group_in);
    ops.matmul(weight_rows(w.wo_a, g * rank, rank), og.data(), n_tok, zg.data());
    for (int64_t t = 0; t < n_tok; ++t) std::copy_n(zg.data() + t * rank, rank, z.data() + t * G * rank + g * rank);
  }
  ops.matmul(w.wo_b, z.data(), n_tok, out);
}

}  // namespace

void init_layer_state(const io::Config& c, int64_t ratio, kv::LayerState& st) {
  st.window = c.sliding_window;
  st.head_dim = c.head_dim;
  st.ring.assign(size_t(c.sliding_window * c.head_dim), 0.0f);
  st.comp_kv.clear();
  st.index_keys.clear();
  st.compressor = {};
  st.index_compressor = {};
  if (ratio != 0) st.compressor.init(ratio, (ratio == 4 ? 2 : 1) * c.head_dim, ratio == 4);
  if (ratio == 4) st.index_compressor.init(4, 2 * c.index_head_dim, true);
}

void compress_tokens(backend::Ops& ops, const io::Config& c, const CompressorWeights& w, const Rope& rope,
                     kv::CompressorState& st, const float* x, int64_t n_tok, int64_t start_pos,
                     std::vector<float>& entries) {
  const int64_t width = st.row_width, ratio = w.ratio, dim = w.dim;
  std::vector<float> kv(size_t(n_tok * width)), score(size_t(n_tok * width));  // [n_tok, coff*dim]
  ops.matmul(w.wkv, x, n_tok, kv.data());
  ops.matmul(w.wgate, x, n_tok, score.data());
  std::vector<float> entry(static_cast<size_t>(dim));
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = start_pos + t, slot = pos % ratio;
    for (int64_t i = 0; i < width; ++i) {
      st.cur_kv[size_t(slot * width + i)] = kv[size_t(t * width + i)];
      st.cur_score[size_t(slot * width + i)] = score[size_t(t * width + i)] + w.ape[size_t(slot * width + i)];
    }
    if (slot != ratio - 1) continue;
    // Block complete: entry j = pos / ratio, rotated at the position of its block's first token.
    const int64_t j = pos / ratio;
    pool_entry(st, dim, w.overlap, entry.data());
    ops.rms_norm(entry.data(), w.norm.data(), 1, dim, float(c.rms_norm_eps), entry.data());
    rope.apply(entry.data(), dim, ratio * j);
    entries.insert(entries.end(), entry.begin(), entry.end());
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
                       kv::LayerState& st, const float* x, int64_t n_tok, int64_t start_pos, float* out,
                       AttentionTrace* trace) {
  const int64_t H = c.n_head, hd = c.head_dim;
  const float eps = float(c.rms_norm_eps);

  // Queries: low-rank q_lora latent (shared with the indexer), then per-head unweighted RMS norm.
  std::vector<float> q_lat(size_t(n_tok * c.q_lora_rank));  // [n_tok, q_lora_rank]
  ops.matmul(w.wq_a, x, n_tok, q_lat.data());
  ops.rms_norm(q_lat.data(), w.q_norm.data(), n_tok, c.q_lora_rank, eps, q_lat.data());
  std::vector<float> q(size_t(n_tok * H * hd));  // [n_tok, n_head, head_dim]
  ops.matmul(w.wq_b, q_lat.data(), n_tok, q.data());
  ops.rms_norm(q.data(), nullptr, n_tok * H, hd, eps, q.data());
  rope_rows(rope, q.data(), n_tok, H, hd, start_pos, false);

  // The single shared key/value latent of each token.
  std::vector<float> kv(size_t(n_tok * hd));  // [n_tok, head_dim]
  ops.matmul(w.wkv, x, n_tok, kv.data());
  ops.rms_norm(kv.data(), w.kv_norm.data(), n_tok, hd, eps, kv.data());
  rope_rows(rope, kv.data(), n_tok, 1, hd, start_pos, false);

  // Compressed entries completed by this chunk become visible to the queries that follow them.
  if (w.ratio != 0) compress_tokens(ops, c, w.compressor, rope, st.compressor, x, n_tok, start_pos, st.comp_kv);

  // Lightning indexer (CSA): its own compressed keys, queries from the q latent, head weights from x.
  const int64_t IH = c.index_n_head, ID = c.index_head_dim;
  std::vector<float> iq, iw;  // [n_tok, IH, ID], [n_tok, IH]
  if (w.ratio == 4) {
    compress_tokens(ops, c, w.index_compressor, rope, st.index_compressor, x, n_tok, start_pos, st.index_keys);
    iq.resize(size_t(n_tok * IH * ID));
    ops.matmul(w.index_wq_b, q_lat.data(), n_tok, iq.data());
    rope_rows(rope, iq.data(), n_tok, IH, ID, start_pos, false);
    iw.resize(size_t(n_tok * IH));
    ops.matmul(w.index_weights_proj, x, n_tok, iw.data());
    const double head_scale = 1.0 / std::sqrt(double(ID) * double(IH));
    for (auto& v : iw) v = float(double(v) * head_scale);
  }

  std::vector<float> o(size_t(n_tok * H * hd));  // [n_tok, n_head, head_dim]
  std::vector<const float*> keys;
  std::vector<float> scores;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  if (trace) trace->index_topk.resize(size_t(n_tok));
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = start_pos + t;
    keys.clear();
    window_keys(st, kv.data(), start_pos, pos, keys);
    if (w.ratio != 0) {
      const int64_t n_visible = (pos + 1) / w.ratio;  // complete entries only
      if (w.ratio == 4) {
        scores.resize(size_t(n_visible));
        ops.index_scores(iq.data() + t * IH * ID, iw.data() + t * IH, IH, st.index_keys.data(), n_visible, ID,
                         scores.data());
        std::vector<int32_t> chosen = top_k_entries(scores.data(), n_visible, c.index_topk);
        for (int32_t j : chosen) keys.push_back(st.comp_kv.data() + int64_t(j) * hd);
        if (trace) trace->index_topk[size_t(t)] = std::move(chosen);
      } else {
        for (int64_t j = 0; j < n_visible; ++j) keys.push_back(st.comp_kv.data() + j * hd);
      }
    }
    ops.attention(q.data() + t * H * hd, keys.data(), int64_t(keys.size()), w.sink.data(), H, hd, scale,
                  o.data() + t * H * hd);
  }
  update_ring(st, kv.data(), n_tok, start_pos);

  // Values carry their keys' rotation; rotating back by the query position leaves a
  // relative-position encoding in the output.
  rope_rows(rope, o.data(), n_tok, H, hd, start_pos, true);
  grouped_output(ops, c, w, o.data(), n_tok, out);
}

}  // namespace dsv4::model
