// Scheduler on a generated tiny model (ref backend, so results are bit-exact): batched ==
// alone, prefix-cache hit == miss, LRU budget, cancellation, limits, errors, concurrency,
// shutdown with requests in flight.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/tests/scratch_dir.h"
#include "model/tiny_model.h"
#include "runtime/scheduler.h"

namespace dsv4::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// One tiny checkpoint per test binary, loaded once per backend.
model::Model& tiny(const std::string& backend = "ref") {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<model::Model>> models;
  static std::string dir;
  std::lock_guard lk(mu);
  if (dir.empty()) {
    dir = test::process_scratch().file("tiny");
    model::write_tiny_model(dir, model::tiny_config("tiny"), {7, 2});
  }
  auto& m = models[backend];
  if (!m) m = model::Model::load(dir, backend);
  return *m;
}

// Collects one request's events.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::vector<TokenEvent> events;
  RequestStats stats;
  int done = 0;
  std::function<bool(size_t)> on_token_hook;  // called with the token count; false cancels

  RequestCallbacks callbacks() {
    RequestCallbacks cb;
    cb.on_token = [this](const TokenEvent& ev) {
      size_t n;
      {
        std::lock_guard lk(mu);
        tokens.push_back(ev.token);
        events.push_back(ev);
        n = tokens.size();
        cv.notify_all();
      }
      return on_token_hook ? on_token_hook(n) : true;
    };
    cb.on_done = [this](const RequestStats& s) {
      // Notify under the lock: the waiter may destroy this Collector as soon as it sees done.
      std::lock_guard lk(mu);
      stats = s;
      ++done;
      cv.notify_all();
    };
    return cb;
  }
  size_t count() {
    std::lock_guard lk(mu);
    return tokens.size();
  }
  bool wait_done(std::chrono::seconds limit = 300s) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, limit, [&] { return done > 0; });
  }
  bool wait_tokens(size_t n, std::chrono::seconds limit = 300s) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, limit, [&] { return tokens.size() >= n || done > 0; });
  }
};

std::vector<int32_t> make_prompt(int64_t n, uint32_t seed) {
  std::vector<int32_t> p;
  uint32_t x = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    p.push_back(int32_t(2 + (x >> 8) % 1000));  // avoid bos/eos ids 0 and 1
  }
  return p;
}

RequestParams params(std::vector<int32_t> prompt, int64_t max_tokens) {
  RequestParams p;
  p.prompt = std::move(prompt);
  p.max_tokens = max_tokens;
  p.stop_at_eos = false;
  return p;
}

SchedulerOptions base_options() {
  SchedulerOptions o;
  o.max_active = 8;
  o.max_queue = 64;
  o.max_context = 512;
  o.prefill_chunk = 32;
  o.max_batch_tokens = 64;
  o.prefix_cache_bytes = 0;
  o.prefix_cache_min_tokens = 4;
  return o;
}

// Runs one request alone on a fresh scheduler.
std::unique_ptr<Collector> run_alone(model::Model& m, const RequestParams& p, SchedulerOptions o = base_options()) {
  Scheduler s(m, o);
  auto r = std::make_unique<Collector>();
  s.submit(p, r->callbacks());
  EXPECT_TRUE(r->wait_done());
  return r;
}

// Waits (bounded) until the metrics satisfy pred.
bool wait_metrics(const Scheduler& s, const std::function<bool(const SchedulerMetrics&)>& pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred(s.metrics())) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

void expect_same_output(const Collector& a, const Collector& b, const std::string& what) {
  ASSERT_EQ(a.tokens, b.tokens) << what;
  ASSERT_EQ(a.events.size(), b.events.size()) << what;
  for (size_t i = 0; i < a.events.size(); ++i) {
    EXPECT_EQ(a.events[i].logprob, b.events[i].logprob) << what << " token " << i;
    EXPECT_EQ(a.events[i].top, b.events[i].top) << what << " token " << i;
  }
}

