// dsv4 serve: an HTTP server speaking the OpenAI, Anthropic and Ollama APIs over the
// continuous-batching scheduler (apps/server, docs/server.md).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <unistd.h>

#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "core/error.h"
#include "runtime/scheduler.h"
#include "server.h"

namespace dsv4::cli {

namespace {

int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long long pages = 0, rss = 0;
  f >> pages >> rss;
  return int64_t(rss) * sysconf(_SC_PAGESIZE);
}

int64_t checkpoint_bytes(const std::string& dir) {
  int64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") n += int64_t(e.file_size(ec));
  return n;
}

// Loads the model while drawing a progress bar (resident memory against checkpoint size).
std::unique_ptr<model::Model> load_with_progress(const std::string& dir, const ModelLoadOptions& load) {
  const int64_t total = std::max<int64_t>(checkpoint_bytes(dir), 1);
  const int64_t rss0 = rss_bytes();
  const bool tty = isatty(2);
  std::atomic<bool> done{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread bar([&] {
    while (!done) {
      if (tty) {
        const double frac = std::clamp(double(rss_bytes() - rss0) / double(total), 0.0, 0.99);
        const int w = 30, fill = int(frac * w);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%  %.1f s", fill, "##############################", w - fill, "",
                     int(frac * 100), s);
      }
      for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::unique_ptr<model::Model> m;
  try {
    m = model::Model::load(dir, load.backend, load.threads, load.residency, load.numerics);
  } catch (...) {
    done = true;
    bar.join();
    if (tty) std::fprintf(stderr, "\n");
    throw;
  }
  done = true;
  bar.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const char* where = io::residency_name(m->weights().checkpoint->residency());
  if (tty) std::fprintf(stderr, "\rloading [##############################] 100%%  %.1f s (weights: %s)\n", s, where);
  else std::fprintf(stderr, "loaded %s in %.1f s (weights: %s)\n", dir.c_str(), s, where);
  return m;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args args("serve", "Serve the model over HTTP: OpenAI (/v1/chat/completions, /v1/completions, /v1/responses),\n"
                     "Anthropic (/v1/messages) and Ollama (/api/chat, /api/generate) APIs, /metrics, and a chat\n"
                     "page at /. See docs/server.md.");
  args.option("model", "DIR", "checkpoint directory (with tokenizer.json)", std::nullopt, true)
      .option("host", "ADDR", "address to listen on", "127.0.0.1")
      .option("port", "N", "port (0 = any free port)", "8080")
      .option("api-key", "KEY", "require this key (Authorization: Bearer KEY or x-api-key: KEY)")
      .option("model-name", "NAME", "model name clients use (default: the directory name)")
      .option("alias", "NAMES", "extra accepted model names, comma-separated")
      .option("parallel", "N", "resident sessions decoding at once", "4")
      .option("ctx", "N", "context size per session (prompt + output tokens)", "4096")
      .option("queue", "N", "waiting requests beyond which new ones get 429", "64")
      .option("max-body", "BYTES", "largest request body", "8388608")
      .option("max-prompt-tokens", "N", "longest prompt (0 = the context size)", "0")
      .option("max-tokens", "N", "cap on generated tokens per request (0 = the context size)", "0")
      .option("prefill-chunk", "N", "prompt tokens per session per step", "256")
      .option("batch-tokens", "N", "rows per batched forward step", "512")
      .option("prefix-cache-mb", "MB", "prefix cache budget (0 = off)", "256")
      .option("temperature", "T", "default sampling temperature when a request sets none", "1")
      .option("top-p", "P", "default top-p when a request sets none", "1")
      .option("threads", "N", "HTTP worker threads (0 = parallel + queue + 8)", "0")
      .option("variant", "V", "chat encoding: v4 or v4.1 (default: detected from the checkpoint)")
      .option("cors", "ORIGINS", "origins allowed to call the API from a browser, comma-separated ('*' = any)")
      .option("script", "FILE", "testing: play back scripted output instead of running the model")
      .flag("quiet", "no log line per request");
  const ModelLoadFlags load_flags{.backend = true, .kernel_threads = false};  // --threads: HTTP workers
  add_model_load_options(args, load_flags);
  if (!args.parse(argc, argv)) return 0;

  const std::string dir = args.get("model");
  const ModelLoadOptions load = model_load_options(args, load_flags);
  const std::string host = args.get("host");
  std::string api_key = args.has("api-key") ? args.get("api-key") : "";
  if (!is_loopback(host) && api_key.empty())
    std::fprintf(stderr, "warning: listening on %s without --api-key: anyone who can reach it can use the model\n",
                 host.c_str());

  server::ServerOptions so;
  so.host = host;
  so.port = int(args.get_int("port"));
  check(so.port >= 0 && so.port < 65536, "--port must be between 0 and 65535");
  so.api_key = api_key;
  so.max_body_bytes = size_t(std::max<int64_t>(args.get_int("max-body"), 1024));
  so.max_prompt_tokens = args.get_int("max-prompt-tokens");
  so.max_tokens_cap = args.get_int("max-tokens");
  so.threads = int(args.get_int("threads"));
  so.log_requests = !args.get_flag("quiet");
  so.model_dir = dir;
  so.model_bytes = checkpoint_bytes(dir);
  std::string name = args.has("model-name") ? args.get("model-name")
                                            : std::filesystem::path(dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = std::filesystem::absolute(dir).lexically_normal().parent_path().filename().string();
  if (name.empty()) name = "dsv4";
  so.parse.model_names.push_back(name);
  if (args.has("alias")) {
    std::string a = args.get("alias");
    size_t p = 0;
    while (p <= a.size()) {
      size_t q = a.find(',', p);
      if (q == std::string::npos) q = a.size();
      if (q > p) so.parse.model_names.push_back(a.substr(p, q - p));
      p = q + 1;
    }
  }
  if (args.has("cors")) {
    const std::string c = args.get("cors");
    size_t p = 0;
    while (p <= c.size()) {
      size_t q = c.find(',', p);
      if (q == std::string::npos) q = c.size();
      if (q > p) so.cors_origins.push_back(c.substr(p, q - p));
      p = q + 1;
    }
  }
  so.parse.variant = args.has("variant") ? chat::parse_variant(args.get("variant")) : chat::detect_variant(dir);
  so.parse.effort_style = chat::detect_v4_effort_style(dir);
  so.parse.default_temperature = args.get_double("temperature");
  so.parse.default_top_p = args.get_double("top-p");

  std::fprintf(stderr, "loading tokenizer from %s ...\n", dir.c_str());
  tok::Tokenizer tokenizer = tok::Tokenizer::load_from_dir(dir);

  runtime::SchedulerOptions sopt;
  sopt.max_active = args.get_int("parallel");
  sopt.max_queue = args.get_int("queue");
  sopt.max_context = args.get_int("ctx");
  sopt.prefill_chunk = args.get_int("prefill-chunk");
  sopt.max_batch_tokens = args.get_int("batch-tokens");
  sopt.prefix_cache_bytes = args.get_int("prefix-cache-mb") << 20;
  check(sopt.max_active >= 1, "--parallel must be at least 1");
  check(sopt.max_queue >= 0, "--queue must be at least 0");
  check(sopt.max_context >= 2, "--ctx must be at least 2");

  // Block the shutdown signals in every thread; one thread waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<model::Model> model;
  std::unique_ptr<runtime::Scheduler> scheduler;
  std::unique_ptr<server::Backend> backend;
  if (args.has("script")) {
    backend = std::make_unique<server::ScriptedBackend>(tokenizer, args.get("script"), sopt.max_context);
  } else {
    model = load_with_progress(dir, load);
    check(model->config().vocab_size >= tokenizer.vocab_size() || model->config().vocab_size > 0,
          "model has no vocabulary");
    if (model->config().vocab_size < tokenizer.vocab_size())
      std::fprintf(stderr, "warning: model vocab_size %lld < tokenizer vocabulary %d\n",
                   (long long)model->config().vocab_size, tokenizer.vocab_size());
    scheduler = std::make_unique<runtime::Scheduler>(*model, sopt);
    backend = std::make_unique<server::SchedulerBackend<runtime::Scheduler>>(*scheduler);
  }

  server::Server srv(*backend, tokenizer, so);
  check(srv.bind(), "cannot listen on " + host + ":" + std::to_string(so.port));
  std::thread sig_thread([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != 0) std::fprintf(stderr, "\nshutting down (signal %d)\n", sig);
    srv.stop();
  });
  std::fprintf(stderr, "dsv4 serve: model '%s' (%s), %lld sessions x %lld tokens, listening on http://%s:%d\n",
               name.c_str(), std::string(chat::variant_name(so.parse.variant)).c_str(), (long long)sopt.max_active,
               (long long)sopt.max_context, host.c_str(), srv.port());
  std::fflush(stderr);
  srv.run();
  // Wake the signal thread if the server stopped for another reason.
  pthread_kill(sig_thread.native_handle(), SIGTERM);
  sig_thread.join();
  return 0;
}

}  // namespace dsv4::cli
