// The serving runtime's worker loop: admission (with prefix-cache lookup), one batched
// forward step over every active sequence (decode tokens + bounded prefill chunks),
// per-request sampling and callbacks, finishing, and metrics. See docs/runtime.md.
#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_set>

#include "core/error.h"
#include "runtime/prefix_cache.h"

namespace dsv4::runtime {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One request from submit() to on_done.
struct Seq {
  Seq(uint64_t id_, RequestParams p_, RequestCallbacks cb_)
      : id(id_), p(std::move(p_)), cb(std::move(cb_)), sampler(p.sampler), prompt_len(int64_t(p.prompt.size())) {}
  uint64_t id;
  RequestParams p;
  RequestCallbacks cb;
  sampling::Sampler sampler;
  int64_t prompt_len;
  std::vector<int32_t> toks;   // prompt, then each generated token; toks[state.n_past..] is unfed
  kv::SequenceState state;
  RequestStats stats;
  Clock::time_point t_submit, t_admit, t_first;
  int64_t branch_at = 0;       // > 0: snapshot the state when n_past reaches it (see admit)
  bool first_done = false;     // the prompt is fully prefilled and the first token sampled
  bool cancelled = false;
};

// Recent decode throughput: (end time, decode tokens, step seconds) per step.
struct RateSample {
  Clock::time_point t;
  int64_t tokens;
  double seconds;
};
constexpr double kRateWindowSeconds = 10.0;

}  // namespace

struct Scheduler::Impl {
  Impl(model::Model& m, const SchedulerOptions& o) : model(m), opt(o), cache(o.prefix_cache_bytes, o.prefix_cache_min_tokens) {}

  model::Model& model;
  const SchedulerOptions opt;
  PrefixCache cache;  // worker only

  mutable std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu:
  std::deque<std::unique_ptr<Seq>> queue;
  std::unordered_set<uint64_t> cancels;
  bool stop = false;
  uint64_t next_id = 1;
  SchedulerMetrics m;
  mutable std::deque<RateSample> rate;

  // Worker only:
  std::vector<std::unique_ptr<Seq>> active;
  SchedulerMetrics wm;  // worker-side counters, published into m

  std::thread worker;

  void run();
  void admit(std::unique_ptr<Seq> s);
  void step();
  // Samples from a logits row, emits it; returns the finish reason if the request ends.
  std::optional<FinishReason> emit(Seq& s, std::span<const float> logits);
  void finish(std::unique_ptr<Seq> s, FinishReason why, const std::string& error = {});
  void publish();
};

// ---- submit / cancel / metrics (any thread) ----