TEST(Scheduler, FinishReasonNames) {
  EXPECT_STREQ(finish_reason_name(FinishReason::kLength), "length");
  EXPECT_STREQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_STREQ(finish_reason_name(FinishReason::kEos), "eos");
  EXPECT_STREQ(finish_reason_name(FinishReason::kCancelled), "cancelled");
  EXPECT_STREQ(finish_reason_name(FinishReason::kError), "error");
}

TEST(Scheduler, SingleRequestMatchesDirectForward) {
  model::Model& m = tiny();
  const auto prompt = make_prompt(37, 1);
  auto p = params(prompt, 6);
  p.top_logprobs = 3;
  auto r = run_alone(m, p);
  EXPECT_EQ(r->done, 1);
  EXPECT_EQ(r->stats.finish, FinishReason::kLength);
  EXPECT_EQ(r->stats.prompt_tokens, 37);
  EXPECT_EQ(r->stats.completion_tokens, 6);
  EXPECT_EQ(r->stats.cached_tokens, 0);
  // Same greedy tokens as a direct prefill + decode loop with the same chunking.
  kv::SequenceState st = m.new_state();
  std::vector<float> logits;
  for (size_t i = 0; i < prompt.size(); i += 32) {
    const size_t n = std::min<size_t>(32, prompt.size() - i);
    logits = m.forward(st, std::span(prompt).subspan(i, n),
                       i + n == prompt.size() ? model::LogitRows::kLast : model::LogitRows::kNone);
  }
  std::vector<int32_t> expect;
  for (int k = 0; k < 6; ++k) {
    const int32_t t = sampling::argmax(logits);
    expect.push_back(t);
    logits = m.forward(st, std::span(&t, 1), model::LogitRows::kLast);
  }
  EXPECT_EQ(r->tokens, expect);
  ASSERT_EQ(r->events.size(), 6u);
  for (const auto& ev : r->events) {
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_EQ(ev.top[0].first, ev.token);  // greedy: the sampled token is the best one
    EXPECT_EQ(ev.top[0].second, ev.logprob);
    EXPECT_LE(ev.logprob, 0.0f);
    EXPECT_GE(ev.top[0].second, ev.top[1].second);
    EXPECT_GE(ev.top[1].second, ev.top[2].second);
  }
}

// Greedy and seeded-temperature outputs are bit-identical whether a request runs alone or
// batched with 7 others of different lengths, some of them chunk-prefilled concurrently.
TEST(Scheduler, BatchedEqualsAlone) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.prefill_chunk = 16;
  o.max_batch_tokens = 40;  // forces prompts to be split differently than when alone
  const int64_t lens[] = {5, 70, 23, 1, 41, 17, 90, 33};
  std::vector<RequestParams> reqs;
  for (int i = 0; i < 8; ++i) {
    auto p = params(make_prompt(lens[i], 100 + uint32_t(i)), 4 + i % 4);
    p.top_logprobs = 2;
    if (i % 3 == 2) {
      p.sampler.temperature = 0.8;
      p.sampler.top_p = 0.9;
      p.sampler.seed = 1000 + uint64_t(i);
    }
    reqs.push_back(p);
  }
  std::vector<std::unique_ptr<Collector>> alone;
  for (const auto& p : reqs) alone.push_back(run_alone(m, p, o));

  Scheduler s(m, o);
  std::vector<std::unique_ptr<Collector>> batched;
  for (const auto& p : reqs) {
    batched.push_back(std::make_unique<Collector>());
    s.submit(p, batched.back()->callbacks());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(batched[i]->wait_done());
    EXPECT_EQ(batched[i]->stats.finish, FinishReason::kLength);
    EXPECT_EQ(batched[i]->stats.completion_tokens, reqs[i].max_tokens);
    expect_same_output(*alone[i], *batched[i], "request " + std::to_string(i));
  }
  EXPECT_TRUE(wait_metrics(s, [](const SchedulerMetrics& mm) { return mm.requests_active == 0; }));
  const SchedulerMetrics mm = s.metrics();
  EXPECT_EQ(mm.requests_total, 8);
  EXPECT_EQ(mm.requests_queued, 0);
  EXPECT_EQ(mm.completion_tokens_total, 4 + 5 + 6 + 7 + 4 + 5 + 6 + 7);
}

