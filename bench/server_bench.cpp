// Serving-runtime benchmark on a generated checkpoint, cpu backend:
//  1. aggregate decode tok/s with 1, 2, 4 and 8 concurrent sessions (continuous batching:
//     every step is one forward_batch over all sessions), measured over the interval in
//     which every session is decoding;
//  2. the prefill time a prefix-cache hit saves on a long shared history (e.g. 2000 tokens
//     of history + 50 new ones), hit vs miss, with the first sampled token checked equal.
//
// usage: server_bench [--preset wide|tiny|<tiny preset>] [--dir DIR] [--backend cpu|ref]
//                     [--sessions 1,2,4,8] [--decode N] [--prompt N] [--history N] [--suffix N]
//                     [--vocab N] [--experts USED/TOTAL]
// The model is written to DIR (default /tmp/dsv4_server_bench_<preset>) unless already there.
// --vocab / --experts override the preset (to see what limits batching; give a new --dir).
// --history 0 skips the prefix-cache part.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "model/tiny_model.h"
#include "runtime/scheduler.h"

namespace {

using namespace dsv4;
using Clock = std::chrono::steady_clock;

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// "wide": the tiny preset's feature set at a width where matmuls dominate like in the real
// model (V4-Flash's window 128, ratios 4/128, top-k 512, hc 4), ~0.4 GB on disk.
io::Config wide_config() {
  io::Config c = model::tiny_config("tiny");
  c.vocab_size = 32768;
  c.n_embd = 1024;
  c.n_layer = 4;
  c.n_head = 16;
  c.head_dim = 256;
  c.rope_dim = 64;
  c.q_lora_rank = 512;
  c.o_groups = 4;
  c.o_lora_rank = 256;
  c.sliding_window = 128;
  c.n_expert = 64;
  c.n_expert_used = 6;
  c.n_ff_expert = 512;
  c.n_hash_layer = 1;
  c.index_n_head = 16;
  c.index_head_dim = 128;
  c.index_topk = 512;
  c.n_mtp = 1;
  c.compress_ratios = {4, 128, 4, 128, 0};
  return c;
}

std::vector<int32_t> make_prompt(int64_t n, uint32_t seed, int64_t vocab) {
  std::vector<int32_t> p;
  uint32_t x = seed * 2654435761u + 99u;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    p.push_back(int32_t(2 + (x >> 8) % uint32_t(vocab - 2)));
  }
  return p;
}

struct Session {
  std::vector<Clock::time_point> token_times;  // written on the worker, read after done
  std::vector<int32_t> tokens;
  runtime::RequestStats stats;
  bool done = false;
};

struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return pending == 0; });
  }
};

