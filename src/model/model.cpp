#include "model/model.h"

#include <algorithm>

#include "core/error.h"
#include "model/hyper_connection.h"
#include "model/scratch.h"

namespace dsv4::model {

Model::Model(std::unique_ptr<ModelWeights> weights, std::unique_ptr<backend::Ops> ops)
    : w_(std::move(weights)),
      ops_(std::move(ops)),
      rope_window_(w_->config, w_->config.rope_theta, false),
      rope_compressed_(w_->config, w_->config.compress_rope_theta, true) {}

std::unique_ptr<Model> Model::load(const std::string& dir, const std::string& backend, int threads,
                                   io::Residency residency, backend::Numerics numerics) {
  auto ops = backend::make_ops(backend, numerics, threads);
  return std::make_unique<Model>(load_weights(dir, residency), std::move(ops));
}

kv::SequenceState Model::new_state() const {
  const io::Config& c = config();
  kv::SequenceState st;
  st.layers.resize(size_t(c.n_layer + c.n_mtp));
  for (int64_t l = 0; l < c.n_layer + c.n_mtp; ++l) init_layer_state(c, c.compress_ratio(l), st.layers[size_t(l)]);
  return st;
}

void Model::block_forward(const BlockWeights& b, std::span<const BlockSeq> seqs, float* streams,
                          const int32_t* tokens, int64_t n_rows) {
  const io::Config& c = config();
  const int64_t d = c.n_embd, width = c.hc_mult * d;
  const float eps = float(c.rms_norm_eps);
  float* x = scratch<ScratchId::kBlockX>(n_rows * d);                 // [n_rows, n_embd]
  float* sub = scratch<ScratchId::kBlockSub>(n_rows * d);             // [n_rows, n_embd]
  HcMix mix;

  std::vector<SeqSlice> slices;
  for (const BlockSeq& s : seqs)
    slices.push_back({&s.state->layers[size_t(b.layer)], s.row0, s.n_tok, s.start_pos,
                      s.trace ? &s.trace->attention[size_t(b.layer)] : nullptr});
  hc_pre(*ops_, c, b.hc_attn, streams, n_rows, x, mix);
  ops_->rms_norm(x, b.attn_norm.data(), n_rows, d, eps, x);
  attention_forward(*ops_, c, b.attn, rope_for(b.attn.ratio), slices, x, n_rows, sub);
  hc_post(*ops_, c, sub, streams, mix, n_rows, streams);  // in place: the streams are the residual

  hc_pre(*ops_, c, b.hc_ffn, streams, n_rows, x, mix);
  ops_->rms_norm(x, b.ffn_norm.data(), n_rows, d, eps, x);
  bool want_routes = false;
  for (const BlockSeq& s : seqs) want_routes |= s.trace != nullptr;
  std::vector<Route> routes;
  moe_forward(*ops_, c, b.ffn, x, tokens, n_rows, sub, want_routes ? &routes : nullptr);
  hc_post(*ops_, c, sub, streams, mix, n_rows, streams);

  for (const BlockSeq& s : seqs) {
    if (!s.trace) continue;
    s.trace->hidden[size_t(b.layer)].assign(streams + s.row0 * width, streams + (s.row0 + s.n_tok) * width);
    s.trace->routes[size_t(b.layer)].assign(routes.begin() + s.row0, routes.begin() + s.row0 + s.n_tok);
  }
}

std::vector<float> Model::logits(const HcHeadWeights& hc_head_w, const std::vector<float>& norm, const float* streams,
                                 int64_t n, LogitRows rows) {
  const io::Config& c = config();
  if (rows == LogitRows::kNone || n == 0) return {};
  const int64_t first = rows == LogitRows::kLast ? n - 1 : 0, n_rows = n - first;
  const int64_t width = c.hc_mult * c.n_embd;
  std::vector<float> y(size_t(n_rows * c.n_embd));  // [n_rows, n_embd]
  hc_head(*ops_, c, hc_head_w, streams + first * width, n_rows, y.data());
  ops_->rms_norm(y.data(), norm.data(), n_rows, c.n_embd, float(c.rms_norm_eps), y.data());
  std::vector<float> out(size_t(n_rows * c.vocab_size));  // [n_rows, vocab_size]
  ops_->matmul(w_->head, y.data(), n_rows, out.data());
  return out;
}

static void check_tokens(const io::Config& c, std::span<const int32_t> tokens) {
  for (int32_t t : tokens)
    check(t >= 0 && t < c.vocab_size, "token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                          std::to_string(c.vocab_size) + ")");
}

static void prepare_trace(ForwardTrace* trace, size_t n_blocks) {
  if (!trace) return;
  trace->hidden.resize(n_blocks);
  trace->routes.resize(n_blocks);
  trace->attention.resize(n_blocks);
}

std::vector<float> Model::forward(kv::SequenceState& st, std::span<const int32_t> tokens, LogitRows rows,
                                  ForwardTrace* trace, std::vector<float>* final_streams) {
  const SeqInput one{&st, tokens, rows, trace, final_streams};
  return std::move(forward_batch(std::span(&one, 1))[0]);
}

std::vector<std::vector<float>> Model::forward_batch(std::span<const SeqInput> seqs) {
  const io::Config& c = config();
  const int64_t d = c.n_embd, hc = c.hc_mult, width = hc * d;
  std::vector<BlockSeq> blocks;
  std::vector<int32_t> tokens;  // [n_rows] all sequences' tokens, back to back
  for (const SeqInput& s : seqs) {
    check(s.state != nullptr, "forward_batch: sequence without state");
    for (const BlockSeq& other : blocks)
      check(other.state != s.state, "forward_batch: the same sequence state appears twice in one batch");
    check_tokens(c, s.tokens);
    prepare_trace(s.trace, size_t(c.n_layer + c.n_mtp));
    blocks.push_back({s.state, int64_t(tokens.size()), int64_t(s.tokens.size()), s.state->n_past, s.trace});
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
  }
  const int64_t n_rows = int64_t(tokens.size());
  // The embedding is copied into every one of the hc residual streams.
  float* streams = scratch<ScratchId::kStreams>(n_rows * width);  // [n_rows, hc, n_embd]
  for (int64_t t = 0; t < n_rows; ++t) {
    w_->embed.dequant_row(tokens[size_t(t)], streams + t * width);
    for (int64_t j = 1; j < hc; ++j) std::copy_n(streams + t * width, d, streams + t * width + j * d);
  }
  for (int64_t l = 0; l < c.n_layer; ++l) block_forward(w_->layers[size_t(l)], blocks, streams, tokens.data(), n_rows);

  // Gather every sequence's logit rows so the LM head streams its weights once per batch.
  std::vector<float> head_in;  // [n_logit_rows, hc, n_embd]
  std::vector<int64_t> n_logit_rows(seqs.size(), 0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const BlockSeq& b = blocks[i];
    b.state->n_past += b.n_tok;
    const float* seq_streams = streams + b.row0 * width;
    if (seqs[i].final_streams) seqs[i].final_streams->assign(seq_streams, seq_streams + b.n_tok * width);
    if (b.n_tok == 0 || seqs[i].rows == LogitRows::kNone) continue;
    const int64_t first = seqs[i].rows == LogitRows::kLast ? b.n_tok - 1 : 0;
    n_logit_rows[i] = b.n_tok - first;
    head_in.insert(head_in.end(), seq_streams + first * width, seq_streams + b.n_tok * width);
  }
  const int64_t n_head_rows = int64_t(head_in.size()) / width;
  const std::vector<float> all_logits = logits(w_->hc_head, w_->norm, head_in.data(), n_head_rows, LogitRows::kAll);
  std::vector<std::vector<float>> out(seqs.size());
  int64_t row = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto begin = all_logits.begin() + row * c.vocab_size;
    out[i].assign(begin, begin + n_logit_rows[i] * c.vocab_size);
    row += n_logit_rows[i];
  }
  return out;
}