// More requests than max_active: the rest wait in the queue and still match.
TEST(Scheduler, QueueBeyondMaxActive) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_active = 2;
  std::vector<RequestParams> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back(params(make_prompt(10 + 7 * i, 200 + uint32_t(i)), 3));
  Scheduler s(m, o);
  std::vector<std::unique_ptr<Collector>> runs;
  for (const auto& p : reqs) {
    runs.push_back(std::make_unique<Collector>());
    s.submit(p, runs.back()->callbacks());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(runs[i]->wait_done());
    auto alone = run_alone(m, reqs[i], o);
    expect_same_output(*alone, *runs[i], "request " + std::to_string(i));
  }
}

TEST(Scheduler, PrefixCacheHitEqualsMiss) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.prefix_cache_bytes = 64ll << 20;
  o.prefill_chunk = 13;  // odd sizes: snapshots land mid compressor block and mid window
  const auto history = make_prompt(45, 300);  // 45: not a multiple of 4 or 16, longer than the window
  auto turn1 = params(history, 5);
  turn1.top_logprobs = 2;

  Scheduler s(m, o);
  auto r1 = std::make_unique<Collector>();
  s.submit(turn1, r1->callbacks());
  ASSERT_TRUE(r1->wait_done());
  EXPECT_EQ(r1->stats.cached_tokens, 0);
  expect_same_output(*run_alone(m, turn1, o), *r1, "turn 1");

  // Turn 2 resends the history plus new text: served from the prompt-end snapshot.
  auto p2 = history;
  for (int32_t t : make_prompt(9, 301)) p2.push_back(t);
  auto turn2 = params(p2, 5);
  turn2.top_logprobs = 2;
  auto r2 = std::make_unique<Collector>();
  s.submit(turn2, r2->callbacks());
  ASSERT_TRUE(r2->wait_done());
  EXPECT_EQ(r2->stats.cached_tokens, 45);
  SchedulerOptions off = o;
  off.prefix_cache_bytes = 0;
  expect_same_output(*run_alone(m, turn2, off), *r2, "turn 2");

  // Turn 3 resends turn 2's prompt and answer (all but the last token were fed): served
  // from the completion snapshot.
  auto p3 = p2;
  p3.insert(p3.end(), r2->tokens.begin(), r2->tokens.end());
  for (int32_t t : make_prompt(6, 302)) p3.push_back(t);
  auto turn3 = params(p3, 5);
  auto r3 = std::make_unique<Collector>();
  s.submit(turn3, r3->callbacks());
  ASSERT_TRUE(r3->wait_done());
  EXPECT_EQ(r3->stats.cached_tokens, int64_t(p2.size() + r2->tokens.size() - 1));
  expect_same_output(*run_alone(m, turn3, off), *r3, "turn 3");

  // The exact same prompt again: at most prompt-1 tokens come from the cache.
  auto r4 = std::make_unique<Collector>();
  s.submit(turn3, r4->callbacks());
  ASSERT_TRUE(r4->wait_done());
  // Neither turn 3's prompt-end snapshot (the whole prompt) nor its completion snapshot
  // (longer) may be used: the best is turn 2's completion snapshot.
  EXPECT_EQ(r4->stats.cached_tokens, r3->stats.cached_tokens);
  EXPECT_GT(r4->stats.cached_tokens, 0);
  expect_same_output(*r3, *r4, "repeat");

  const SchedulerMetrics mm = s.metrics();
  EXPECT_EQ(mm.cache_hits, 3);
  EXPECT_EQ(mm.cache_misses, 1);
  EXPECT_EQ(mm.cached_tokens_total, r2->stats.cached_tokens + r3->stats.cached_tokens + r4->stats.cached_tokens);
  EXPECT_GT(mm.cache_entries, 0);
  EXPECT_LE(mm.cache_bytes, o.prefix_cache_bytes);
}

