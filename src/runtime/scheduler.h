// The serving runtime: one worker thread owns the model and every sequence's KV state;
// other threads (HTTP handlers) submit requests and receive tokens through callbacks.
// Continuous batching: each step runs the decode tokens of all active sequences, plus a
// bounded chunk of pending prompt prefill, as ONE Model::forward_batch call, so long
// prompts never stall other sessions. A prefix cache keeps snapshots of sequence state
// keyed by token prefix so a resent conversation only prefills its new suffix.
//
// Token-level only: text (tokenizer, chat rendering, stop strings, DSML parsing) lives in
// the server layer above.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "sampling/sampler.h"

namespace dsv4::runtime {

struct SchedulerOptions {
  int64_t max_active = 4;             // sequences decoding at once (--parallel)
  int64_t max_queue = 64;             // waiting requests beyond which submit() is refused
  int64_t max_context = 4096;         // prompt + generated tokens per sequence (--ctx)
  int64_t prefill_chunk = 256;        // prompt tokens per sequence per step
  int64_t max_batch_tokens = 512;     // total rows per forward_batch step
  int64_t prefix_cache_bytes = 256ll << 20;  // LRU budget for cached states (0 = off)
  int64_t prefix_cache_min_tokens = 16;      // do not cache shorter prefixes
};

enum class FinishReason { kLength, kStop, kEos, kCancelled, kError };
const char* finish_reason_name(FinishReason r);

struct RequestParams {
  std::vector<int32_t> prompt;        // full rendered prompt (never empty)
  int64_t max_tokens = 256;
  sampling::SamplerOptions sampler;
  bool stop_at_eos = true;
  std::vector<int32_t> stop_tokens;   // extra ids that end generation (not emitted)
  int64_t top_logprobs = 0;           // 0 = no logprobs; else this many alternatives per token
  std::string id;                     // for logs
};

struct TokenEvent {
  int32_t token = 0;
  float logprob = 0;                  // log-softmax of the sampled token (temperature 1)
  std::vector<std::pair<int32_t, float>> top;  // top_logprobs alternatives, best first
};

struct RequestStats {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;          // prompt tokens served from the prefix cache
  int64_t completion_tokens = 0;
  double queue_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
  FinishReason finish = FinishReason::kLength;
  std::string error;                  // set when finish == kError
};

struct SchedulerMetrics {
  int64_t requests_total = 0, requests_active = 0, requests_queued = 0;
  int64_t prompt_tokens_total = 0, cached_tokens_total = 0, completion_tokens_total = 0;
  int64_t cache_hits = 0, cache_misses = 0, cache_bytes = 0, cache_entries = 0;
  double decode_tokens_per_second = 0;  // recent aggregate over all sequences
};

// Callbacks run on the worker thread and must not block. on_token returning false cancels.
struct RequestCallbacks {
  std::function<bool(const TokenEvent&)> on_token;
  std::function<void(const RequestStats&)> on_done;  // always called exactly once
};

class Scheduler {
 public:
  Scheduler(model::Model& model, const SchedulerOptions& opt);
  ~Scheduler();  // stops the worker; pending requests finish with kCancelled

  // Enqueues a request; returns its id. Throws dsv4::Error if the queue is full, the prompt
  // is empty or longer than max_context, or a token id is outside the vocabulary.
  uint64_t submit(RequestParams params, RequestCallbacks callbacks);
  // Cancels a queued or running request (frees its sequence at the next step). Unknown ids
  // are ignored.
  void cancel(uint64_t id);
  SchedulerMetrics metrics() const;
  const SchedulerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4::runtime
