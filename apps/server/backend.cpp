#include "backend.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dsv4::server {

ScriptedBackend::ScriptedBackend(const tok::Tokenizer& tok, const std::string& path, int64_t max_context,
                                 int delay_ms)
    : tok_(tok), max_context_(max_context), delay_ms_(delay_ms) {
  std::ifstream f(path);
  check(bool(f), "cannot read script file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    throw Error("script file " + path + ": " + e.what());
  }
  check(j.is_array(), "script file " + path + ": expected an array of {match, output}");
  for (const auto& r : j) {
    check(r.is_object() && r.value("output", nlohmann::json()).is_string(), "script rule needs a string output");
    rules_.emplace_back(r.value("match", std::string()), r["output"].get<std::string>());
  }
  worker_ = std::thread([this] { loop(); });
}

ScriptedBackend::~ScriptedBackend() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

uint64_t ScriptedBackend::submit(runtime::RequestParams p, runtime::RequestCallbacks cb) {
  check(!p.prompt.empty(), "empty prompt");
  check(int64_t(p.prompt.size()) <= max_context_, "prompt longer than the context");
  for (int32_t t : p.prompt) check(t >= 0 && t < tok_.vocab_size(), "token id outside the vocabulary");
  const std::string prompt = tok_.decode(p.prompt);
  std::string out = "Hello from the scripted backend.";
  for (const auto& [match, output] : rules_)
    if (prompt.find(match) != std::string::npos) {
      out = output;
      break;
    }
  Job job;
  job.out = tok_.encode(out, true);
  job.params = std::move(p);
  job.cb = std::move(cb);
  std::lock_guard<std::mutex> lk(mu_);
  check(int64_t(jobs_.size()) < 256, "queue is full");
  job.id = next_id_++;
  m_.requests_total++;
  m_.prompt_tokens_total += int64_t(job.params.prompt.size());
  jobs_.push_back(std::move(job));
  cv_.notify_all();
  return jobs_.back().id;
}

void ScriptedBackend::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& j : jobs_)
    if (j.id == id) j.cancelled = true;
}

runtime::SchedulerMetrics ScriptedBackend::metrics() const {
  std::lock_guard<std::mutex> lk(mu_);
  runtime::SchedulerMetrics m = m_;
  m.requests_active = int64_t(jobs_.size());
  return m;
}

void ScriptedBackend::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) break;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& j = *it;
      runtime::RequestStats st;
      st.prompt_tokens = int64_t(j.params.prompt.size());
      st.completion_tokens = int64_t(j.pos);
      bool done = false;
      if (j.cancelled) {
        st.finish = runtime::FinishReason::kCancelled;
        done = true;
      } else if (j.pos >= j.out.size()) {
        st.finish = runtime::FinishReason::kEos;
        done = true;
      } else if (int64_t(j.pos) >= j.params.max_tokens) {
        st.finish = runtime::FinishReason::kLength;
        done = true;
      } else {
        runtime::TokenEvent ev;
        ev.token = j.out[j.pos++];
        ev.logprob = -0.5f;
        for (int64_t k = 0; k < j.params.top_logprobs; ++k) ev.top.emplace_back(ev.token, -0.5f - float(k));
        m_.completion_tokens_total++;
        if (!j.cb.on_token(ev)) j.cancelled = true;
        ++it;
        continue;
      }
      if (done) {
        auto cb = std::move(j.cb);
        it = jobs_.erase(it);
        cb.on_done(st);
      }
    }
    lk.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    lk.lock();
  }
  for (auto& j : jobs_) {
    runtime::RequestStats st;
    st.finish = runtime::FinishReason::kCancelled;
    j.cb.on_done(st);
  }
  jobs_.clear();
}

}  // namespace dsv4::server