// Conversations that share a system prompt but not their first turn: the second one
// branches from the first, which leaves a snapshot at the branch point for the third.
TEST(Scheduler, PrefixCacheBranchPoint) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.prefix_cache_bytes = 64ll << 20;
  o.prefill_chunk = 32;
  SchedulerOptions off = o;
  off.prefix_cache_bytes = 0;
  const auto system = make_prompt(37, 450);
  auto conv = [&](uint32_t seed) {
    auto p = system;
    auto tail = make_prompt(12, seed);
    tail[0] = int32_t(100 + seed % 50);  // every conversation differs right after the system prompt
    p.insert(p.end(), tail.begin(), tail.end());
    return params(p, 3);
  };
  Scheduler s(m, o);
  std::vector<uint32_t> seeds = {451, 452, 453};
  std::vector<int64_t> expect_cached = {0, 0, 37};
  for (size_t i = 0; i < seeds.size(); ++i) {
    auto r = std::make_unique<Collector>();
    const auto p = conv(seeds[i]);
    s.submit(p, r->callbacks());
    ASSERT_TRUE(r->wait_done());
    EXPECT_EQ(r->stats.cached_tokens, expect_cached[i]) << i;
    expect_same_output(*run_alone(m, p, off), *r, "conversation " + std::to_string(i));
  }
}

// Concurrent requests sharing a history, some hitting the cache while others prefill.
TEST(Scheduler, PrefixCacheHitsWhileBatched) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.prefix_cache_bytes = 64ll << 20;
  const auto history = make_prompt(50, 400);
  Scheduler s(m, o);
  {
    auto warm = std::make_unique<Collector>();
    s.submit(params(history, 1), warm->callbacks());
    ASSERT_TRUE(warm->wait_done());
  }
  SchedulerOptions off = o;
  off.prefix_cache_bytes = 0;
  std::vector<RequestParams> reqs;
  for (int i = 0; i < 6; ++i) {
    auto p = i % 2 ? make_prompt(20 + i, 410 + uint32_t(i)) : history;
    for (int32_t t : make_prompt(3 + i, 420 + uint32_t(i))) p.push_back(t);
    reqs.push_back(params(p, 4));
  }
  std::vector<std::unique_ptr<Collector>> runs;
  for (const auto& p : reqs) {
    runs.push_back(std::make_unique<Collector>());
    s.submit(p, runs.back()->callbacks());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(runs[i]->wait_done());
    EXPECT_EQ(runs[i]->stats.cached_tokens, i % 2 ? 0 : 50) << i;
    expect_same_output(*run_alone(m, reqs[i], off), *runs[i], "request " + std::to_string(i));
  }
}

TEST(Scheduler, PrefixCacheLruBudget) {
  model::Model& m = tiny();
  // Measure one entry's size: a 30-token prompt, max_tokens 1 (only the prompt-end snapshot).
  SchedulerOptions o = base_options();
  o.prefix_cache_bytes = 64ll << 20;
  int64_t one = 0;
  {
    Scheduler s(m, o);
    auto r = std::make_unique<Collector>();
    s.submit(params(make_prompt(30, 500), 1), r->callbacks());
    ASSERT_TRUE(r->wait_done());
    ASSERT_TRUE(wait_metrics(s, [](const SchedulerMetrics& mm) { return mm.cache_entries == 1; }));
    one = s.metrics().cache_bytes;
  }
  ASSERT_GT(one, 0);
  o.prefix_cache_bytes = 2 * one + one / 2;  // room for two such entries
  Scheduler s(m, o);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(make_prompt(30, 500 + uint32_t(i)));
    auto r = std::make_unique<Collector>();
    s.submit(params(prompts.back(), 1), r->callbacks());
    ASSERT_TRUE(r->wait_done());
    const SchedulerMetrics mm = s.metrics();
    EXPECT_LE(mm.cache_bytes, o.prefix_cache_bytes);
    EXPECT_LE(mm.cache_entries, 2);
  }
  auto extended = [&](int i) {
    auto p = prompts[size_t(i)];
    p.push_back(5);
    return params(p, 1);
  };
  for (int i : {0, 3}) {  // 0 was evicted, 3 is the most recent
    auto r = std::make_unique<Collector>();
    s.submit(extended(i), r->callbacks());
    ASSERT_TRUE(r->wait_done());
    EXPECT_EQ(r->stats.cached_tokens, i == 0 ? 0 : 30) << i;
  }
}