Scheduler::Scheduler(model::Model& model, const SchedulerOptions& opt) : impl_(std::make_unique<Impl>(model, opt)) {
  check(opt.max_active >= 1, "max_active must be >= 1");
  check(opt.max_queue >= 0, "max_queue must be >= 0");
  check(opt.max_context >= 1, "max_context must be >= 1");
  check(opt.prefill_chunk >= 1, "prefill_chunk must be >= 1");
  check(opt.max_batch_tokens >= 1, "max_batch_tokens must be >= 1");
  check(opt.prefix_cache_bytes >= 0, "prefix_cache_bytes must be >= 0");
  impl_->worker = std::thread([this] { impl_->run(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

const SchedulerOptions& Scheduler::options() const { return impl_->opt; }

uint64_t Scheduler::submit(RequestParams params, RequestCallbacks callbacks) {
  Impl& I = *impl_;
  const io::Config& c = I.model.config();
  check(!params.prompt.empty(), "the prompt is empty");
  check(int64_t(params.prompt.size()) <= I.opt.max_context,
        "the prompt has " + std::to_string(params.prompt.size()) + " tokens, more than the context size " +
            std::to_string(I.opt.max_context));
  for (int32_t t : params.prompt)
    check(t >= 0 && t < c.vocab_size, "token id " + std::to_string(t) + " is outside the vocabulary (size " +
                                          std::to_string(c.vocab_size) + ")");
  check(params.max_tokens >= 0, "max_tokens must be >= 0");
  check(params.top_logprobs >= 0, "top_logprobs must be >= 0");
  auto s = std::make_unique<Seq>(0, std::move(params), std::move(callbacks));  // Sampler validates options
  s->t_submit = Clock::now();
  uint64_t id;
  {
    std::lock_guard lk(I.mu);
    check(!I.stop, "the scheduler is shutting down");
    check(int64_t(I.queue.size()) < I.opt.max_queue,
          "the request queue is full (" + std::to_string(I.opt.max_queue) + " waiting)");
    id = s->id = I.next_id++;
    I.queue.push_back(std::move(s));
    ++I.m.requests_total;
    I.m.requests_queued = int64_t(I.queue.size());
  }
  I.cv.notify_one();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  {
    std::lock_guard lk(impl_->mu);
    impl_->cancels.insert(id);
  }
  impl_->cv.notify_one();
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard lk(impl_->mu);
  SchedulerMetrics r = impl_->m;
  const auto now = Clock::now();
  while (!impl_->rate.empty() && seconds_between(impl_->rate.front().t, now) > kRateWindowSeconds) impl_->rate.pop_front();
  int64_t tokens = 0;
  double seconds = 0;
  for (const RateSample& s : impl_->rate) tokens += s.tokens, seconds += s.seconds;
  r.decode_tokens_per_second = seconds > 0 ? double(tokens) / seconds : 0;
  return r;
}

// ---- worker ----

void Scheduler::Impl::run() {
  for (;;) {
    std::vector<std::unique_ptr<Seq>> admitted, dropped;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return stop || !queue.empty() || !cancels.empty() || !active.empty(); });
      if (stop) {
        for (auto& s : queue) dropped.push_back(std::move(s));
        queue.clear();
        m.requests_queued = 0;
        lk.unlock();
        for (auto& s : active) dropped.push_back(std::move(s));
        active.clear();
        for (auto& s : dropped) finish(std::move(s), FinishReason::kCancelled);
        publish();
        return;
      }
      for (uint64_t id : cancels) {
        auto q = std::find_if(queue.begin(), queue.end(), [&](const auto& s) { return s->id == id; });
        if (q != queue.end()) {
          dropped.push_back(std::move(*q));
          queue.erase(q);
          continue;
        }
        for (auto& s : active)
          if (s->id == id) s->cancelled = true;
      }
      cancels.clear();
      while (int64_t(active.size() + admitted.size()) < opt.max_active && !queue.empty()) {
        admitted.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      m.requests_queued = int64_t(queue.size());
    }
    for (auto& s : dropped) finish(std::move(s), FinishReason::kCancelled);
    // Cancelled sequences leave before the step, freeing their state now.
    for (size_t i = 0; i < active.size();) {
      if (active[i]->cancelled) {
        auto s = std::move(active[i]);
        active.erase(active.begin() + ptrdiff_t(i));
        finish(std::move(s), FinishReason::kCancelled);
      } else {
        ++i;
      }
    }
    for (auto& s : admitted) admit(std::move(s));
    if (!active.empty()) {
      try {
        step();
      } catch (const std::exception& e) {
        // Outside the model call (which step() handles itself), e.g. out of memory while
        // assembling the batch: fail what is running rather than the worker.
        std::vector<std::unique_ptr<Seq>> failed;
        failed.swap(active);
        for (auto& s : failed) finish(std::move(s), FinishReason::kError, std::string("scheduler step failed: ") + e.what());
      }
    }
    publish();
  }
}

void Scheduler::Impl::admit(std::unique_ptr<Seq> s) {
  s->t_admit = Clock::now();
  s->stats.prompt_tokens = s->prompt_len;
  s->stats.queue_seconds = seconds_between(s->t_submit, s->t_admit);
  wm.prompt_tokens_total += s->prompt_len;
  if (s->p.max_tokens == 0 || s->prompt_len >= opt.max_context) {  // nothing may be generated
    finish(std::move(s), FinishReason::kLength);
    return;
  }
  try {
    s->toks = std::move(s->p.prompt);  // the prompt lives on as the head of toks
    int64_t hit = 0;
    if (cache.enabled()) {
      // At least the last prompt token is always fed, to produce the first logits.
      int64_t common = 0;
      hit = cache.lookup(s->toks, s->prompt_len - 1, &s->state, &common);
      ++(hit > 0 ? wm.cache_hits : wm.cache_misses);
      // The prompt shares more with a cached sequence than any whole snapshot covers: the
      // two branch there (same system prompt and tools, different conversation). Cut the
      // prefill at the branch point and snapshot it, so the next sibling hits.
      if (common > hit && common < s->prompt_len && common >= opt.prefix_cache_min_tokens) s->branch_at = common;
    }
    if (hit == 0) s->state = model.new_state();
    s->stats.cached_tokens = hit;
    wm.cached_tokens_total += hit;
  } catch (const std::exception& e) {
    finish(std::move(s), FinishReason::kError, e.what());
    return;
  }
  active.push_back(std::move(s));
}

void Scheduler::Impl::step() {
  // Decoding sequences contribute their one pending token each; prefilling ones then share
  // what is left of max_batch_tokens, oldest first, at most prefill_chunk each.
  std::vector<model::SeqInput> in;
  std::vector<Seq*> seqs;
  int64_t used = 0, n_decode = 0;
  for (auto& s : active) {
    if (s->state.n_past < s->prompt_len) continue;
    in.push_back({&s->state, std::span(s->toks).subspan(size_t(s->state.n_past), 1), model::LogitRows::kLast});
    seqs.push_back(s.get());
    ++used, ++n_decode;
  }
  for (auto& s : active) {
    if (s->state.n_past >= s->prompt_len) continue;
    const int64_t left = s->prompt_len - s->state.n_past;
    int64_t n = std::min({opt.prefill_chunk, left, opt.max_batch_tokens - used});
    if (n <= 0) {
      if (used > 0) break;
      n = 1;  // unreachable with max_batch_tokens >= 1, kept for safety
    }
    if (s->branch_at > s->state.n_past) n = std::min(n, s->branch_at - s->state.n_past);
    const bool last = n == left;
    in.push_back({&s->state, std::span(s->toks).subspan(size_t(s->state.n_past), size_t(n)),
                  last ? model::LogitRows::kLast : model::LogitRows::kNone});
    seqs.push_back(s.get());
    used += n;
  }

  const auto t0 = Clock::now();
  std::vector<std::vector<float>> out;
  std::string error;
  try {
    out = model.forward_batch(in);
    if (out.size() != in.size()) error = "forward_batch returned the wrong number of results";
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto t1 = Clock::now();

  std::vector<std::pair<Seq*, std::pair<FinishReason, std::string>>> ended;
  if (!error.empty()) {
    // The states of every sequence in the batch may be half-updated: fail them all.
    for (Seq* s : seqs) ended.push_back({s, {FinishReason::kError, "model step failed: " + error}});
  } else {
    const int64_t vocab = model.config().vocab_size;
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = *seqs[i];
      if (s.branch_at > 0 && s.state.n_past == s.branch_at) {
        s.branch_at = 0;
        try {
          cache.insert(std::span(s.toks).first(size_t(s.state.n_past)), s.state);
        } catch (const std::exception&) {
        }
      }
      if (in[i].rows == model::LogitRows::kNone) continue;
      if (int64_t(out[i].size()) != vocab) {
        ended.push_back({&s, {FinishReason::kError, "unexpected logits size"}});
        continue;
      }
      if (!s.first_done) {
        s.first_done = true;
        s.t_first = t1;
        s.stats.prefill_seconds = seconds_between(s.t_admit, t1);
        try {
          cache.insert(std::span(s.toks).first(size_t(s.prompt_len)), s.state);  // the prompt-end snapshot
        } catch (const std::exception&) {
          // Caching is an optimisation; a failed copy (out of memory) does not fail the request.
        }
      }
      if (auto why = emit(s, out[i])) ended.push_back({&s, {*why, s.stats.error}});
    }
  }
  if (n_decode > 0) {
    std::lock_guard lk(mu);
    rate.push_back({t1, n_decode, seconds_between(t0, t1)});
    while (!rate.empty() && seconds_between(rate.front().t, t1) > kRateWindowSeconds) rate.pop_front();
  }
  for (auto& [ptr, why] : ended) {
    auto it = std::find_if(active.begin(), active.end(), [&](const auto& s) { return s.get() == ptr; });
    auto s = std::move(*it);
    active.erase(it);
    finish(std::move(s), why.first, why.second);
  }
}

std::optional<FinishReason> Scheduler::Impl::emit(Seq& s, std::span<const float> logits) {
  int32_t tok;
  TokenEvent ev;
  try {
    tok = s.sampler.sample(logits);
    if (s.p.stop_at_eos && tok == model.config().eos_token_id) return FinishReason::kEos;
    if (std::find(s.p.stop_tokens.begin(), s.p.stop_tokens.end(), tok) != s.p.stop_tokens.end()) return FinishReason::kStop;
    // log-softmax of the raw logits (temperature 1).
    const double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float x : logits) sum += std::exp(double(x) - mx);
    const double lse = mx + std::log(sum);
    ev.token = tok;
    ev.logprob = float(double(logits[size_t(tok)]) - lse);
    if (s.p.top_logprobs > 0) {
      const size_t k = size_t(std::min<int64_t>(s.p.top_logprobs, int64_t(logits.size())));
      std::vector<int32_t> idx(logits.size());
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + ptrdiff_t(k), idx.end(), [&](int32_t a, int32_t b) {
        return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
      });
      for (size_t j = 0; j < k; ++j) ev.top.push_back({idx[j], float(double(logits[size_t(idx[j])]) - lse)});
    }
    ++s.stats.completion_tokens;
    ++wm.completion_tokens_total;
    s.toks.push_back(tok);
    if (s.cb.on_token && !s.cb.on_token(ev)) return FinishReason::kCancelled;
  } catch (const std::exception& e) {
    s.stats.error = std::string("token callback failed: ") + e.what();
    return FinishReason::kError;
  }
  if (s.stats.completion_tokens >= s.p.max_tokens || s.prompt_len + s.stats.completion_tokens >= opt.max_context)
    return FinishReason::kLength;
  return std::nullopt;
}