std::vector<float> Model::forward_mtp(kv::SequenceState& st, const float* main_streams,
                                      std::span<const int32_t> next_tokens, LogitRows rows, ForwardTrace* trace) {
  const io::Config& c = config();
  check(c.n_mtp > 0 && !w_->mtp.empty(), "this checkpoint has no MTP block");
  const MtpWeights& m = w_->mtp[0];
  const int64_t n = int64_t(next_tokens.size()), d = c.n_embd, hc = c.hc_mult;
  const float eps = float(c.rms_norm_eps);
  check_tokens(c, next_tokens);
  prepare_trace(trace, size_t(c.n_layer + c.n_mtp));

  // e = e_proj(enorm(embed(next token))), shared by all streams.
  std::vector<float> e(size_t(n * d)), e_proj(size_t(n * d));  // [n, n_embd]
  for (int64_t t = 0; t < n; ++t) w_->embed.dequant_row(next_tokens[size_t(t)], e.data() + t * d);
  ops_->rms_norm(e.data(), m.enorm.data(), n, d, eps, e.data());
  ops_->matmul(m.e_proj, e.data(), n, e_proj.data());
  // Each stream: h_proj(hnorm(stream)) + e.
  std::vector<float> h(size_t(n * hc * d)), streams(size_t(n * hc * d));  // [n, hc, n_embd]
  ops_->rms_norm(main_streams, m.hnorm.data(), n * hc, d, eps, h.data());
  ops_->matmul(m.h_proj, h.data(), n * hc, streams.data());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < hc; ++j)
      for (int64_t i = 0; i < d; ++i) streams[size_t((t * hc + j) * d + i)] += e_proj[size_t(t * d + i)];

  const BlockSeq one{&st, 0, n, st.n_past_mtp, trace};
  block_forward(m.block, std::span(&one, 1), streams.data(), next_tokens.data(), n);
  st.n_past_mtp += n;
  return logits(m.hc_head, m.norm, streams.data(), n, rows);
}

}  // namespace dsv4::model