TEST(Scheduler, CancelMidStreamFreesTheSequence) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.prefix_cache_bytes = 1 << 20;
  Scheduler s(m, o);
  auto r = std::make_unique<Collector>();
  const uint64_t id = s.submit(params(make_prompt(20, 600), 400), r->callbacks());
  ASSERT_TRUE(r->wait_tokens(3));
  s.cancel(id);
  ASSERT_TRUE(r->wait_done());
  EXPECT_EQ(r->done, 1);
  EXPECT_EQ(r->stats.finish, FinishReason::kCancelled);
  EXPECT_LT(r->stats.completion_tokens, 400);
  EXPECT_TRUE(wait_metrics(s, [&](const SchedulerMetrics& mm) {
    return mm.requests_active == 0 && mm.requests_queued == 0 && mm.cache_bytes <= o.prefix_cache_bytes;
  }));
  s.cancel(id);      // already finished: ignored
  s.cancel(123456);  // unknown: ignored
  // The scheduler keeps serving.
  auto r2 = std::make_unique<Collector>();
  s.submit(params(make_prompt(8, 601), 2), r2->callbacks());
  ASSERT_TRUE(r2->wait_done());
  EXPECT_EQ(r2->stats.finish, FinishReason::kLength);
  EXPECT_EQ(r->done, 1);
}

// A long prompt is prefilled in chunks between the decode steps of a running request,
// which keeps producing one token per step meanwhile.
TEST(Scheduler, LongPrefillDoesNotStallDecoders) {
  model::Model& m = tiny("cpu");
  SchedulerOptions o = base_options();
  o.prefill_chunk = 16;
  o.max_batch_tokens = 256;
  Scheduler s(m, o);
  auto a = std::make_unique<Collector>();
  std::atomic<size_t> a_tokens{0};
  a->on_token_hook = [&](size_t n) {
    a_tokens = n;
    return true;
  };
  s.submit(params(make_prompt(8, 1600), 100), a->callbacks());
  ASSERT_TRUE(a->wait_tokens(2));
  auto b = std::make_unique<Collector>();
  std::atomic<size_t> a_at_b_first{0};
  b->on_token_hook = [&](size_t n) {
    if (n == 1) a_at_b_first = a_tokens.load();
    return true;
  };
  const size_t a_at_submit = a_tokens.load();
  s.submit(params(make_prompt(300, 1601), 2), b->callbacks());
  ASSERT_TRUE(b->wait_done());
  EXPECT_EQ(b->stats.finish, FinishReason::kLength);
  // 300 tokens at 16 per step: 19 steps, each of which also decoded one token of a.
  EXPECT_GE(a_at_b_first.load(), a_at_submit + 300 / 16 - 1);
  EXPECT_GT(b->stats.prefill_seconds, 0);
  ASSERT_TRUE(a->wait_done());
  EXPECT_EQ(a->stats.completion_tokens, 100);
}

TEST(Scheduler, CancelDuringPrefill) {
  model::Model& m = tiny("cpu");
  SchedulerOptions o = base_options();
  o.prefill_chunk = 8;
  o.prefix_cache_bytes = 1 << 20;
  Scheduler s(m, o);
  // A decoding request paces the steps; the long prompt is cancelled while it prefills.
  auto pacer = std::make_unique<Collector>();
  const uint64_t pacer_id = s.submit(params(make_prompt(4, 1700), 1000), pacer->callbacks());
  ASSERT_TRUE(pacer->wait_tokens(1));
  auto r = std::make_unique<Collector>();
  const uint64_t id = s.submit(params(make_prompt(480, 1701), 5), r->callbacks());
  ASSERT_TRUE(pacer->wait_tokens(pacer->count() + 3));
  s.cancel(id);
  ASSERT_TRUE(r->wait_done());
  EXPECT_EQ(r->stats.finish, FinishReason::kCancelled);
  EXPECT_TRUE(r->tokens.empty());
  s.cancel(pacer_id);
  ASSERT_TRUE(pacer->wait_done());
  EXPECT_TRUE(wait_metrics(s, [&](const SchedulerMetrics& mm) {
    return mm.requests_active == 0 && mm.cache_bytes <= o.prefix_cache_bytes;
  }));
}

