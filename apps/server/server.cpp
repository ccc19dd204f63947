#include "server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>

#include "core/error.h"
#include "output.h"

namespace dsv4::server {

namespace {

using Clock = std::chrono::steady_clock;

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Api api_for_path(const std::string& path) {
  if (path.rfind("/v1/messages", 0) == 0) return Api::Anthropic;
  if (path.rfind("/api/", 0) == 0) return Api::OllamaChat;
  return Api::OpenAIChat;
}

// Tokens of one request, filled by the backend's worker thread.
struct Gen {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<runtime::TokenEvent> events;
  bool done = false;
  runtime::RequestStats stats;
  std::atomic<bool> abandon{false};
};

}  // namespace

struct Server::Impl {
  Backend& backend;
  const tok::Tokenizer& tok;
  ServerOptions opt;
  httplib::Server http;
  int bound_port = -1;
  Clock::time_point started = Clock::now();

  // Metrics.
  std::mutex metrics_mu;
  std::map<std::pair<std::string, int>, int64_t> http_counts;
  std::atomic<int64_t> in_flight{0}, disconnects{0}, rejected{0}, stop_string_hits{0};
  std::atomic<int64_t> seq{0};
  std::atomic<bool> stopping{false};  // shutting down: running generations are cancelled
  double last_prefill_tps = 0, last_decode_tps = 0;

  Impl(Backend& b, const tok::Tokenizer& t, ServerOptions o) : backend(b), tok(t), opt(std::move(o)) {}

  void send_error(httplib::Response& res, Api api, const ApiError& e) {
    if (opt.log_requests && e.status != 404 && e.status != 401)
      std::fprintf(stderr, "[serve] refused %d: %s\n", e.status, e.what());
    res.status = e.status;
    res.set_content(dump(error_body(api, e)), "application/json");
  }

  // Known endpoints keep their name; anything else counts as "other" (bounded label set).
  void count(const std::string& endpoint, int status) {
    static const char* kKnown[] = {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages",
                                   "/v1/messages/count_tokens", "/v1/models", "/api/chat", "/api/generate",
                                   "/api/tags", "/api/show", "/api/version", "/api/ps", "/metrics", "/health", "/"};
    std::string name = "other";
    for (const char* k : kKnown)
      if (endpoint == k) name = k;
    std::lock_guard<std::mutex> lk(metrics_mu);
    http_counts[{name, status}]++;
  }

  bool authorized(const httplib::Request& req) const {
    if (opt.api_key.empty()) return true;
    auto eq = [&](const std::string& s) {
      if (s.size() != opt.api_key.size()) return false;
      unsigned char d = 0;
      for (size_t i = 0; i < s.size(); ++i) d |= (unsigned char)(s[i] ^ opt.api_key[i]);
      return d == 0;
    };
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && eq(auth.substr(7))) return true;
    if (req.has_header("x-api-key") && eq(req.get_header_value("x-api-key"))) return true;
    return false;
  }

  // ------------------------------------------------------------ prompt

  std::vector<int32_t> tokenize(const GenRequest& r, bool& thinking, std::string* prompt_text) {
    std::vector<int32_t> ids;
    thinking = false;
    try {
      if (!r.is_chat) {
        if (!r.prompt_ids.empty()) {
          for (int32_t id : r.prompt_ids)
            if (id < 0 || id >= tok.vocab_size() || !tok.has_token(id))
              throw bad_request("'prompt' token id " + std::to_string(id) + " is not in the vocabulary", "prompt");
          if (prompt_text) *prompt_text = tok.decode(r.prompt_ids);
          return r.prompt_ids;
        }
        if (auto bos = tok.bos_id(); bos && r.raw_prompt.rfind(std::string(chat::kBos), 0) != 0) ids.push_back(*bos);
        tok.encode_into(r.raw_prompt, r.raw_special, ids);
        if (prompt_text) *prompt_text = r.raw_prompt;
        return ids;
      }
      const auto segs = render_prompt(r);
      for (const auto& s : segs) {
        if (s.special) {
          if (auto id = tok.token_id(s.text)) {
            ids.push_back(*id);
            continue;
          }
          tok.encode_into(s.text, true, ids);
        } else {
          tok.encode_into(s.text, false, ids);
        }
        if (prompt_text) *prompt_text += s.text;
      }
      if (!segs.empty()) {
        const std::string& last = segs.back().text;
        const auto ts = chat::kThinkStart;
        thinking = last.size() >= ts.size() && last.compare(last.size() - ts.size(), ts.size(), ts) == 0;
      }
    } catch (const ApiError&) {
      throw;
    } catch (const dsv4::Error& e) {
      throw bad_request(std::string("cannot encode the prompt: ") + e.what());
    }
    return ids;
  }

