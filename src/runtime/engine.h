// The runtime's single-sequence generation loop: prefill a prompt, then decode token by
// token with a sampler, with timings. Apps call this layer; they never touch tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "sampling/sampler.h"

namespace dsv4::runtime {

struct GenerateOptions {
  int64_t max_tokens = 16;
  sampling::SamplerOptions sampler;
  bool stop_at_eos = true;
  int64_t prefill_chunk = 512;  // tokens per prefill chunk (bounds activation memory)
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOS included if it was produced)
  int64_t n_prompt = 0;
  bool last_token_pending = false;  // the last generated token has not been fed into the state
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tok_per_s() const { return prefill_seconds > 0 ? double(n_prompt) / prefill_seconds : 0; }
  double decode_tok_per_s() const {
    // The first generated token comes from the prefill; decode steps produce the rest.
    const double steps = tokens.empty() ? 0 : double(tokens.size() - 1);
    return decode_seconds > 0 ? steps / decode_seconds : 0;
  }
};

class Engine {
 public:
  explicit Engine(std::unique_ptr<model::Model> model) : model_(std::move(model)) {}
  // See model::Model::load.
  static std::unique_ptr<Engine> load(const std::string& dir, const std::string& backend = "cpu", int threads = 0,
                                      io::Residency residency = io::Residency::kAuto,
                                      backend::Numerics numerics = backend::Numerics::kExact);

  model::Model& model() { return *model_; }
  const io::Config& config() const { return model_->config(); }

  // Prefills `prompt` (chunked) into `st` and returns the logits of its last token.
  std::vector<float> prefill(kv::SequenceState& st, const std::vector<int32_t>& prompt, int64_t chunk);

  // on_token (optional) is called for each generated id; returning false stops generation.
  GenerateResult generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                          const std::function<bool(int32_t)>& on_token = {});

  // Continues an existing sequence: prefills `prompt` (the new tokens only) into `st`, then
  // generates. Every generated token except a final one that was not fed back (see
  // GenerateResult::last_token_pending) is in `st` afterwards; used by multi-turn chat.
  GenerateResult generate(kv::SequenceState& st, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                          const std::function<bool(int32_t)>& on_token = {});

 private:
  std::unique_ptr<model::Model> model_;
};

}  // namespace dsv4::runtime

namespace dsv4::runtime {

// Everything `dsv4 logits` reports for a prompt and an optional teacher-forced continuation.
struct LogitsResult {
  int64_t vocab = 0;
  std::vector<float> logits;      // [len(prompt) + len(continuation), vocab]
  std::vector<float> mtp_logits;  // [len(prompt), vocab] if requested
  model::ForwardTrace trace;      // per-block streams etc. of the prompt prefill, if requested
};

// Prefill of the prompt (rows for every position), then one decode step per continuation
// token. With want_mtp, the MTP block runs as a prefill over the main model's final streams
// with inputs prompt[1:] + argmax(last prompt row).
LogitsResult compute_logits(model::Model& m, const std::vector<int32_t>& prompt,
                            const std::vector<int32_t>& continuation, bool want_mtp, bool want_trace);

}  // namespace dsv4::runtime