TEST(Scheduler, OnTokenFalseCancels) {
  model::Model& m = tiny();
  Scheduler s(m, base_options());
  auto r = std::make_unique<Collector>();
  r->on_token_hook = [](size_t n) { return n < 2; };
  s.submit(params(make_prompt(12, 700), 50), r->callbacks());
  ASSERT_TRUE(r->wait_done());
  EXPECT_EQ(r->stats.finish, FinishReason::kCancelled);
  EXPECT_EQ(r->tokens.size(), 2u);
  EXPECT_EQ(r->stats.completion_tokens, 2);
}

TEST(Scheduler, CancelQueuedRequest) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_active = 1;
  Scheduler s(m, o);
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  auto blocker = std::make_unique<Collector>();
  blocker->on_token_hook = [&](size_t) {  // holds the worker inside the callback (test only)
    std::unique_lock lk(gate_mu);
    gate_cv.wait(lk, [&] { return open; });
    return true;
  };
  s.submit(params(make_prompt(6, 800), 3), blocker->callbacks());
  ASSERT_TRUE(blocker->wait_tokens(1));
  auto queued = std::make_unique<Collector>();
  const uint64_t qid = s.submit(params(make_prompt(6, 801), 3), queued->callbacks());
  EXPECT_EQ(s.metrics().requests_queued, 1);
  s.cancel(qid);
  {
    std::lock_guard lk(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  ASSERT_TRUE(queued->wait_done());
  EXPECT_EQ(queued->stats.finish, FinishReason::kCancelled);
  EXPECT_TRUE(queued->tokens.empty());
  ASSERT_TRUE(blocker->wait_done());
  EXPECT_EQ(blocker->stats.finish, FinishReason::kLength);
}

TEST(Scheduler, QueueFull) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_active = 1;
  o.max_queue = 2;
  Scheduler s(m, o);
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  auto blocker = std::make_unique<Collector>();
  blocker->on_token_hook = [&](size_t) {
    std::unique_lock lk(gate_mu);
    gate_cv.wait(lk, [&] { return open; });
    return true;
  };
  s.submit(params(make_prompt(6, 900), 2), blocker->callbacks());
  ASSERT_TRUE(blocker->wait_tokens(1));
  std::vector<std::unique_ptr<Collector>> runs;
  for (int i = 0; i < 2; ++i) {
    runs.push_back(std::make_unique<Collector>());
    s.submit(params(make_prompt(6, 901 + uint32_t(i)), 2), runs.back()->callbacks());
  }
  Collector rejected;
  EXPECT_THROW(s.submit(params(make_prompt(6, 910), 2), rejected.callbacks()), Error);
  {
    std::lock_guard lk(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  for (auto& r : runs) {
    ASSERT_TRUE(r->wait_done());
    EXPECT_EQ(r->stats.finish, FinishReason::kLength);
  }
  EXPECT_EQ(rejected.done, 0);  // a refused request gets no callbacks
}

TEST(Scheduler, RejectsInvalidRequests) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_context = 32;
  Scheduler s(m, o);
  Collector r;
  EXPECT_THROW(s.submit(params({}, 4), r.callbacks()), Error);
  EXPECT_THROW(s.submit(params(make_prompt(33, 1), 4), r.callbacks()), Error);
  EXPECT_THROW(s.submit(params({5, 1024}, 4), r.callbacks()), Error);
  EXPECT_THROW(s.submit(params({5, -1}, 4), r.callbacks()), Error);
  EXPECT_THROW(s.submit(params({5, 6}, -1), r.callbacks()), Error);
  auto bad_temp = params({5, 6}, 4);
  bad_temp.sampler.temperature = -1;
  EXPECT_THROW(s.submit(bad_temp, r.callbacks()), Error);
  auto bad_top = params({5, 6}, 4);
  bad_top.top_logprobs = -2;
  EXPECT_THROW(s.submit(bad_top, r.callbacks()), Error);
  EXPECT_EQ(r.done, 0);
  EXPECT_EQ(s.metrics().requests_total, 0);
  EXPECT_THROW(Scheduler(m, [] { auto x = base_options(); x.max_active = 0; return x; }()), Error);
}

TEST(Scheduler, LengthLimits) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_context = 20;
  Scheduler s(m, o);
  auto zero = std::make_unique<Collector>();
  s.submit(params(make_prompt(5, 1000), 0), zero->callbacks());
  auto ctx = std::make_unique<Collector>();
  s.submit(params(make_prompt(15, 1001), 100), ctx->callbacks());
  auto full = std::make_unique<Collector>();
  s.submit(params(make_prompt(20, 1002), 100), full->callbacks());
  ASSERT_TRUE(zero->wait_done());
  EXPECT_EQ(zero->stats.finish, FinishReason::kLength);
  EXPECT_TRUE(zero->tokens.empty());
  ASSERT_TRUE(ctx->wait_done());
  EXPECT_EQ(ctx->stats.finish, FinishReason::kLength);
  EXPECT_EQ(ctx->tokens.size(), 5u);  // prompt + completion fill the context exactly
  ASSERT_TRUE(full->wait_done());
  EXPECT_EQ(full->stats.finish, FinishReason::kLength);
  EXPECT_TRUE(full->tokens.empty());
}

