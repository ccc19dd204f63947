#include "output.h"

#include <chrono>
#include <ctime>

#include "core/error.h"

namespace dsv4::server {

// ---------------------------------------------------------------- TextPipeline

TextPipeline::TextPipeline(const tok::Tokenizer* tok, chat::ParseOptions popt, std::vector<std::string> stops,
                           bool raw)
    : parser_(popt), stops_(std::move(stops)), raw_(raw) {
  if (tok) dec_.emplace(*tok, false);
}

void TextPipeline::feed(std::string_view s, chat::ParseDelta& d) {
  if (s.empty()) return;
  if (raw_) {
    d.content += s;
    return;
  }
  chat::ParseDelta x = parser_.push(s);
  d.content += x.content;
  d.reasoning += x.reasoning;
  for (auto& c : x.tool_calls) d.tool_calls.push_back(std::move(c));
  for (auto& i : x.issues) d.issues.push_back(std::move(i));
  d.reasoning_ended |= x.reasoning_ended;
  d.eos |= x.eos;
}

chat::ParseDelta TextPipeline::push_token(int32_t id) {
  if (!dec_ || finished_ || stopped()) return {};
  return push_text(dec_->push(id));
}

chat::ParseDelta TextPipeline::push_text(std::string_view text) {
  chat::ParseDelta d;
  if (finished_ || stopped()) return d;
  pending_ += text;
  if (stops_.empty()) {
    feed(pending_, d);
    pending_.clear();
    return d;
  }
  size_t best = std::string::npos;
  for (const auto& s : stops_) {
    const size_t p = pending_.find(s);
    if (p != std::string::npos && p < best) {
      best = p;
      stop_hit_ = s;
    }
  }
  if (best != std::string::npos) {
    feed(std::string_view(pending_).substr(0, best), d);
    pending_.clear();
    return d;
  }
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  feed(std::string_view(pending_).substr(0, pending_.size() - hold), d);
  pending_.erase(0, pending_.size() - hold);
  return d;
}

chat::ParseDelta TextPipeline::finish() {
  chat::ParseDelta d;
  if (finished_) return d;
  if (!stopped()) {
    if (dec_) pending_ += dec_->flush();
    feed(pending_, d);
  }
  pending_.clear();
  finished_ = true;
  if (!raw_) {
    chat::ParseDelta x = parser_.finish();
    d.content += x.content;
    d.reasoning += x.reasoning;
    for (auto& c : x.tool_calls) d.tool_calls.push_back(std::move(c));
    for (auto& i : x.issues) d.issues.push_back(std::move(i));
    d.reasoning_ended |= x.reasoning_ended;
    d.eos |= x.eos;
  }
  return d;
}

// ---------------------------------------------------------------- helpers

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }
std::string sse_event(const std::string& event, const json& j) {
  return "event: " + event + "\ndata: " + dump(j) + "\n\n";
}

std::string iso_now() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  const auto ns = duration_cast<nanoseconds>(now.time_since_epoch()).count() % 1000000000;
  char out[96];
  std::snprintf(out, sizeof out, "%s.%09lldZ", buf, (long long)ns);
  return out;
}

std::string openai_finish(Finish f) {
  switch (f) {
    case Finish::Length: return "length";
    case Finish::ToolCalls: return "tool_calls";
    case Finish::Error: return "error";
    default: return "stop";
  }
}

std::string anthropic_stop_reason(Finish f) {
  switch (f) {
    case Finish::Length: return "max_tokens";
    case Finish::ToolCalls: return "tool_use";
    case Finish::StopString: return "stop_sequence";
    default: return "end_turn";
  }
}

json error_body(Api api, const ApiError& e) {
  switch (api) {
    case Api::Anthropic:
    case Api::AnthropicCount: {
      std::string type = e.type;
      if (e.status == 401) type = "authentication_error";
      else if (e.status == 404) type = "not_found_error";
      else if (e.status == 413) type = "request_too_large";
      else if (e.status == 429) type = "rate_limit_error";
      else if (e.status == 503) type = "overloaded_error";
      else if (e.status >= 500) type = "api_error";
      else if (e.status == 400) type = "invalid_request_error";
      return json{{"type", "error"}, {"error", {{"type", type}, {"message", e.what()}}}};
    }
    case Api::OllamaChat:
    case Api::OllamaGenerate: return json{{"error", e.what()}};
    default: {
      json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
      if (!e.param.empty()) err["param"] = e.param;
      if (!e.code.empty()) err["code"] = e.code;
      return json{{"error", err}};
    }
  }
}