runtime::RequestCallbacks callbacks(Session& s, Waiter& w) {
  runtime::RequestCallbacks cb;
  cb.on_token = [&s](const runtime::TokenEvent& ev) {
    s.token_times.push_back(Clock::now());
    s.tokens.push_back(ev.token);
    return true;
  };
  cb.on_done = [&s, &w](const runtime::RequestStats& st) {
    std::lock_guard lk(w.mu);
    s.stats = st;
    s.done = true;
    --w.pending;
    w.cv.notify_all();
  };
  return cb;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "wide", dir, backend = "cpu";
  std::vector<int> sessions = {1, 2, 4, 8};
  int64_t decode = 32, prompt_len = 16, history = 2000, suffix = 50, vocab = 0, experts_used = 0, experts = 0;
  std::string cmdline = argv[0];
  for (int i = 1; i < argc; ++i) cmdline += std::string(" ") + argv[i];
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--preset") preset = next();
    else if (a == "--dir") dir = next();
    else if (a == "--backend") backend = next();
    else if (a == "--decode") decode = std::stoll(next());
    else if (a == "--prompt") prompt_len = std::stoll(next());
    else if (a == "--history") history = std::stoll(next());
    else if (a == "--suffix") suffix = std::stoll(next());
    else if (a == "--vocab") vocab = std::stoll(next());
    else if (a == "--experts") {
      const std::string v = next();
      experts_used = std::stoll(v.substr(0, v.find('/')));
      experts = std::stoll(v.substr(v.find('/') + 1));
    }
    else if (a == "--sessions") {
      sessions.clear();
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) sessions.push_back(std::stoi(t));
    } else {
      std::fprintf(stderr, "unknown option %s (see the header of bench/server_bench.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (dir.empty()) dir = "/tmp/dsv4_server_bench_" + preset;
  try {
    io::Config config = preset == "wide" ? wide_config() : model::tiny_config(preset);
    if (vocab > 0) config.vocab_size = vocab;
    if (experts > 0) config.n_expert = experts, config.n_expert_used = experts_used;
    if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
      std::printf("writing the %s model to %s ...\n", preset.c_str(), dir.c_str());
      std::fflush(stdout);
      model::write_tiny_model(dir, config, {1, 2});
    }
    auto t_load = Clock::now();
    auto model = model::Model::load(dir, backend);
    const double load_s = secs(t_load, Clock::now());
    const io::Config& c = model->config();

    std::printf("command: %s\n", cmdline.c_str());
    std::printf("machine: nproc=%u, cpu=%s\n", std::thread::hardware_concurrency(), cpu_model().c_str());
    std::printf("model: preset=%s backend=%s vocab=%lld n_embd=%lld n_layer=%lld n_head=%lld head_dim=%lld "
                "experts=%lld/%lld ff=%lld window=%lld ratios=",
                preset.c_str(), backend.c_str(), (long long)c.vocab_size, (long long)c.n_embd, (long long)c.n_layer,
                (long long)c.n_head, (long long)c.head_dim, (long long)c.n_expert_used, (long long)c.n_expert,
                (long long)c.n_ff_expert, (long long)c.sliding_window);
    for (auto r : c.compress_ratios) std::printf("%lld,", (long long)r);
    std::printf(" (loaded in %.2f s)\n\n", load_s);

    // 1. Aggregate decode throughput.
    std::printf("decode: %lld-token prompts, %lld generated tokens per session\n", (long long)prompt_len, (long long)decode);
    std::printf("%9s %14s %16s %14s\n", "sessions", "agg_tok_per_s", "per_session_tok_s", "step_ms");
    for (int n : sessions) {
      runtime::SchedulerOptions o;
      o.max_active = n;
      o.max_queue = n;
      o.max_context = prompt_len + decode + 8;
      o.prefix_cache_bytes = 0;
      runtime::Scheduler sched(*model, o);
      std::vector<Session> ss(static_cast<size_t>(n));
      Waiter w;
      w.pending = n;
      for (int i = 0; i < n; ++i) {
        runtime::RequestParams p;
        p.prompt = make_prompt(prompt_len, 1000 + uint32_t(i), c.vocab_size);
        p.max_tokens = decode;
        p.stop_at_eos = false;
        sched.submit(p, callbacks(ss[size_t(i)], w));
      }
      w.wait();
      // The window in which every session is decoding: from the last first token to the
      // first session's last token; count every token emitted inside it.
      Clock::time_point start = ss[0].token_times.front(), end = ss[0].token_times.back();
      for (const auto& s : ss) {
        start = std::max(start, s.token_times.front());
        end = std::min(end, s.token_times.back());
      }
      int64_t tokens = 0;
      for (const auto& s : ss)
        for (auto t : s.token_times) tokens += t > start && t <= end;
      const double dt = secs(start, end);
      const double agg = dt > 0 ? double(tokens) / dt : 0;
      std::printf("%9d %14.1f %16.1f %14.2f\n", n, agg, agg / n, agg > 0 ? 1000.0 * n / agg : 0.0);
      std::fflush(stdout);
    }

    // 2. Prefix-cache hit on a long shared history.
    if (history <= 0) return 0;
    std::printf("\nprefix cache: %lld-token history + %lld new tokens\n", (long long)history, (long long)suffix);
    const auto hist = make_prompt(history, 7, c.vocab_size);
    auto full = hist;
    for (int32_t t : make_prompt(suffix, 8, c.vocab_size)) full.push_back(t);
    auto run_one = [&](runtime::Scheduler& s, const std::vector<int32_t>& prompt) {
      Session out;
      Waiter w;
      w.pending = 1;
      runtime::RequestParams p;
      p.prompt = prompt;
      p.max_tokens = 1;
      p.stop_at_eos = false;
      s.submit(p, callbacks(out, w));
      w.wait();
      return out;
    };
    runtime::SchedulerOptions o;
    o.max_active = 1;
    o.max_context = history + suffix + 16;
    o.prefix_cache_bytes = 0;
    Session miss;
    {
      runtime::Scheduler s(*model, o);
      miss = run_one(s, full);
    }
    o.prefix_cache_bytes = 1ll << 30;
    runtime::Scheduler s(*model, o);
    const Session warm = run_one(s, hist);  // an earlier turn leaves its prompt-end snapshot
    const Session hit = run_one(s, full);
    const auto m = s.metrics();
    std::printf("miss: prefill %.3f s (%lld tokens, %.1f tok/s)\n", miss.stats.prefill_seconds,
                (long long)miss.stats.prompt_tokens, double(miss.stats.prompt_tokens) / miss.stats.prefill_seconds);
    std::printf("hit:  prefill %.3f s (%lld cached, %lld computed)\n", hit.stats.prefill_seconds,
                (long long)hit.stats.cached_tokens, (long long)(hit.stats.prompt_tokens - hit.stats.cached_tokens));
    std::printf("saved: %.3f s (%.1fx faster time to first token); cache %lld entries, %.2f MB; "
                "first token %s\n",
                miss.stats.prefill_seconds - hit.stats.prefill_seconds,
                miss.stats.prefill_seconds / std::max(1e-9, hit.stats.prefill_seconds), (long long)m.cache_entries,
                double(m.cache_bytes) / 1e6, miss.tokens == hit.tokens ? "identical" : "DIFFERENT");
    (void)warm;
    return miss.tokens == hit.tokens ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