  // ------------------------------------------------------------ one generation

  struct Run {
    Impl& srv;
    GenRequest req;
    std::string log_id;
    std::shared_ptr<Gen> gen = std::make_shared<Gen>();
    uint64_t sched_id = 0;
    bool submitted = false, finished = false, thinking = false;
    std::unique_ptr<ResponseWriter> writer;
    std::unique_ptr<TextPipeline> pipe;
    chat::ParsedMessage msg;
    json logprobs_all = json::array();
    Outcome out;
    int64_t tokens_seen = 0;
    bool reasoning_done = false;
    Clock::time_point t0 = Clock::now();

    Run(Impl& s, GenRequest r) : srv(s), req(std::move(r)) { srv.in_flight++; }
    ~Run() {
      if (submitted && !finished) {
        gen->abandon = true;
        srv.backend.cancel(sched_id);
      }
      srv.in_flight--;
    }

    json lp_entry(int32_t id, float lp) {
      std::string t = srv.tok.token_text(id);
      json bytes = json::array();
      for (unsigned char c : t) bytes.push_back(int(c));
      return json{{"token", t}, {"logprob", lp}, {"bytes", bytes}};
    }

    // Waits for tokens; returns false when `write` failed (client gone).
    // streaming: deltas are written as they come; otherwise only a heartbeat (a JSON-neutral
    // space) is written each second so a client that went away is noticed and cancelled.
    bool drive(const std::function<bool(const std::string&)>& write, bool streaming) {
      auto last_write = Clock::now();
      auto heartbeat = [&]() {
        if (!write || secs_since(last_write) < 1.0) return true;
        last_write = Clock::now();
        const std::string ka = streaming ? writer->stream_keepalive() : std::string(" ");
        return ka.empty() || write(ka);
      };
      while (true) {
        if (srv.stopping) return false;
        std::deque<runtime::TokenEvent> evs;
        bool done = false;
        {
          std::unique_lock<std::mutex> lk(gen->mu);
          gen->cv.wait_for(lk, std::chrono::seconds(1), [&] { return gen->done || !gen->events.empty(); });
          evs.swap(gen->events);
          done = gen->done;
          if (done) out_stats(gen->stats);
        }
        if (evs.empty() && !done) {
          if (!heartbeat()) return false;
          continue;
        }
        chat::ParseDelta acc;
        json lp = json::array();
        for (const auto& ev : evs) {
          if (pipe->stopped()) break;
          ++tokens_seen;
          if (thinking && !reasoning_done) ++out.reasoning_tokens;
          chat::ParseDelta d = pipe->push_token(ev.token);
          merge(acc, d);
          if (d.reasoning_ended) reasoning_done = true;
          if (req.logprobs) {
            json e = lp_entry(ev.token, ev.logprob);
            json top = json::array();
            for (const auto& [tid, tlp] : ev.top) top.push_back(lp_entry(tid, tlp));
            e["top_logprobs"] = top;
            lp.push_back(e);
          }
          if (pipe->stopped()) {
            out.stop_sequence = pipe->stop_hit();
            srv.stop_string_hits++;
            srv.backend.cancel(sched_id);
          }
        }
        if (done) {
          chat::ParseDelta d = pipe->finish();
          merge(acc, d);
        }
        msg.append(acc);
        if (streaming) {
          const std::string s = writer->stream_delta(acc, lp);
          if (!s.empty()) {
            if (!write(s)) return false;
            last_write = Clock::now();
          } else if (!heartbeat()) {
            return false;
          }
        } else {
          for (auto& e : lp) logprobs_all.push_back(std::move(e));
          if (!done && !heartbeat()) return false;
        }
        if (done) break;
      }
      finished = true;
      finalize();
      return true;
    }