namespace {

json parse_args_object(const std::string& args) {
  try {
    json j = json::parse(args);
    if (j.is_object()) return j;
  } catch (...) {
  }
  return json::object();
}

void assign_ids(std::vector<chat::ToolCall>& calls, const char* prefix) {
  for (auto& c : calls)
    if (c.id.empty()) c.id = random_id(prefix);
}

json openai_usage(const Outcome& o, bool responses = false) {
  if (responses)
    return json{{"input_tokens", o.prompt_tokens},
                {"input_tokens_details", {{"cached_tokens", o.cached_tokens}}},
                {"output_tokens", o.completion_tokens},
                {"output_tokens_details", {{"reasoning_tokens", o.reasoning_tokens}}},
                {"total_tokens", o.prompt_tokens + o.completion_tokens}};
  return json{{"prompt_tokens", o.prompt_tokens},
              {"completion_tokens", o.completion_tokens},
              {"total_tokens", o.prompt_tokens + o.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}},
              {"completion_tokens_details", {{"reasoning_tokens", o.reasoning_tokens}}}};
}

// ---------------------------------------------------------------- OpenAI chat

class OpenAIChatWriter : public ResponseWriter {
 public:
  OpenAIChatWriter(const GenRequest& r, ResponseMeta m) : req_(r), meta_(std::move(m)) {}

