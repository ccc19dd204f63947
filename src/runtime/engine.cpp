#include "runtime/engine.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace dsv4::runtime {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::unique_ptr<Engine> Engine::load(const std::string& dir, const std::string& backend, int threads,
                                     io::Residency residency, backend::Numerics numerics) {
  return std::make_unique<Engine>(model::Model::load(dir, backend, threads, residency, numerics));
}

std::vector<float> Engine::prefill(kv::SequenceState& st, const std::vector<int32_t>& prompt, int64_t chunk) {
  check(!prompt.empty(), "the prompt is empty");
  check(chunk > 0, "prefill chunk must be positive");
  std::vector<float> logits;
  for (size_t start = 0; start < prompt.size(); start += size_t(chunk)) {
    const size_t n = std::min(prompt.size() - start, size_t(chunk));
    const bool last = start + n == prompt.size();
    logits = model_->forward(st, std::span(prompt.data() + start, n),
                             last ? model::LogitRows::kLast : model::LogitRows::kNone);
  }
  return logits;
}

GenerateResult Engine::generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                                const std::function<bool(int32_t)>& on_token) {
  kv::SequenceState st = model_->new_state();
  return generate(st, prompt, opt, on_token);
}

GenerateResult Engine::generate(kv::SequenceState& st, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                                const std::function<bool(int32_t)>& on_token) {
  check(opt.max_tokens >= 0, "max tokens must be >= 0");
  GenerateResult r;
  r.n_prompt = int64_t(prompt.size());
  sampling::Sampler sampler(opt.sampler);

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(st, prompt, opt.prefill_chunk);
  r.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opt.max_tokens; ++i) {
    const int32_t tok = sampler.sample(logits);
    r.tokens.push_back(tok);
    r.last_token_pending = true;
    if (on_token && !on_token(tok)) break;
    if (opt.stop_at_eos && tok == config().eos_token_id) break;
    if (i + 1 == opt.max_tokens) break;
    logits = model_->forward(st, std::span(&tok, 1), model::LogitRows::kLast);
    r.last_token_pending = false;
  }
  r.decode_seconds = seconds_since(t0);
  return r;
}

}  // namespace dsv4::runtime

namespace dsv4::runtime {

LogitsResult compute_logits(model::Model& m, const std::vector<int32_t>& prompt,
                            const std::vector<int32_t>& continuation, bool want_mtp, bool want_trace) {
  check(!prompt.empty(), "the prompt is empty");
  LogitsResult r;
  r.vocab = m.config().vocab_size;
  kv::SequenceState st = m.new_state();
  std::vector<float> final_streams;
  r.logits = m.forward(st, prompt, model::LogitRows::kAll, want_trace ? &r.trace : nullptr,
                       want_mtp ? &final_streams : nullptr);
  if (want_mtp) {
    std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
    next.push_back(sampling::argmax(std::span(r.logits).subspan(r.logits.size() - size_t(r.vocab))));
    r.mtp_logits = m.forward_mtp(st, final_streams.data(), next, model::LogitRows::kAll);
  }
  for (int32_t tok : continuation) {
    const std::vector<float> row = m.forward(st, std::span(&tok, 1), model::LogitRows::kLast);
    r.logits.insert(r.logits.end(), row.begin(), row.end());
  }
  return r;
}

}  // namespace dsv4::runtime