TEST(Scheduler, StopTokensAndEos) {
  model::Model& m = tiny();
  const auto prompt = make_prompt(14, 1100);
  auto free_run = run_alone(m, params(prompt, 8));
  ASSERT_EQ(free_run->tokens.size(), 8u);
  // Stop at the first occurrence of the 4th generated token (not emitted).
  const int32_t stop = free_run->tokens[3];
  const size_t first = size_t(std::find(free_run->tokens.begin(), free_run->tokens.end(), stop) - free_run->tokens.begin());
  auto p = params(prompt, 8);
  p.stop_tokens = {stop};
  auto r = run_alone(m, p);
  EXPECT_EQ(r->stats.finish, FinishReason::kStop);
  EXPECT_EQ(r->tokens, std::vector<int32_t>(free_run->tokens.begin(), free_run->tokens.begin() + ptrdiff_t(first)));

  // EOS: a copy of the tiny model whose eos id is that token.
  const test::ScratchDir scratch("dsv4_scheduler_eos_");
  const std::string dir = scratch.file("tiny");
  io::Config c = model::tiny_config("tiny");
  c.eos_token_id = stop;
  model::write_tiny_model(dir, c, {7, 2});
  auto eos_model = model::Model::load(dir, "ref");
  auto pe = params(prompt, 8);
  pe.stop_at_eos = true;
  auto re = run_alone(*eos_model, pe);
  EXPECT_EQ(re->stats.finish, FinishReason::kEos);
  EXPECT_EQ(re->tokens, r->tokens);
  pe.stop_at_eos = false;
  auto rn = run_alone(*eos_model, pe);
  EXPECT_EQ(rn->tokens, free_run->tokens);
}

TEST(Scheduler, ThrowingCallbackFailsOnlyThatRequest) {
  model::Model& m = tiny();
  Scheduler s(m, base_options());
  auto bad = std::make_unique<Collector>();
  bad->on_token_hook = [](size_t) -> bool { throw std::runtime_error("boom"); };
  auto good = std::make_unique<Collector>();
  s.submit(params(make_prompt(9, 1200), 4), bad->callbacks());
  s.submit(params(make_prompt(11, 1201), 4), good->callbacks());
  ASSERT_TRUE(bad->wait_done());
  EXPECT_EQ(bad->stats.finish, FinishReason::kError);
  EXPECT_NE(bad->stats.error.find("boom"), std::string::npos);
  ASSERT_TRUE(good->wait_done());
  EXPECT_EQ(good->stats.finish, FinishReason::kLength);
  EXPECT_EQ(good->tokens.size(), 4u);
}