void Scheduler::Impl::finish(std::unique_ptr<Seq> s, FinishReason why, const std::string& error) {
  const auto now = Clock::now();
  if (s->t_admit == Clock::time_point{}) s->stats.queue_seconds = seconds_between(s->t_submit, now);
  if (s->first_done) s->stats.decode_seconds = seconds_between(s->t_first, now);
  else if (s->t_admit != Clock::time_point{}) s->stats.prefill_seconds = seconds_between(s->t_admit, now);
  s->stats.finish = why;
  s->stats.error = why == FinishReason::kError ? (error.empty() ? s->stats.error : error) : std::string();
  // The state at the end of what was fed (prompt + generated but the last token) serves the
  // next turn of a conversation, which resends all of it.
  if (why != FinishReason::kError && s->state.n_past > s->prompt_len) {
    try {
      cache.insert(std::span(s->toks).first(size_t(s->state.n_past)), s->state);
    } catch (const std::exception&) {
    }
  }
  s->state = kv::SequenceState();  // free the KV memory before the callback
  publish();  // so on_done observers see this sequence gone from the metrics
  if (s->cb.on_done) {
    try {
      s->cb.on_done(s->stats);
    } catch (...) {
      // A throwing callback must not take the worker down.
    }
  }
}

void Scheduler::Impl::publish() {
  std::lock_guard lk(mu);
  m.requests_active = int64_t(active.size());
  m.prompt_tokens_total = wm.prompt_tokens_total;
  m.cached_tokens_total = wm.cached_tokens_total;
  m.completion_tokens_total = wm.completion_tokens_total;
  m.cache_hits = wm.cache_hits;
  m.cache_misses = wm.cache_misses;
  m.cache_bytes = cache.bytes();
  m.cache_entries = cache.entries();
}

}  // namespace dsv4::runtime
