// dsv4 serve: what the HTTP layer needs from the runtime. The real implementation forwards to
// runtime::Scheduler (SchedulerBackend, a header template so this library does not link the
// scheduler itself); ScriptedBackend plays back scripted model output token by token for
// tests of tool calls and reasoning, which a random tiny model never produces.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual uint64_t submit(runtime::RequestParams params, runtime::RequestCallbacks callbacks) = 0;
  virtual void cancel(uint64_t id) = 0;
  virtual runtime::SchedulerMetrics metrics() const = 0;
  virtual int64_t max_context() const = 0;
  virtual int64_t max_queue() const = 0;
  virtual int64_t max_active() const = 0;
};

template <class S>
class SchedulerBackend : public Backend {
 public:
  explicit SchedulerBackend(S& s) : s_(s) {}
  uint64_t submit(runtime::RequestParams p, runtime::RequestCallbacks cb) override {
    return s_.submit(std::move(p), std::move(cb));
  }
  void cancel(uint64_t id) override { s_.cancel(id); }
  runtime::SchedulerMetrics metrics() const override { return s_.metrics(); }
  int64_t max_context() const override { return s_.options().max_context; }
  int64_t max_queue() const override { return s_.options().max_queue; }
  int64_t max_active() const override { return s_.options().max_active; }

 private:
  S& s_;
};

// Scripted output: a JSON file [{"match": "text in the prompt", "output": "model text"}, ...];
// the first rule whose match occurs in the decoded prompt (the last occurrence of the rule
// list wins ties: rules are tried in order) gives the output, tokenized with special tokens
// allowed, emitted one token per `delay_ms`. No rule: a short default reply.
class ScriptedBackend : public Backend {
 public:
  ScriptedBackend(const tok::Tokenizer& tok, const std::string& script_path, int64_t max_context, int delay_ms = 2);
  ~ScriptedBackend() override;
  uint64_t submit(runtime::RequestParams p, runtime::RequestCallbacks cb) override;
  void cancel(uint64_t id) override;
  runtime::SchedulerMetrics metrics() const override;
  int64_t max_context() const override { return max_context_; }
  int64_t max_queue() const override { return 64; }
  int64_t max_active() const override { return 64; }

 private:
  struct Job {
    uint64_t id;
    std::vector<int32_t> out;
    size_t pos = 0;
    runtime::RequestParams params;
    runtime::RequestCallbacks cb;
    bool cancelled = false;
  };
  void loop();
  const tok::Tokenizer& tok_;
  std::vector<std::pair<std::string, std::string>> rules_;
  int64_t max_context_;
  int delay_ms_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Job> jobs_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  runtime::SchedulerMetrics m_;
  std::thread worker_;
};

}  // namespace dsv4::server