TEST(Scheduler, ManyConcurrentSubmitters) {
  model::Model& m = tiny("cpu");
  SchedulerOptions o = base_options();
  o.max_active = 4;
  o.max_queue = 64;
  o.prefix_cache_bytes = 4 << 20;
  Scheduler s(m, o);
  constexpr int kThreads = 4, kPerThread = 6;
  std::vector<std::unique_ptr<Collector>> runs(kThreads * kPerThread);
  std::vector<RequestParams> reqs;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    // A shared history for some, so cache hits and inserts race with other submitters.
    auto p = i % 3 == 0 ? make_prompt(24, 1300) : make_prompt(4 + i, 1300 + uint32_t(i));
    if (i % 3 == 0) p.push_back(int32_t(10 + i));
    reqs.push_back(params(p, 3));
    runs[size_t(i)] = std::make_unique<Collector>();
  }
  std::vector<std::thread> threads;
  std::atomic<int> cancels{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        const int i = t * kPerThread + k;
        const uint64_t id = s.submit(reqs[size_t(i)], runs[size_t(i)]->callbacks());
        if (i % 5 == 4) {
          s.cancel(id);
          ++cancels;
        }
        (void)s.metrics();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < runs.size(); ++i) {
    ASSERT_TRUE(runs[i]->wait_done(120s)) << i;
    EXPECT_EQ(runs[i]->done, 1);
    if (i % 5 != 4) {
      EXPECT_EQ(runs[i]->stats.finish, FinishReason::kLength) << i;
      EXPECT_EQ(runs[i]->tokens.size(), 3u) << i;
    }
  }
  EXPECT_TRUE(wait_metrics(s, [](const SchedulerMetrics& mm) { return mm.requests_active == 0 && mm.requests_queued == 0; }));
  EXPECT_EQ(s.metrics().requests_total, kThreads * kPerThread);
  EXPECT_LE(s.metrics().cache_bytes, o.prefix_cache_bytes);
}

// With the cpu backend, batched greedy tokens equal the alone ones (bits may differ).
TEST(Scheduler, BatchedGreedyTokensCpuBackend) {
  model::Model& m = tiny("cpu");
  SchedulerOptions o = base_options();
  o.prefill_chunk = 16;
  std::vector<RequestParams> reqs;
  for (int i = 0; i < 4; ++i) reqs.push_back(params(make_prompt(9 + 13 * i, 1400 + uint32_t(i)), 5));
  Scheduler s(m, o);
  std::vector<std::unique_ptr<Collector>> runs;
  for (const auto& p : reqs) {
    runs.push_back(std::make_unique<Collector>());
    s.submit(p, runs.back()->callbacks());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(runs[i]->wait_done());
    EXPECT_EQ(run_alone(m, reqs[i], o)->tokens, runs[i]->tokens) << i;
  }
}

TEST(Scheduler, DestructorCancelsInFlightRequests) {
  model::Model& m = tiny();
  SchedulerOptions o = base_options();
  o.max_active = 2;
  std::vector<std::unique_ptr<Collector>> runs;
  {
    Scheduler s(m, o);
    for (int i = 0; i < 5; ++i) {
      runs.push_back(std::make_unique<Collector>());
      s.submit(params(make_prompt(10 + i, 1500 + uint32_t(i)), 10000), runs.back()->callbacks());
    }
    ASSERT_TRUE(runs[0]->wait_tokens(2));
  }  // joins the worker
  for (auto& r : runs) {
    EXPECT_EQ(r->done, 1);
    EXPECT_EQ(r->stats.finish, FinishReason::kCancelled);
  }
  EXPECT_TRUE(runs[4]->tokens.empty());  // never admitted
}

TEST(Scheduler, IdleDestructionIsPrompt) {
  model::Model& m = tiny();
  const auto t0 = std::chrono::steady_clock::now();
  { Scheduler s(m, base_options()); }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace dsv4::runtime