    static void merge(chat::ParseDelta& a, chat::ParseDelta& b) {
      a.content += b.content;
      a.reasoning += b.reasoning;
      for (auto& c : b.tool_calls) a.tool_calls.push_back(std::move(c));
      for (auto& i : b.issues) a.issues.push_back(std::move(i));
      a.reasoning_ended |= b.reasoning_ended;
      a.eos |= b.eos;
    }

    void out_stats(const runtime::RequestStats& st) {
      out.prompt_tokens = st.prompt_tokens;
      out.cached_tokens = st.cached_tokens;
      out.completion_tokens = std::max<int64_t>(st.completion_tokens, 0);
      out.queue_s = st.queue_seconds;
      out.prefill_s = st.prefill_seconds;
      out.decode_s = st.decode_seconds;
      switch (st.finish) {
        case runtime::FinishReason::kLength: out.finish = Finish::Length; break;
        case runtime::FinishReason::kCancelled: out.finish = Finish::Cancelled; break;
        case runtime::FinishReason::kError:
          out.finish = Finish::Error;
          out.error = st.error.empty() ? "generation failed" : st.error;
          break;
        default: out.finish = Finish::Eos; break;
      }
    }

    void finalize() {
      if (pipe->stopped()) out.finish = Finish::StopString;
      if (out.finish == Finish::Eos && !msg.tool_calls.empty()) out.finish = Finish::ToolCalls;
      if (out.completion_tokens == 0) out.completion_tokens = tokens_seen;
      if (out.prompt_tokens == 0) out.prompt_tokens = prompt_size;
      out.total_s = secs_since(t0);
      const double ptps = out.prefill_s > 0 ? double(out.prompt_tokens - out.cached_tokens) / out.prefill_s : 0;
      const double dtps = out.decode_s > 0 && out.completion_tokens > 1 ? double(out.completion_tokens - 1) / out.decode_s : 0;
      {
        std::lock_guard<std::mutex> lk(srv.metrics_mu);
        if (ptps > 0) srv.last_prefill_tps = ptps;
        if (dtps > 0) srv.last_decode_tps = dtps;
      }
      if (srv.opt.log_requests)
        std::fprintf(stderr,
                     "[serve] %s %s in=%lld cached=%lld out=%lld prefill=%.1f tok/s decode=%.1f tok/s "
                     "queue=%.3fs total=%.3fs finish=%s%s\n",
                     log_id.c_str(), endpoint.c_str(), (long long)out.prompt_tokens, (long long)out.cached_tokens,
                     (long long)out.completion_tokens, ptps, dtps, out.queue_s, out.total_s,
                     out.finish == Finish::StopString ? "stop_string" : openai_finish(out.finish).c_str(),
                     msg.has_errors() ? " (malformed tool-call markup)" : "");
    }

    int64_t prompt_size = 0;
    std::string endpoint;
  };