  json chunk(json delta, const json& finish = nullptr, const json& logprobs = nullptr) {
    return json{{"id", meta_.id},
                {"object", "chat.completion.chunk"},
                {"created", meta_.created},
                {"model", meta_.model},
                {"system_fingerprint", "dsv4"},
                {"choices", json::array({json{{"index", 0},
                                              {"delta", std::move(delta)},
                                              {"logprobs", logprobs},
                                              {"finish_reason", finish}}})}};
  }
  std::string stream_begin() override {
    return sse(chunk(json{{"role", "assistant"}, {"content", ""}}));
  }
  std::string stream_delta(chat::ParseDelta& d, const json& lp) override {
    std::string out;
    json lpj = lp.is_array() && !lp.empty() ? json{{"content", lp}} : json(nullptr);
    if (!d.reasoning.empty()) {
      out += sse(chunk(json{{"reasoning_content", d.reasoning}}, nullptr, lpj));
      lpj = nullptr;
    }
    if (!d.content.empty()) {
      out += sse(chunk(json{{"content", d.content}}, nullptr, lpj));
      lpj = nullptr;
    }
    assign_ids(d.tool_calls, "call_");
    for (const auto& c : d.tool_calls) {
      json tc = {{"index", n_calls_++},
                 {"id", c.id},
                 {"type", "function"},
                 {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
      out += sse(chunk(json{{"tool_calls", json::array({tc})}}, nullptr, lpj));
      lpj = nullptr;
    }
    if (!lpj.is_null()) out += sse(chunk(json::object(), nullptr, lpj));
    return out;
  }
  std::string stream_end(const Outcome& o) override {
    std::string out = sse(chunk(json::object(), openai_finish(o.finish)));
    if (req_.include_usage) {
      json u = chunk(json::object());
      u["choices"] = json::array();
      u["usage"] = openai_usage(o);
      out += sse(u);
    }
    return out + "data: [DONE]\n\n";
  }
  std::string stream_error(const std::string& message) override {
    return sse(json{{"error", {{"message", message}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}}) +
           "data: [DONE]\n\n";
  }
  json final_body(chat::ParsedMessage& m, const Outcome& o, const json& lp) override {
    assign_ids(m.tool_calls, "call_");
    json msg = {{"role", "assistant"}, {"content", m.content}};
    if (m.content.empty() && !m.tool_calls.empty()) msg["content"] = nullptr;
    if (meta_.thinking) msg["reasoning_content"] = m.reasoning_content;
    if (!m.tool_calls.empty()) {
      json tcs = json::array();
      for (const auto& c : m.tool_calls)
        tcs.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      msg["tool_calls"] = tcs;
    }
    return json{{"id", meta_.id},
                {"object", "chat.completion"},
                {"created", meta_.created},
                {"model", meta_.model},
                {"system_fingerprint", "dsv4"},
                {"choices", json::array({json{{"index", 0},
                                              {"message", msg},
                                              {"logprobs", req_.logprobs ? json{{"content", lp}} : json(nullptr)},
                                              {"finish_reason", openai_finish(o.finish)}}})},
                {"usage", openai_usage(o)}};
  }

 private:
  const GenRequest& req_;
  ResponseMeta meta_;
  int n_calls_ = 0;
};

// ---------------------------------------------------------------- OpenAI completions

class OpenAICompletionWriter : public ResponseWriter {
 public:
  OpenAICompletionWriter(const GenRequest& r, ResponseMeta m) : req_(r), meta_(std::move(m)) {}
  json chunk(const std::string& text, const json& finish = nullptr, const json& lp = nullptr) {
    return json{{"id", meta_.id},
                {"object", "text_completion"},
                {"created", meta_.created},
                {"model", meta_.model},
                {"choices", json::array({json{{"text", text}, {"index", 0}, {"logprobs", lp}, {"finish_reason", finish}}})}};
  }
  static json legacy_lp(const json& lp) {
    if (!lp.is_array() || lp.empty()) return nullptr;
    json tokens = json::array(), lps = json::array(), tops = json::array();
    for (const auto& e : lp) {
      tokens.push_back(e["token"]);
      lps.push_back(e["logprob"]);
      json t = json::object();
      for (const auto& a : e["top_logprobs"]) t[a["token"].get<std::string>()] = a["logprob"];
      tops.push_back(t);
    }
    return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", json::array()}};
  }
  std::string stream_begin() override {
    return meta_.echo_text.empty() ? std::string() : sse(chunk(meta_.echo_text));
  }
  std::string stream_delta(chat::ParseDelta& d, const json& lp) override {
    std::string text = d.reasoning + d.content;
    if (text.empty() && (!lp.is_array() || lp.empty())) return {};
    return sse(chunk(text, nullptr, legacy_lp(lp)));
  }
  std::string stream_end(const Outcome& o) override {
    std::string out = sse(chunk("", openai_finish(o.finish)));
    if (req_.include_usage) {
      json u = chunk("");
      u["choices"] = json::array();
      u["usage"] = openai_usage(o);
      out += sse(u);
    }
    return out + "data: [DONE]\n\n";
  }
  std::string stream_error(const std::string& message) override {
    return sse(json{{"error", {{"message", message}, {"type", "server_error"}}}}) + "data: [DONE]\n\n";
  }
  json final_body(chat::ParsedMessage& m, const Outcome& o, const json& lp) override {
    json j = chunk(meta_.echo_text + m.reasoning_content + m.content, openai_finish(o.finish),
                   req_.logprobs ? legacy_lp(lp) : json(nullptr));
    j["usage"] = openai_usage(o);
    return j;
  }

 private:
  const GenRequest& req_;
  ResponseMeta meta_;
};

// ---------------------------------------------------------------- OpenAI responses

class OpenAIResponsesWriter : public ResponseWriter {
 public:
  OpenAIResponsesWriter(const GenRequest& r, ResponseMeta m) : req_(r), meta_(std::move(m)) {}

  json response(const std::string& status, const json& output, const Outcome* o) {
    json j = {{"id", meta_.id},
              {"object", "response"},
              {"created_at", meta_.created},
              {"status", status},
              {"error", nullptr},
              {"incomplete_details", nullptr},
              {"model", meta_.model},
              {"output", output},
              {"parallel_tool_calls", true},
              {"temperature", req_.temperature},
              {"top_p", req_.top_p},
              {"tool_choice", req_.tool_choice == "auto" || req_.tool_choice == "none" || req_.tool_choice == "required"
                                  ? json(req_.tool_choice)
                                  : json{{"type", "function"}, {"name", req_.tool_choice}}},
              {"tools", json::array()},
              {"usage", nullptr}};
    if (o) {
      j["usage"] = openai_usage(*o, true);
      if (o->finish == Finish::Length) {
        j["status"] = "incomplete";
        j["incomplete_details"] = {{"reason", "max_output_tokens"}};
      }
    }
    return j;
  }
  std::string ev(const std::string& type, json j) {
    json h = {{"type", type}, {"sequence_number", seq_++}};
    h.update(j);
    return sse_event(type, h);
  }
  // Raw chain of thought as reasoning_text content (as OpenAI serves open-weight models);
  // the summary stays empty.
  json reasoning_item(const std::string& id, const std::string& text, bool with_content = true) {
    json content = json::array();
    if (with_content) content.push_back({{"type", "reasoning_text"}, {"text", text}});
    return json{{"type", "reasoning"}, {"id", id}, {"summary", json::array()}, {"content", content}};
  }
  json message_item(const std::string& id, const std::string& text, const char* status) {
    return json{{"type", "message"},
                {"id", id},
                {"status", status},
                {"role", "assistant"},
                {"content", json::array({json{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}}})}};
  }
  json call_item(const chat::ToolCall& c) {
    return json{{"type", "function_call"},
                {"id", "fc_" + c.id.substr(c.id.find('_') + 1)},
                {"call_id", c.id},
                {"name", c.name},
                {"arguments", c.arguments},
                {"status", "completed"}};
  }

  std::string stream_begin() override {
    return ev("response.created", {{"response", response("in_progress", json::array(), nullptr)}}) +
           ev("response.in_progress", {{"response", response("in_progress", json::array(), nullptr)}});
  }
  std::string close_reasoning() {
    if (!in_reasoning_) return {};
    in_reasoning_ = false;
    const size_t idx = output_.size();
    json item = reasoning_item(reasoning_id_, reasoning_);
    output_.push_back(item);
    return ev("response.reasoning_text.done",
              {{"item_id", reasoning_id_}, {"output_index", idx}, {"content_index", 0}, {"text", reasoning_}}) +
           ev("response.content_part.done", {{"item_id", reasoning_id_}, {"output_index", idx}, {"content_index", 0},
                                             {"part", {{"type", "reasoning_text"}, {"text", reasoning_}}}}) +
           ev("response.output_item.done", {{"output_index", idx}, {"item", item}});
  }
  std::string close_text() {
    if (!in_text_) return {};
    in_text_ = false;
    const size_t idx = output_.size();
    json part = {{"type", "output_text"}, {"text", text_}, {"annotations", json::array()}};
    json item = message_item(msg_id_, text_, "completed");
    output_.push_back(item);
    return ev("response.output_text.done", {{"item_id", msg_id_}, {"output_index", idx}, {"content_index", 0}, {"text", text_}}) +
           ev("response.content_part.done", {{"item_id", msg_id_}, {"output_index", idx}, {"content_index", 0}, {"part", part}}) +
           ev("response.output_item.done", {{"output_index", idx}, {"item", item}});
  }
  std::string stream_delta(chat::ParseDelta& d, const json&) override {
    std::string out;
    if (!d.reasoning.empty()) {
      if (!in_reasoning_) {
        in_reasoning_ = true;
        reasoning_id_ = random_id("rs_");
        reasoning_.clear();
        out += ev("response.output_item.added",
                  {{"output_index", output_.size()}, {"item", reasoning_item(reasoning_id_, "", false)}});
        out += ev("response.content_part.added", {{"item_id", reasoning_id_}, {"output_index", output_.size()},
                                                  {"content_index", 0}, {"part", {{"type", "reasoning_text"}, {"text", ""}}}});
      }
      reasoning_ += d.reasoning;
      out += ev("response.reasoning_text.delta",
                {{"item_id", reasoning_id_}, {"output_index", output_.size()}, {"content_index", 0}, {"delta", d.reasoning}});
    }
    if (!d.content.empty()) {
      out += close_reasoning();
      if (!in_text_) {
        in_text_ = true;
        msg_id_ = random_id("msg_");
        text_.clear();
        json item = message_item(msg_id_, "", "in_progress");
        item["content"] = json::array();
        out += ev("response.output_item.added", {{"output_index", output_.size()}, {"item", item}});
        out += ev("response.content_part.added",
                  {{"item_id", msg_id_}, {"output_index", output_.size()}, {"content_index", 0},
                   {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
      }
      text_ += d.content;
      out += ev("response.output_text.delta",
                {{"item_id", msg_id_}, {"output_index", output_.size()}, {"content_index", 0}, {"delta", d.content}});
    }
    assign_ids(d.tool_calls, "call_");
    for (const auto& c : d.tool_calls) {
      out += close_reasoning();
      out += close_text();
      json item = call_item(c);
      json added = item;
      added["arguments"] = "";
      added["status"] = "in_progress";
      const size_t idx = output_.size();
      out += ev("response.output_item.added", {{"output_index", idx}, {"item", added}});
      out += ev("response.function_call_arguments.delta", {{"item_id", item["id"]}, {"output_index", idx}, {"delta", c.arguments}});
      out += ev("response.function_call_arguments.done", {{"item_id", item["id"]}, {"output_index", idx}, {"arguments", c.arguments}});
      output_.push_back(item);
      out += ev("response.output_item.done", {{"output_index", idx}, {"item", item}});
    }
    return out;
  }
  std::string stream_end(const Outcome& o) override {
    std::string out = close_reasoning() + close_text();
    json resp = response("completed", output_, &o);
    return out + ev(resp["status"] == "incomplete" ? "response.incomplete" : "response.completed", {{"response", resp}});
  }
  std::string stream_error(const std::string& message) override {
    return ev("error", {{"code", "server_error"}, {"message", message}, {"param", nullptr}});
  }
  json final_body(chat::ParsedMessage& m, const Outcome& o, const json&) override {
    assign_ids(m.tool_calls, "call_");
    json output = json::array();
    if (!m.reasoning_content.empty()) output.push_back(reasoning_item(random_id("rs_"), m.reasoning_content));
    if (!m.content.empty() || m.tool_calls.empty()) output.push_back(message_item(random_id("msg_"), m.content, "completed"));
    for (const auto& c : m.tool_calls) output.push_back(call_item(c));
    return response("completed", output, &o);
  }

 private:
  const GenRequest& req_;
  ResponseMeta meta_;
  int64_t seq_ = 0;
  json output_ = json::array();
  bool in_reasoning_ = false, in_text_ = false;
  std::string reasoning_id_, reasoning_, msg_id_, text_;
};

// ---------------------------------------------------------------- Anthropic

class AnthropicWriter : public ResponseWriter {
 public:
  AnthropicWriter(const GenRequest&, ResponseMeta m) : meta_(std::move(m)) {}
  std::string stream_begin() override {
    json msg = {{"id", meta_.id},
                {"type", "message"},
                {"role", "assistant"},
                {"model", meta_.model},
                {"content", json::array()},
                {"stop_reason", nullptr},
                {"stop_sequence", nullptr},
                {"usage", {{"input_tokens", meta_.prompt_tokens}, {"output_tokens", 0}}}};
    return sse_event("message_start", {{"type", "message_start"}, {"message", msg}}) +
           sse_event("ping", {{"type", "ping"}});
  }
  std::string close_block() {
    if (cur_.empty()) return {};
    std::string out;
    if (cur_ == "thinking")
      out += sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                               {"delta", {{"type", "signature_delta"}, {"signature", ""}}}});
    out += sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    cur_.clear();
    ++index_;
    return out;
  }
  std::string open_block(const std::string& kind, json block) {
    std::string out = close_block();
    cur_ = kind;
    return out + sse_event("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", block}});
  }
  std::string stream_delta(chat::ParseDelta& d, const json&) override {
    std::string out;
    if (!d.reasoning.empty()) {
      if (cur_ != "thinking") out += open_block("thinking", {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
      out += sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                               {"delta", {{"type", "thinking_delta"}, {"thinking", d.reasoning}}}});
    }
    if (!d.content.empty()) {
      if (cur_ != "text") out += open_block("text", {{"type", "text"}, {"text", ""}});
      out += sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                               {"delta", {{"type", "text_delta"}, {"text", d.content}}}});
    }
    assign_ids(d.tool_calls, "toolu_");
    for (const auto& c : d.tool_calls) {
      out += open_block("tool_use", {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", json::object()}});
      out += sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index_},
                                               {"delta", {{"type", "input_json_delta"}, {"partial_json", dump(parse_args_object(c.arguments))}}}});
      out += close_block();
    }
    return out;
  }
  std::string stream_end(const Outcome& o) override {
    std::string out = close_block();
    json delta = {{"stop_reason", anthropic_stop_reason(o.finish)},
                  {"stop_sequence", o.stop_sequence.empty() ? json(nullptr) : json(o.stop_sequence)}};
    out += sse_event("message_delta", {{"type", "message_delta"}, {"delta", delta},
                                       {"usage", {{"input_tokens", o.prompt_tokens - o.cached_tokens},
                                                  {"cache_read_input_tokens", o.cached_tokens},
                                                  {"output_tokens", o.completion_tokens}}}});
    return out + sse_event("message_stop", {{"type", "message_stop"}});
  }
  std::string stream_error(const std::string& message) override {
    return sse_event("error", {{"type", "error"}, {"error", {{"type", "api_error"}, {"message", message}}}});
  }
  std::string stream_keepalive() override { return sse_event("ping", {{"type", "ping"}}); }
  json final_body(chat::ParsedMessage& m, const Outcome& o, const json&) override {
    assign_ids(m.tool_calls, "toolu_");
    json content = json::array();
    if (meta_.thinking && !m.reasoning_content.empty())
      content.push_back({{"type", "thinking"}, {"thinking", m.reasoning_content}, {"signature", ""}});
    if (!m.content.empty() || m.tool_calls.empty()) content.push_back({{"type", "text"}, {"text", m.content}});
    for (const auto& c : m.tool_calls)
      content.push_back({{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", parse_args_object(c.arguments)}});
    return json{{"id", meta_.id},
                {"type", "message"},
                {"role", "assistant"},
                {"model", meta_.model},
                {"content", content},
                {"stop_reason", anthropic_stop_reason(o.finish)},
                {"stop_sequence", o.stop_sequence.empty() ? json(nullptr) : json(o.stop_sequence)},
                {"usage", {{"input_tokens", o.prompt_tokens - o.cached_tokens},
                           {"cache_read_input_tokens", o.cached_tokens},
                           {"cache_creation_input_tokens", 0},
                           {"output_tokens", o.completion_tokens}}}};
  }

 private:
  ResponseMeta meta_;
  std::string cur_;
  int index_ = 0;
};

// ---------------------------------------------------------------- Ollama

class OllamaWriter : public ResponseWriter {
 public:
  OllamaWriter(const GenRequest& r, ResponseMeta m) : meta_(std::move(m)), chat_(r.api == Api::OllamaChat) {}
  const char* stream_content_type() const override { return "application/x-ndjson"; }
  json base() { return json{{"model", meta_.model}, {"created_at", iso_now()}}; }
  json piece(const std::string& content, const std::string& thinking, const std::vector<chat::ToolCall>& calls) {
    json j = base();
    if (chat_) {
      json msg = {{"role", "assistant"}, {"content", content}};
      if (!thinking.empty()) msg["thinking"] = thinking;
      if (!calls.empty()) {
        json tcs = json::array();
        for (const auto& c : calls) tcs.push_back({{"function", {{"name", c.name}, {"arguments", parse_args_object(c.arguments)}}}});
        msg["tool_calls"] = tcs;
      }
      j["message"] = msg;
    } else {
      j["response"] = content;
      if (!thinking.empty()) j["thinking"] = thinking;
    }
    return j;
  }
  static std::string line(const json& j) { return dump(j) + "\n"; }
  void stats(json& j, const Outcome& o) {
    j["done"] = true;
    j["done_reason"] = o.finish == Finish::Length ? "length" : "stop";
    j["total_duration"] = int64_t(o.total_s * 1e9);
    j["load_duration"] = 0;
    j["prompt_eval_count"] = o.prompt_tokens;
    j["prompt_eval_duration"] = int64_t(o.prefill_s * 1e9);
    j["eval_count"] = o.completion_tokens;
    j["eval_duration"] = int64_t(o.decode_s * 1e9);
  }
  std::string stream_delta(chat::ParseDelta& d, const json&) override {
    if (d.content.empty() && d.reasoning.empty() && d.tool_calls.empty()) return {};
    json j = piece(d.content, d.reasoning, d.tool_calls);
    j["done"] = false;
    return line(j);
  }
  std::string stream_end(const Outcome& o) override {
    json j = piece("", "", {});
    stats(j, o);
    return line(j);
  }
  std::string stream_error(const std::string& message) override { return line({{"error", message}}); }
  std::string stream_keepalive() override { return {}; }
  json final_body(chat::ParsedMessage& m, const Outcome& o, const json&) override {
    json j = piece(m.content, m.reasoning_content, m.tool_calls);
    stats(j, o);
    return j;
  }

 private:
  ResponseMeta meta_;
  bool chat_;
};

}  // namespace

std::unique_ptr<ResponseWriter> make_writer(const GenRequest& r, const ResponseMeta& meta) {
  switch (r.api) {
    case Api::OpenAIChat: return std::make_unique<OpenAIChatWriter>(r, meta);
    case Api::OpenAICompletion: return std::make_unique<OpenAICompletionWriter>(r, meta);
    case Api::OpenAIResponses: return std::make_unique<OpenAIResponsesWriter>(r, meta);
    case Api::Anthropic:
    case Api::AnthropicCount: return std::make_unique<AnthropicWriter>(r, meta);
    case Api::OllamaChat:
    case Api::OllamaGenerate: return std::make_unique<OllamaWriter>(r, meta);
  }
  throw Error("unknown API");
}

}  // namespace dsv4::server
