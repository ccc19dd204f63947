// The DeepSeek-V4 model: embedding, hyper-connected blocks (attention + MoE), final
// hyper-connection head, norm and LM head, and the MTP block(s). Incremental: every call
// processes a chunk of tokens against a SequenceState and advances it, so a prefill is one
// big chunk and a decode step is a chunk of one, through the same code.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "kv/kv_state.h"
#include "model/attention.h"
#include "model/moe.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsv4::model {

// Which rows of a chunk get logits.
enum class LogitRows { kNone, kLast, kAll };

// Optional observation of a forward pass (debugging, layer dumps, golden tests).
struct ForwardTrace {
  std::vector<std::vector<float>> hidden;          // per block: streams out [n_tok, hc, n_embd]
  std::vector<std::vector<Route>> routes;          // per block: routing per token
  std::vector<AttentionTrace> attention;           // per block: indexer choices per query
};

// One sequence's part of a batched forward call.
struct SeqInput {
  kv::SequenceState* state = nullptr;
  std::span<const int32_t> tokens;       // fed at positions state->n_past ..
  LogitRows rows = LogitRows::kLast;
  ForwardTrace* trace = nullptr;         // optional
  std::vector<float>* final_streams = nullptr;  // optional: last block's streams [n, hc, n_embd]
};

class Model {
 public:
  Model(std::unique_ptr<ModelWeights> weights, std::unique_ptr<backend::Ops> ops);
  // Loads a checkpoint directory with the named backend ("ref" or "cpu"), kernel threads
  // (threads <= 0: physical cores) and weight-product numerics (backend/ops.h; fast:
  // bf16 activations, see docs/numerics.md).
  static std::unique_ptr<Model> load(const std::string& dir, const std::string& backend = "cpu", int threads = 0,
                                     io::Residency residency = io::Residency::kAuto,
                                     backend::Numerics numerics = backend::Numerics::kExact);

  const io::Config& config() const { return w_->config; }
  const ModelWeights& weights() const { return *w_; }
  backend::Ops& ops() { return *ops_; }

  // An empty state for a new sequence (all main layers and MTP blocks).
  kv::SequenceState new_state() const;

  // Runs tokens at positions st.n_past .. st.n_past+n-1 through the main model.
  // Returns logits [rows, vocab_size] for the requested rows. final_streams, if given,
  // receives the last block's output streams [n, hc, n_embd] (the MTP block's input).
  std::vector<float> forward(kv::SequenceState& st, std::span<const int32_t> tokens, LogitRows rows,
                             ForwardTrace* trace = nullptr, std::vector<float>* final_streams = nullptr);

  // Runs several sequences (each with its own state and position) as one batch: every
  // projection and expert runs once over all their tokens; attention runs per sequence.
  // Returns each sequence's logits, as forward() would. Results do not depend on batching.
  std::vector<std::vector<float>> forward_batch(std::span<const SeqInput> seqs);

  // Runs MTP block 0 at positions st.n_past_mtp ..: streams [n, hc, n_embd] are the main
  // model's final streams at those positions, next_tokens [n] the token that follows each.
  // Returns logits [rows, vocab_size] predicting the token two positions ahead.
  std::vector<float> forward_mtp(kv::SequenceState& st, const float* streams, std::span<const int32_t> next_tokens,
                                 LogitRows rows, ForwardTrace* trace = nullptr);

 private:
  // A sequence's rows within a batch, for one block.
  struct BlockSeq {
    kv::SequenceState* state;
    int64_t row0, n_tok, start_pos;
    ForwardTrace* trace;
  };
  // One block: hc_pre -> attn_norm -> attention -> hc_post, hc_pre -> ffn_norm -> MoE -> hc_post.
  //   streams: [n_rows, hc, n_embd] for all sequences, updated in place; tokens: [n_rows].
  void block_forward(const BlockWeights& b, std::span<const BlockSeq> seqs, float* streams, const int32_t* tokens,
                     int64_t n_rows);
  // hc head -> norm -> LM head for the requested rows. streams: [n, hc, n_embd].
  std::vector<float> logits(const HcHeadWeights& hc_head, const std::vector<float>& norm, const float* streams,
                            int64_t n, LogitRows rows);
  const Rope& rope_for(int64_t ratio) const { return ratio == 0 ? rope_window_ : rope_compressed_; }

  std::unique_ptr<ModelWeights> w_;
  std::unique_ptr<backend::Ops> ops_;
  Rope rope_window_;      // rope_theta, no YaRN (sliding-window-only layers)
  Rope rope_compressed_;  // compress_rope_theta with YaRN (compressed layers and indexers)
};

}  // namespace dsv4::model