  // Parses, tokenizes and submits; throws ApiError.
  std::shared_ptr<Run> start(Api api, const httplib::Request& hreq) {
    GenRequest r = parse_request(api, hreq.body, opt.parse);
    auto run = std::make_shared<Run>(*this, std::move(r));
    GenRequest& req = run->req;
    run->endpoint = hreq.path;
    std::string prompt_text;
    std::vector<int32_t> ids = tokenize(req, run->thinking, req.echo ? &prompt_text : nullptr);
    const int64_t ctx = backend.max_context();
    const int64_t max_prompt = opt.max_prompt_tokens > 0 ? std::min(opt.max_prompt_tokens, ctx) : ctx;
    if (ids.empty()) throw bad_request("the prompt is empty");
    if (int64_t(ids.size()) >= max_prompt)
      throw ApiError(400, "invalid_request_error",
                     "the prompt has " + std::to_string(ids.size()) + " tokens; this server accepts at most " +
                         std::to_string(max_prompt - 1) + " (context " + std::to_string(ctx) + ")",
                     "messages", "context_length_exceeded");
    int64_t max_tokens = ctx - int64_t(ids.size());
    if (opt.max_tokens_cap > 0) max_tokens = std::min(max_tokens, opt.max_tokens_cap);
    if (req.max_tokens > 0) max_tokens = std::min(max_tokens, req.max_tokens);
    run->prompt_size = int64_t(ids.size());
    run->log_id = "req-" + std::to_string(++seq);

    ResponseMeta meta;
    meta.model = req.model.empty() && !opt.parse.model_names.empty() ? opt.parse.model_names.front() : req.model;
    meta.created = unix_now();
    meta.prompt_tokens = int64_t(ids.size());
    meta.thinking = run->thinking;
    meta.echo_text = prompt_text;
    switch (api) {
      case Api::OpenAIChat: meta.id = random_id("chatcmpl-", 29); break;
      case Api::OpenAICompletion: meta.id = random_id("cmpl-", 29); break;
      case Api::OpenAIResponses: meta.id = random_id("resp_"); break;
      default: meta.id = random_id("msg_"); break;
    }
    run->writer = make_writer(req, meta);
    chat::ParseOptions popt;
    popt.variant = req.chat_options.variant;
    popt.thinking = run->thinking;
    popt.tools_enabled = req.tools_enabled;
    run->pipe = std::make_unique<TextPipeline>(&tok, popt, req.stop, !req.is_chat);

    runtime::RequestParams p;
    p.prompt = std::move(ids);
    p.max_tokens = max_tokens;
    p.sampler.temperature = req.temperature;
    p.sampler.top_p = req.top_p;
    p.sampler.seed = req.seed ? *req.seed : uint64_t(std::random_device{}()) << 32 ^ uint64_t(std::random_device{}());
    p.stop_at_eos = true;
    p.top_logprobs = req.logprobs ? std::max<int64_t>(req.top_logprobs, 1) : 0;
    p.id = run->log_id;
    if (req.logprobs && req.top_logprobs == 0) p.top_logprobs = 1;

    const auto m = backend.metrics();
    if (m.requests_queued >= backend.max_queue()) {
      rejected++;
      throw ApiError(429, "rate_limit_error", "the request queue is full (" + std::to_string(backend.max_queue()) +
                                                  " waiting); retry later");
    }
    std::shared_ptr<Gen> g = run->gen;
    runtime::RequestCallbacks cb;
    cb.on_token = [g](const runtime::TokenEvent& ev) {
      if (g->abandon) return false;
      {
        std::lock_guard<std::mutex> lk(g->mu);
        g->events.push_back(ev);
      }
      g->cv.notify_one();
      return true;
    };
    cb.on_done = [g](const runtime::RequestStats& st) {
      {
        std::lock_guard<std::mutex> lk(g->mu);
        g->stats = st;
        g->done = true;
      }
      g->cv.notify_one();
    };
    try {
      run->sched_id = backend.submit(std::move(p), std::move(cb));
    } catch (const dsv4::Error& e) {
      const std::string what = e.what();
      rejected++;
      if (what.find("queue") != std::string::npos) throw ApiError(429, "rate_limit_error", what);
      throw ApiError(400, "invalid_request_error", what);
    }
    run->submitted = true;
    return run;
  }

  void handle_generate(Api api, const httplib::Request& hreq, httplib::Response& res) {
    if (api == Api::OllamaChat || api == Api::OllamaGenerate) {
      // Ollama clients preload a model with an empty prompt / message list: answer at once.
      try {
        json b = json::parse(hreq.body);
        const bool empty = api == Api::OllamaChat
                               ? b.is_object() && b.contains("messages") && b["messages"].is_array() && b["messages"].empty()
                               : b.is_object() && (!b.contains("prompt") || (b["prompt"].is_string() && b["prompt"].get<std::string>().empty())) &&
                                     !b.contains("system");
        if (empty) {
          // Validates the model name (400 when missing, 404 when unknown).
          parse_request(Api::OllamaChat,
                        dump(json{{"model", b.contains("model") ? b["model"] : json()},
                                  {"messages", json::array({json{{"role", "user"}, {"content", ""}}})}}),
                        opt.parse);
          json out = {{"model", b["model"]}, {"created_at", iso_now()}, {"done", true}, {"done_reason", "load"}};
          if (api == Api::OllamaChat) out["message"] = {{"role", "assistant"}, {"content", ""}};
          else out["response"] = "";
          res.set_content(dump(out) + "\n", "application/json");
          count(hreq.path, 200);
          return;
        }
      } catch (const ApiError& e) {
        send_error(res, api, e);
        count(hreq.path, e.status);
        return;
      } catch (const std::exception&) {
        // not JSON: the regular path reports it
      }
    }
    std::shared_ptr<Run> run;
    try {
      run = start(api, hreq);
    } catch (const ApiError& e) {
      send_error(res, api, e);
      count(hreq.path, e.status);
      return;
    }
    count(hreq.path, 200);
    Impl* self = this;
    if (!run->req.stream) {
      // Chunked, so that a heartbeat can detect a client that went away (the status is fixed
      // at 200 once the headers are out; a generation failure becomes an error body).
      res.set_chunked_content_provider(
          "application/json",
          [run, self, api](size_t, httplib::DataSink& sink) {
            auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
            if (!run->drive(write, false)) {
              self->disconnects++;
              run->gen->abandon = true;
              self->backend.cancel(run->sched_id);
              return false;
            }
            json body = run->out.finish == Finish::Error
                            ? error_body(api, ApiError(500, "server_error", run->out.error))
                            : run->writer->final_body(run->msg, run->out, run->logprobs_all);
            write(dump(body));
            sink.done();
            return true;
          },
          [run](bool) {});
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        run->writer->stream_content_type(),
        [run, self](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          const std::string begin = run->writer->stream_begin();
          if (!begin.empty() && !write(begin)) {
            self->disconnects++;
            return false;
          }
          if (!run->drive(write, true)) {
            self->disconnects++;
            run->gen->abandon = true;
            self->backend.cancel(run->sched_id);
            return false;
          }
          const std::string end = run->out.finish == Finish::Error ? run->writer->stream_error(run->out.error)
                                                                   : run->writer->stream_end(run->out);
          write(end);
          sink.done();
          return true;
        },
        [run](bool) {});
  }

  // ------------------------------------------------------------ other endpoints

  std::string model_name() const {
    return opt.parse.model_names.empty() ? std::string("dsv4") : opt.parse.model_names.front();
  }

  void handle_count_tokens(const httplib::Request& hreq, httplib::Response& res) {
    try {
      GenRequest r = parse_request(Api::AnthropicCount, hreq.body, opt.parse);
      bool thinking = false;
      auto ids = tokenize(r, thinking, nullptr);
      res.set_content(dump(json{{"input_tokens", ids.size()}}), "application/json");
      count(hreq.path, 200);
    } catch (const ApiError& e) {
      send_error(res, Api::Anthropic, e);
      count(hreq.path, e.status);
    }
  }

  std::string metrics_text() {
    const auto m = backend.metrics();
    std::string s;
    auto metric = [&](const char* name, const char* type, const char* help, double v) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.10g\n", name, help, name, type, name, v);
      s += buf;
    };
    metric("dsv4_requests_total", "counter", "Requests accepted by the scheduler.", double(m.requests_total));
    metric("dsv4_requests_active", "gauge", "Sequences decoding now (resident sessions in use).", double(m.requests_active));
    metric("dsv4_requests_queued", "gauge", "Requests waiting for a session.", double(m.requests_queued));
    metric("dsv4_sessions_max", "gauge", "Resident sessions (--parallel).", double(backend.max_active()));
    metric("dsv4_http_generations_in_flight", "gauge", "HTTP generation requests being served.", double(in_flight.load()));
    metric("dsv4_prompt_tokens_total", "counter", "Prompt tokens submitted.", double(m.prompt_tokens_total));
    metric("dsv4_cached_prompt_tokens_total", "counter", "Prompt tokens served from the prefix cache.", double(m.cached_tokens_total));
    metric("dsv4_completion_tokens_total", "counter", "Tokens generated.", double(m.completion_tokens_total));
    metric("dsv4_prefix_cache_hits_total", "counter", "Prefix cache hits.", double(m.cache_hits));
    metric("dsv4_prefix_cache_misses_total", "counter", "Prefix cache misses.", double(m.cache_misses));
    metric("dsv4_prefix_cache_bytes", "gauge", "Bytes held by the prefix cache.", double(m.cache_bytes));
    metric("dsv4_prefix_cache_entries", "gauge", "Entries in the prefix cache.", double(m.cache_entries));
    metric("dsv4_decode_tokens_per_second", "gauge", "Recent aggregate decode speed.", m.decode_tokens_per_second);
    double ptps, dtps;
    {
      std::lock_guard<std::mutex> lk(metrics_mu);
      ptps = last_prefill_tps;
      dtps = last_decode_tps;
    }
    metric("dsv4_last_request_prefill_tokens_per_second", "gauge", "Prefill speed of the last finished request.", ptps);
    metric("dsv4_last_request_decode_tokens_per_second", "gauge", "Decode speed of the last finished request.", dtps);
    metric("dsv4_client_disconnects_total", "counter", "Streams cancelled because the client went away.", double(disconnects.load()));
    metric("dsv4_requests_rejected_total", "counter", "Requests refused (queue full or invalid for the scheduler).", double(rejected.load()));
    metric("dsv4_stop_string_hits_total", "counter", "Generations ended by a stop string.", double(stop_string_hits.load()));
    metric("dsv4_uptime_seconds", "gauge", "Seconds since the server started.", secs_since(started));
    s += "# HELP dsv4_http_responses_total HTTP responses by endpoint and status.\n# TYPE dsv4_http_responses_total counter\n";
    std::lock_guard<std::mutex> lk(metrics_mu);
    for (const auto& [k, v] : http_counts)
      s += "dsv4_http_responses_total{endpoint=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
           std::to_string(v) + "\n";
    return s;
  }

  void setup() {
    const int threads = opt.threads > 0 ? opt.threads
                                        : int(std::max<int64_t>(16, backend.max_active() + backend.max_queue() + 8));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    http.set_payload_max_length(opt.max_body_bytes);
    http.set_keep_alive_max_count(1000);
    http.set_read_timeout(60, 0);
    http.set_write_timeout(30, 0);
    // CORS only for the origins named by --cors (the page at / is same-origin): a web page
    // the user happens to visit must not be able to read this server's answers.
    http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (opt.cors_origins.empty() || !req.has_header("Origin")) return;
      const std::string origin = req.get_header_value("Origin");
      bool ok = false;
      for (const auto& o : opt.cors_origins) ok |= o == "*" || o == origin;
      if (!ok) return;
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
      res.set_header("Access-Control-Allow-Headers",
                     "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta");
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    });

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "OPTIONS" || req.path == "/health" || req.path == "/" || req.path == "/index.html")
        return httplib::Server::HandlerResponse::Unhandled;
      if (!authorized(req)) {
        send_error(res, api_for_path(req.path),
                   ApiError(401, "authentication_error", "missing or invalid API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')",
                            {}, "invalid_api_key"));
        count(req.path, 401);
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const Api api = api_for_path(req.path);
      if (res.status == 413)
        send_error(res, api, ApiError(413, "invalid_request_error",
                                      "request body too large (limit " + std::to_string(opt.max_body_bytes) + " bytes)"));
      else if (res.status == 404)
        send_error(res, api, ApiError(404, "not_found_error", "no such endpoint: " + req.method + " " + req.path));
      else if (res.status == 405)
        send_error(res, api, ApiError(405, "invalid_request_error", "method not allowed"));
      else
        send_error(res, api, ApiError(res.status, "invalid_request_error", "bad request"));
      count(req.path, res.status);
    });
    http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      std::fprintf(stderr, "[serve] internal error on %s: %s\n", req.path.c_str(), what.c_str());
      send_error(res, api_for_path(req.path), ApiError(500, "server_error", "internal error: " + what));
      count(req.path, 500);
    });

    http.Options(".*", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(chat_page_html(), "text/html; charset=utf-8");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto m = backend.metrics();
      res.set_content(dump(json{{"status", "ok"},
                                {"model", model_name()},
                                {"sessions_active", m.requests_active},
                                {"sessions_max", backend.max_active()},
                                {"queued", m.requests_queued}}),
                      "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    auto model_obj = [this](const std::string& id) {
      return json{{"id", id}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "dsv4"},
                  {"context_length", backend.max_context()}};
    };
    http.Get("/v1/models", [this, model_obj](const httplib::Request& req, httplib::Response& res) {
      json data = json::array();
      for (const auto& n : opt.parse.model_names) data.push_back(model_obj(n));
      res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
      count(req.path, 200);
    });
    http.Get(R"(/v1/models/(.+))", [this, model_obj](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1];
      for (const auto& n : opt.parse.model_names)
        if (n == id) {
          res.set_content(dump(model_obj(id)), "application/json");
          return;
        }
      send_error(res, Api::OpenAIChat, ApiError(404, "invalid_request_error", "model '" + id + "' does not exist", "model", "model_not_found"));
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::OpenAIChat, q, r); });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::OpenAICompletion, q, r); });
    http.Post("/v1/responses", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::OpenAIResponses, q, r); });
    http.Post("/v1/messages", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::Anthropic, q, r); });
    http.Post("/v1/messages/count_tokens", [this](const httplib::Request& q, httplib::Response& r) { handle_count_tokens(q, r); });
    http.Post("/api/chat", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::OllamaChat, q, r); });
    http.Post("/api/generate", [this](const httplib::Request& q, httplib::Response& r) { handle_generate(Api::OllamaGenerate, q, r); });
    http.Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(json{{"version", "0.6.0"}}), "application/json");
    });
    auto ollama_model = [this](const std::string& name) {
      return json{{"name", name},
                  {"model", name},
                  {"modified_at", iso_now()},
                  {"size", opt.model_bytes},
                  {"digest", "sha256:0000000000000000000000000000000000000000000000000000000000000000"},
                  {"details", {{"parent_model", ""},
                               {"format", "safetensors"},
                               {"family", "deepseek_v4"},
                               {"families", json::array({"deepseek_v4"})},
                               {"parameter_size", ""},
                               {"quantization_level", ""}}}};
    };
    http.Get("/api/tags", [this, ollama_model](const httplib::Request&, httplib::Response& res) {
      json models = json::array();
      for (const auto& n : opt.parse.model_names) models.push_back(ollama_model(n));
      res.set_content(dump(json{{"models", models}}), "application/json");
    });
    http.Get("/api/ps", [this, ollama_model](const httplib::Request&, httplib::Response& res) {
      json models = json::array();
      for (const auto& n : opt.parse.model_names) models.push_back(ollama_model(n));
      res.set_content(dump(json{{"models", models}}), "application/json");
    });
    http.Post("/api/show", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(json{{"modelfile", ""},
                                {"parameters", ""},
                                {"template", ""},
                                {"details", {{"format", "safetensors"}, {"family", "deepseek_v4"}}},
                                {"model_info", {{"general.architecture", "deepseek_v4"},
                                                {"deepseek_v4.context_length", backend.max_context()}}},
                                {"capabilities", json::array({"completion", "tools", "thinking"})}}),
                      "application/json");
    });
  }
};

Server::Server(Backend& backend, const tok::Tokenizer& tok, ServerOptions opt)
    : impl_(std::make_unique<Impl>(backend, tok, std::move(opt))) {
  impl_->setup();
}

Server::~Server() { stop(); }

bool Server::bind() {
  if (impl_->opt.port == 0) {
    impl_->bound_port = impl_->http.bind_to_any_port(impl_->opt.host);
    return impl_->bound_port > 0;
  }
  if (!impl_->http.bind_to_port(impl_->opt.host, impl_->opt.port)) return false;
  impl_->bound_port = impl_->opt.port;
  return true;
}

int Server::port() const { return impl_->bound_port; }
void Server::run() { impl_->http.listen_after_bind(); }
void Server::stop() {
  impl_->stopping = true;
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace dsv4::server
