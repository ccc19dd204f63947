#include "api.h"

#include <cmath>
#include <random>

#include "core/error.h"
#include "tokenizer/chat_json.h"
#include "tokenizer/chat_openai.h"

namespace dsv4::server {

ApiError bad_request(const std::string& message, const std::string& param) {
  return ApiError(400, "invalid_request_error", message, param);
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string random_id(const std::string& prefix, size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string s = prefix;
  const bool hex = prefix == "call_" || prefix == "chatcmpl-" || prefix == "cmpl-";
  for (size_t i = 0; i < n; ++i) s += kChars[rng() % (hex ? 16 : 62)];
  return s;
}

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

[[noreturn]] void wrong_type(const std::string& field, const char* want, const json& got) {
  throw bad_request("'" + field + "' must be " + want + ", got " + type_name(got), field);
}

const json* field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> opt_string(const json& o, const char* key, const std::string& path = {}) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(path.empty() ? key : path, "a string", *v);
  return v->get<std::string>();
}

std::optional<bool> opt_bool(const json& o, const char* key, const std::string& path = {}) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(path.empty() ? key : path, "a boolean", *v);
  return v->get<bool>();
}

std::optional<double> opt_number(const json& o, const char* key, double lo, double hi,
                                 const std::string& path = {}) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  const std::string name = path.empty() ? key : path;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw bad_request("'" + name + "' must be between " + chat::py_float_repr(lo) + " and " +
                          chat::py_float_repr(hi) + ", got " + chat::py_float_repr(d), name);
  return d;
}

std::optional<int64_t> opt_int(const json& o, const char* key, int64_t lo, int64_t hi,
                               const std::string& path = {}) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  const std::string name = path.empty() ? key : path;
  int64_t x = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      throw bad_request("'" + name + "' is too large", name);
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    x = int64_t(v->get<double>());
  } else {
    wrong_type(name, "an integer", *v);
  }
  if (x < lo || x > hi)
    throw bad_request("'" + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                          ", got " + std::to_string(x), name);
  return x;
}

void require_object(const json& body) {
  if (!body.is_object()) throw bad_request(std::string("request body must be a JSON object, got ") + type_name(body));
}

std::string check_model(const json& body, const ParseContext& ctx) {
  auto m = opt_string(body, "model");
  if (!m || m->empty()) {
    if (ctx.require_model) throw bad_request("'model' is required", "model");
    return ctx.model_names.empty() ? std::string() : ctx.model_names.front();
  }
  if (ctx.model_names.empty()) return *m;
  for (const auto& n : ctx.model_names)
    if (*m == n || *m == n + ":latest") return *m;
  throw ApiError(404, "not_found_error",
                 "model '" + *m + "' does not exist; this server serves '" + ctx.model_names.front() + "'", "model",
                 "model_not_found");
}

std::vector<std::string> parse_stop(const json& o, const char* key) {
  std::vector<std::string> out;
  const json* v = field(o, key);
  if (!v) return out;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > 16) throw bad_request(std::string("'") + key + "' may hold at most 16 strings", key);
    for (const auto& s : *v) {
      if (!s.is_string()) wrong_type(std::string(key) + "[]", "a string", s);
      if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
    }
  } else {
    wrong_type(key, "a string or an array of strings", *v);
  }
  return out;
}

// Runs a chat-layer conversion, turning its dsv4::Error into a 400.
template <class F>
auto chat_call(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ApiError&) {
    throw;
  } catch (const dsv4::Error& e) {
    std::string m = e.what();
    if (m.rfind("chat: ", 0) == 0) m = m.substr(6);
    throw bad_request(m);
  } catch (const json::exception& e) {
    throw bad_request(std::string("invalid request: ") + e.what());
  }
}

void base_chat_options(GenRequest& r, const ParseContext& ctx) {
  r.chat_options.variant = ctx.variant;
  r.chat_options.v4_effort_style = ctx.effort_style;
  r.temperature = ctx.default_temperature;
  r.top_p = ctx.default_top_p;
  r.max_tokens = ctx.default_max_tokens;
}

void sampling_common(GenRequest& r, const json& b) {
  if (auto t = opt_number(b, "temperature", 0, 2)) r.temperature = *t;
  if (auto p = opt_number(b, "top_p", 0, 1)) {
    if (*p <= 0) throw bad_request("'top_p' must be greater than 0", "top_p");
    r.top_p = *p;
  }
  if (auto s = opt_int(b, "seed", INT64_MIN, INT64_MAX)) r.seed = uint64_t(*s);
}

void tool_choice_openai(GenRequest& r, const json& b) {
  const json* tc = field(b, "tool_choice");
  if (!tc) return;
  if (tc->is_string()) {
    const std::string s = tc->get<std::string>();
    if (s != "auto" && s != "none" && s != "required")
      throw bad_request("'tool_choice' must be \"auto\", \"none\", \"required\" or a function object", "tool_choice");
    r.tool_choice = s;
  } else if (tc->is_object()) {
    const json* f = field(*tc, "function");
    std::optional<std::string> name;
    if (f && f->is_object()) name = opt_string(*f, "name", "tool_choice.function.name");
    if (!name) name = opt_string(*tc, "name", "tool_choice.name");  // Responses style
    if (!name || name->empty()) throw bad_request("'tool_choice.function.name' is required", "tool_choice");
    r.tool_choice = *name;
  } else {
    wrong_type("tool_choice", "a string or an object", *tc);
  }
}

void finish_tools(GenRequest& r) {
  if (r.tool_choice == "none") {
    r.tools.clear();  // do not render and do not parse (spec C.7.5)
  }
  r.tools_enabled = !r.tools.empty();
}

}  // namespace

// ---------------------------------------------------------------- OpenAI chat completions

GenRequest parse_openai_chat(const json& b, const ParseContext& ctx) {
  require_object(b);
  GenRequest r;
  r.api = Api::OpenAIChat;
  base_chat_options(r, ctx);
  r.model = check_model(b, ctx);
  const json* msgs = field(b, "messages");
  if (!msgs) throw bad_request("'messages' is required", "messages");
  if (!msgs->is_array()) wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) throw bad_request("'messages' must not be empty", "messages");
  r.messages = chat_call([&] { return chat::messages_from_openai(*msgs); });
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) wrong_type("tools", "an array", *t);
    r.tools = chat_call([&] { return chat::tools_from_openai(*t); });
  }
  tool_choice_openai(r, b);
  finish_tools(r);
  if (const json* rf = field(b, "response_format")) {
    if (!rf->is_object()) wrong_type("response_format", "an object", *rf);
    auto type = opt_string(*rf, "type", "response_format.type");
    if (type && *type != "text") {
      // Put it on the leading system message: the encoder appends a "## Response Format" section.
      if (r.messages.empty() || (r.messages[0].role != chat::Role::System && r.messages[0].role != chat::Role::Developer)) {
        chat::Message sys;
        sys.role = chat::Role::System;
        r.messages.insert(r.messages.begin(), sys);
      }
      r.messages[0].response_format = *rf;
    }
  }
  chat_call([&] {
    chat::apply_openai_switches(b, r.chat_options);
    return 0;
  });
  if (const json* ctk = field(b, "chat_template_kwargs"); ctk && !ctk->is_object())
    wrong_type("chat_template_kwargs", "an object", *ctk);
  r.stream = opt_bool(b, "stream").value_or(false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    r.include_usage = opt_bool(*so, "include_usage", "stream_options.include_usage").value_or(false);
  }
  if (auto m = opt_int(b, "max_tokens", 1, INT32_MAX)) r.max_tokens = *m;
  if (auto m = opt_int(b, "max_completion_tokens", 1, INT32_MAX)) r.max_tokens = *m;
  sampling_common(r, b);
  r.stop = parse_stop(b, "stop");
  r.logprobs = opt_bool(b, "logprobs").value_or(false);
  if (auto t = opt_int(b, "top_logprobs", 0, 20)) {
    r.top_logprobs = *t;
    if (*t > 0 && !r.logprobs) throw bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  }
  if (auto n = opt_int(b, "n", 0, INT32_MAX); n && *n != 1)
    throw bad_request("'n' must be 1 (one choice per request)", "n");
  return r;
}

// ---------------------------------------------------------------- OpenAI completions

GenRequest parse_openai_completion(const json& b, const ParseContext& ctx) {
  require_object(b);
  GenRequest r;
  r.api = Api::OpenAICompletion;
  base_chat_options(r, ctx);
  r.is_chat = false;
  r.max_tokens = 16;  // OpenAI default for legacy completions
  r.model = check_model(b, ctx);
  const json* p = field(b, "prompt");
  if (!p) throw bad_request("'prompt' is required", "prompt");
  if (p->is_string()) {
    r.raw_prompt = p->get<std::string>();
  } else if (p->is_array()) {
    if (p->size() == 1 && (*p)[0].is_string()) {
      r.raw_prompt = (*p)[0].get<std::string>();
    } else if (!p->empty() && (*p)[0].is_number_integer()) {
      for (const auto& t : *p) {
        if (!t.is_number_integer()) wrong_type("prompt[]", "an integer token id", t);
        const int64_t id = t.get<int64_t>();
        if (id < 0 || id > INT32_MAX) throw bad_request("'prompt' token id out of range", "prompt");
        r.prompt_ids.push_back(int32_t(id));
      }
    } else {
      throw bad_request("'prompt' must be a string, one string in an array, or an array of token ids "
                        "(batched prompts are not supported)", "prompt");
    }
  } else {
    wrong_type("prompt", "a string or an array", *p);
  }
  if (r.raw_prompt.empty() && r.prompt_ids.empty()) throw bad_request("'prompt' must not be empty", "prompt");
  r.stream = opt_bool(b, "stream").value_or(false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    r.include_usage = opt_bool(*so, "include_usage", "stream_options.include_usage").value_or(false);
  }
  if (auto m = opt_int(b, "max_tokens", 1, INT32_MAX)) r.max_tokens = *m;
  sampling_common(r, b);
  r.stop = parse_stop(b, "stop");
  if (auto lp = opt_int(b, "logprobs", 0, 20)) {
    r.logprobs = true;
    r.top_logprobs = *lp;
  }
  r.echo = opt_bool(b, "echo").value_or(false);
  if (auto n = opt_int(b, "n", 0, INT32_MAX); n && *n != 1)
    throw bad_request("'n' must be 1 (one choice per request)", "n");
  if (auto n = opt_int(b, "best_of", 0, INT32_MAX); n && *n != 1)
    throw bad_request("'best_of' must be 1", "best_of");
  return r;
}

// ---------------------------------------------------------------- OpenAI responses

namespace {

std::string responses_text(const json& c, const std::string& path) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) wrong_type(path, "a string or an array of content parts", c);
  std::string out;
  for (const auto& part : c) {
    if (!part.is_object()) wrong_type(path + "[]", "an object", part);
    auto type = opt_string(part, "type", path + "[].type").value_or("");
    if (type == "input_text" || type == "output_text" || type == "text") {
      if (!out.empty()) out += "\n\n";
      out += opt_string(part, "text", path + "[].text").value_or("");
    } else {
      throw bad_request("content part type '" + type + "' is not supported", path);
    }
  }
  return out;
}

}  // namespace

GenRequest parse_openai_responses(const json& b, const ParseContext& ctx) {
  require_object(b);
  GenRequest r;
  r.api = Api::OpenAIResponses;
  base_chat_options(r, ctx);
  r.model = check_model(b, ctx);
  if (opt_string(b, "previous_response_id"))
    throw bad_request("'previous_response_id' is not supported: this server stores no responses; send the whole "
                      "conversation in 'input'", "previous_response_id");
  if (auto ins = opt_string(b, "instructions")) {
    chat::Message m;
    m.role = chat::Role::System;
    m.content = *ins;
    r.messages.push_back(m);
  }
  const json* in = field(b, "input");
  if (!in) throw bad_request("'input' is required", "input");
  if (in->is_string()) {
    chat::Message m;
    m.content = in->get<std::string>();
    r.messages.push_back(m);
  } else if (in->is_array()) {
    for (size_t i = 0; i < in->size(); ++i) {
      const json& it = (*in)[i];
      const std::string path = "input[" + std::to_string(i) + "]";
      if (!it.is_object()) wrong_type(path, "an object", it);
      const std::string type = opt_string(it, "type", path + ".type").value_or("message");
      if (type == "message") {
        const std::string role = opt_string(it, "role", path + ".role").value_or("");
        chat::Message m;
        if (role == "user") m.role = chat::Role::User;
        else if (role == "assistant") m.role = chat::Role::Assistant;
        else if (role == "system") m.role = chat::Role::System;
        else if (role == "developer") m.role = chat::Role::Developer;
        else throw bad_request("'" + path + ".role' must be user, assistant, system or developer", path + ".role");
        if (const json* c = field(it, "content")) m.content = responses_text(*c, path + ".content");
        // Consecutive assistant items (reasoning, message, function calls) form one turn.
        if (m.role == chat::Role::Assistant && !r.messages.empty() && r.messages.back().role == chat::Role::Assistant &&
            r.messages.back().content.empty() && r.messages.back().tool_calls.empty()) {
          r.messages.back().content = m.content;
        } else {
          r.messages.push_back(m);
        }
      } else if (type == "function_call") {
        chat::ToolCall tc;
        tc.id = opt_string(it, "call_id", path + ".call_id").value_or("");
        tc.name = opt_string(it, "name", path + ".name").value_or("");
        if (tc.name.empty()) throw bad_request("'" + path + ".name' is required", path + ".name");
        tc.arguments = opt_string(it, "arguments", path + ".arguments").value_or("{}");
        if (r.messages.empty() || r.messages.back().role != chat::Role::Assistant) {
          chat::Message m;
          m.role = chat::Role::Assistant;
          r.messages.push_back(m);
        }
        r.messages.back().tool_calls.push_back(tc);
      } else if (type == "function_call_output") {
        chat::Message m;
        m.role = chat::Role::Tool;
        m.tool_call_id = opt_string(it, "call_id", path + ".call_id").value_or("");
        const json* o = field(it, "output");
        if (o && o->is_string()) m.content = o->get<std::string>();
        else if (o) m.content = responses_text(*o, path + ".output");
        r.messages.push_back(m);
      } else if (type == "reasoning") {
        std::string text;
        for (const char* key : {"content", "summary"}) {  // raw reasoning_text first, else the summary
          if (!text.empty()) break;
          if (const json* s = field(it, key); s && s->is_array())
            for (const auto& p : *s)
              if (p.is_object() && p.contains("text") && p["text"].is_string()) text += p["text"].get<std::string>();
        }
        chat::Message m;
        m.role = chat::Role::Assistant;
        m.reasoning_content = text;
        r.messages.push_back(m);
      } else {
        throw bad_request("input item type '" + type + "' is not supported", path + ".type");
      }
    }
  } else {
    wrong_type("input", "a string or an array", *in);
  }
  if (r.messages.empty()) throw bad_request("'input' must not be empty", "input");
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) wrong_type("tools", "an array", *t);
    json conv = json::array();
    for (size_t i = 0; i < t->size(); ++i) {
      const json& x = (*t)[i];
      if (!x.is_object()) wrong_type("tools[]", "an object", x);
      if (opt_string(x, "type", "tools[].type").value_or("function") != "function")
        throw bad_request("only function tools are supported", "tools[" + std::to_string(i) + "].type");
      json f = json::object();
      for (auto it = x.begin(); it != x.end(); ++it)
        if (it.key() != "type") f[it.key()] = it.value();
      conv.push_back(json{{"type", "function"}, {"function", f}});
    }
    r.tools = chat_call([&] { return chat::tools_from_openai(conv); });
  }
  tool_choice_openai(r, b);
  finish_tools(r);
  if (const json* rs = field(b, "reasoning")) {
    if (!rs->is_object()) wrong_type("reasoning", "an object", *rs);
    if (auto e = opt_string(*rs, "effort", "reasoning.effort")) {
      json sw = {{"reasoning_effort", *e}};
      chat_call([&] {
        chat::apply_openai_switches(sw, r.chat_options);
        return 0;
      });
    }
  }
  r.stream = opt_bool(b, "stream").value_or(false);
  if (auto m = opt_int(b, "max_output_tokens", 1, INT32_MAX)) r.max_tokens = *m;
  sampling_common(r, b);
  return r;
}

// ---------------------------------------------------------------- Anthropic messages

namespace {

std::string anthropic_text(const json& c, const std::string& path) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) wrong_type(path, "a string or an array of content blocks", c);
  std::string out;
  for (const auto& blk : c) {
    if (!blk.is_object()) wrong_type(path + "[]", "an object", blk);
    const auto type = opt_string(blk, "type", path + "[].type").value_or("");
    if (type == "text") {
      out += opt_string(blk, "text", path + "[].text").value_or("");
    } else {
      throw bad_request("content block type '" + type + "' is not allowed in " + path, path);
    }
  }
  return out;
}

}  // namespace

GenRequest parse_anthropic_messages(const json& b, const ParseContext& ctx, bool count_only) {
  require_object(b);
  GenRequest r;
  r.api = count_only ? Api::AnthropicCount : Api::Anthropic;
  base_chat_options(r, ctx);
  r.model = check_model(b, ctx);
  if (!count_only) {
    auto m = opt_int(b, "max_tokens", 1, INT32_MAX);
    if (!m) throw bad_request("'max_tokens' is required", "max_tokens");
    r.max_tokens = *m;
  }
  if (const json* s = field(b, "system")) {
    chat::Message m;
    m.role = chat::Role::System;
    m.content = anthropic_text(*s, "system");
    r.messages.push_back(m);
  }
  const json* msgs = field(b, "messages");
  if (!msgs) throw bad_request("'messages' is required", "messages");
  if (!msgs->is_array()) wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) throw bad_request("'messages' must not be empty", "messages");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& j = (*msgs)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!j.is_object()) wrong_type(path, "an object", j);
    const std::string role = opt_string(j, "role", path + ".role").value_or("");
    if (role != "user" && role != "assistant")
      throw bad_request("'" + path + ".role' must be \"user\" or \"assistant\"", path + ".role");
    const json* c = field(j, "content");
    if (!c) throw bad_request("'" + path + ".content' is required", path + ".content");
    chat::Message m;
    m.role = role == "user" ? chat::Role::User : chat::Role::Assistant;
    if (c->is_string()) {
      m.content = c->get<std::string>();
      r.messages.push_back(m);
      continue;
    }
    if (!c->is_array()) wrong_type(path + ".content", "a string or an array of content blocks", *c);
    std::vector<chat::Message> tool_results;
    for (size_t k = 0; k < c->size(); ++k) {
      const json& blk = (*c)[k];
      const std::string bp = path + ".content[" + std::to_string(k) + "]";
      if (!blk.is_object()) wrong_type(bp, "an object", blk);
      const std::string type = opt_string(blk, "type", bp + ".type").value_or("");
      if (type == "text") {
        m.content += opt_string(blk, "text", bp + ".text").value_or("");
      } else if (type == "thinking" && m.role == chat::Role::Assistant) {
        m.reasoning_content = m.reasoning_content.value_or("") + opt_string(blk, "thinking", bp + ".thinking").value_or("");
      } else if (type == "redacted_thinking") {
        // nothing to render
      } else if (type == "tool_use" && m.role == chat::Role::Assistant) {
        chat::ToolCall tc;
        tc.id = opt_string(blk, "id", bp + ".id").value_or("");
        tc.name = opt_string(blk, "name", bp + ".name").value_or("");
        if (tc.name.empty()) throw bad_request("'" + bp + ".name' is required", bp + ".name");
        const json* in = field(blk, "input");
        if (in && !in->is_object()) wrong_type(bp + ".input", "an object", *in);
        tc.arguments = in ? chat::py_json_dumps(*in) : "{}";
        m.tool_calls.push_back(tc);
      } else if (type == "tool_result" && m.role == chat::Role::User) {
        chat::Message t;
        t.role = chat::Role::Tool;
        t.tool_call_id = opt_string(blk, "tool_use_id", bp + ".tool_use_id").value_or("");
        if (const json* tc = field(blk, "content")) t.content = anthropic_text(*tc, bp + ".content");
        if (opt_bool(blk, "is_error", bp + ".is_error").value_or(false)) t.content = "Error: " + t.content;
        tool_results.push_back(t);
      } else if (type == "image" || type == "document") {
        chat::ContentPart p;
        p.type = type == "image" ? "image" : "document";
        m.parts.push_back(p);
      } else {
        throw bad_request("content block type '" + type + "' is not supported in a " + role + " message",
                          bp + ".type");
      }
    }
    for (auto& t : tool_results) r.messages.push_back(std::move(t));
    if (!m.parts.empty() && !m.content.empty()) {
      chat::ContentPart p;
      p.text = m.content;
      m.parts.insert(m.parts.begin(), p);
    }
    if (!m.content.empty() || !m.parts.empty() || !m.tool_calls.empty() || m.reasoning_content ||
        tool_results.empty())
      r.messages.push_back(std::move(m));
  }
  // A trailing assistant message is a prefill the model continues.
  if (!r.messages.empty() && r.messages.back().role == chat::Role::Assistant) r.messages.back().wo_eos = true;
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) wrong_type("tools", "an array", *t);
    for (size_t i = 0; i < t->size(); ++i) {
      const json& x = (*t)[i];
      const std::string tp = "tools[" + std::to_string(i) + "]";
      if (!x.is_object()) wrong_type(tp, "an object", x);
      chat::Tool tool;
      tool.name = opt_string(x, "name", tp + ".name").value_or("");
      if (tool.name.empty()) throw bad_request("'" + tp + ".name' is required", tp + ".name");
      if (auto type = opt_string(x, "type", tp + ".type"); type && *type != "custom" && type->rfind("custom", 0) != 0)
        continue;  // server tools (web_search, bash, ...) are not ours to run
      tool.description = opt_string(x, "description", tp + ".description");
      const json* schema = field(x, "input_schema");
      if (!schema) throw bad_request("'" + tp + ".input_schema' is required", tp + ".input_schema");
      if (!schema->is_object()) wrong_type(tp + ".input_schema", "an object", *schema);
      tool.parameters = *schema;
      r.tools.push_back(tool);
    }
  }
  if (const json* tc = field(b, "tool_choice")) {
    if (!tc->is_object()) wrong_type("tool_choice", "an object", *tc);
    const auto type = opt_string(*tc, "type", "tool_choice.type").value_or("auto");
    if (type == "auto") r.tool_choice = "auto";
    else if (type == "any") r.tool_choice = "required";
    else if (type == "none") r.tool_choice = "none";
    else if (type == "tool") r.tool_choice = opt_string(*tc, "name", "tool_choice.name").value_or("auto");
    else throw bad_request("'tool_choice.type' must be auto, any, tool or none", "tool_choice.type");
  }
  finish_tools(r);
  // Anthropic semantics: no thinking unless asked for.
  r.chat_options.thinking = false;
  if (const json* th = field(b, "thinking")) {
    if (!th->is_object()) wrong_type("thinking", "an object", *th);
    const auto type = opt_string(*th, "type", "thinking.type").value_or("");
    if (type == "enabled") {
      r.chat_options.thinking = true;
      if (auto bt = opt_int(*th, "budget_tokens", 0, INT32_MAX, "thinking.budget_tokens")) {
        // A large budget asks for the maximum effort.
        if (*bt >= 32768) r.chat_options.reasoning_effort = "max";
      }
    } else if (type != "disabled") {
      throw bad_request("'thinking.type' must be \"enabled\" or \"disabled\"", "thinking.type");
    }
  }
  r.stream = opt_bool(b, "stream").value_or(false);
  if (auto t = opt_number(b, "temperature", 0, 1)) r.temperature = *t;
  if (auto p = opt_number(b, "top_p", 0, 1)) {
    if (*p <= 0) throw bad_request("'top_p' must be greater than 0", "top_p");
    r.top_p = *p;
  }
  if (auto k = opt_int(b, "top_k", 0, INT32_MAX)) (void)k;
  r.stop = parse_stop(b, "stop_sequences");
  return r;
}

// ---------------------------------------------------------------- Ollama

namespace {

void ollama_common(GenRequest& r, const json& b) {
  r.stream = opt_bool(b, "stream").value_or(true);  // Ollama streams by default
  if (const json* th = field(b, "think")) {
    if (th->is_boolean()) {
      r.chat_options.thinking = th->get<bool>();
    } else if (th->is_string()) {
      const std::string s = th->get<std::string>();
      if (s != "low" && s != "medium" && s != "high" && s != "max")
        throw bad_request("'think' must be a boolean or \"low\", \"medium\", \"high\"", "think");
      r.chat_options.thinking = true;
      r.chat_options.reasoning_effort = s == "medium" ? "high" : s;
    } else {
      wrong_type("think", "a boolean or a string", *th);
    }
  } else {
    r.chat_options.thinking = false;  // Ollama: thinking only when asked for
  }
  if (const json* o = field(b, "options")) {
    if (!o->is_object()) wrong_type("options", "an object", *o);
    if (auto t = opt_number(*o, "temperature", 0, 2, "options.temperature")) r.temperature = *t;
    if (auto p = opt_number(*o, "top_p", 0, 1, "options.top_p")) r.top_p = *p > 0 ? *p : 1.0;
    if (auto s = opt_int(*o, "seed", INT64_MIN, INT64_MAX, "options.seed")) r.seed = uint64_t(*s);
    if (auto n = opt_int(*o, "num_predict", -2, INT32_MAX, "options.num_predict")) r.max_tokens = *n > 0 ? *n : -1;
    r.stop = parse_stop(*o, "stop");
  }
  if (const json* f = field(b, "format")) {
    if (!f->is_string() && !f->is_object()) wrong_type("format", "\"json\" or a JSON schema object", *f);
  }
}

}  // namespace

GenRequest parse_ollama_chat(const json& b, const ParseContext& ctx) {
  require_object(b);
  GenRequest r;
  r.api = Api::OllamaChat;
  base_chat_options(r, ctx);
  r.model = check_model(b, ctx);
  const json* msgs = field(b, "messages");
  if (!msgs) throw bad_request("'messages' is required", "messages");
  if (!msgs->is_array()) wrong_type("messages", "an array", *msgs);
  int call_counter = 0;
  std::vector<std::string> pending_ids;  // ids of calls not yet answered, in order
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& j = (*msgs)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!j.is_object()) wrong_type(path, "an object", j);
    const std::string role = opt_string(j, "role", path + ".role").value_or("");
    chat::Message m;
    if (role == "system") m.role = chat::Role::System;
    else if (role == "user") m.role = chat::Role::User;
    else if (role == "assistant") m.role = chat::Role::Assistant;
    else if (role == "tool") m.role = chat::Role::Tool;
    else throw bad_request("'" + path + ".role' must be system, user, assistant or tool", path + ".role");
    m.content = opt_string(j, "content", path + ".content").value_or("");
    if (auto th = opt_string(j, "thinking", path + ".thinking"); th && m.role == chat::Role::Assistant)
      m.reasoning_content = *th;
    if (const json* imgs = field(j, "images")) {
      if (!imgs->is_array()) wrong_type(path + ".images", "an array", *imgs);
      if (!imgs->empty()) {
        chat::ContentPart t;
        t.text = m.content;
        m.parts.push_back(t);
        for (size_t k = 0; k < imgs->size(); ++k) {
          chat::ContentPart p;
          p.type = "image";
          m.parts.push_back(p);
        }
      }
    }
    if (const json* tcs = field(j, "tool_calls")) {
      if (!tcs->is_array()) wrong_type(path + ".tool_calls", "an array", *tcs);
      for (const auto& tc : *tcs) {
        const json* f = tc.is_object() ? field(tc, "function") : nullptr;
        if (!f || !f->is_object()) throw bad_request("'" + path + ".tool_calls[].function' must be an object", path);
        chat::ToolCall call;
        call.name = opt_string(*f, "name", path + ".tool_calls[].function.name").value_or("");
        if (call.name.empty()) throw bad_request("'" + path + ".tool_calls[].function.name' is required", path);
        const json* a = field(*f, "arguments");
        call.arguments = !a ? "{}" : a->is_string() ? a->get<std::string>() : chat::py_json_dumps(*a);
        call.id = "call_" + std::to_string(call_counter++);
        pending_ids.push_back(call.id);
        m.tool_calls.push_back(call);
      }
    }
    if (m.role == chat::Role::Tool) {
      if (!pending_ids.empty()) {
        m.tool_call_id = pending_ids.front();
        pending_ids.erase(pending_ids.begin());
      }
      m.name = opt_string(j, "tool_name", path + ".tool_name").value_or("");
    }
    r.messages.push_back(std::move(m));
  }
  if (r.messages.empty()) throw bad_request("'messages' must not be empty", "messages");
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) wrong_type("tools", "an array", *t);
    r.tools = chat_call([&] { return chat::tools_from_openai(*t); });
  }
  finish_tools(r);
  ollama_common(r, b);
  return r;
}

GenRequest parse_ollama_generate(const json& b, const ParseContext& ctx) {
  require_object(b);
  GenRequest r;
  r.api = Api::OllamaGenerate;
  base_chat_options(r, ctx);
  r.model = check_model(b, ctx);
  const std::string prompt = opt_string(b, "prompt").value_or("");
  r.ollama_raw = opt_bool(b, "raw").value_or(false);
  if (auto sfx = opt_string(b, "suffix"); sfx && !sfx->empty())
    throw bad_request("'suffix' (fill-in-the-middle) is not supported", "suffix");
  ollama_common(r, b);
  if (r.ollama_raw) {
    r.is_chat = false;
    r.raw_prompt = prompt;
    if (prompt.empty()) throw bad_request("'prompt' must not be empty with raw", "prompt");
  } else {
    if (auto sys = opt_string(b, "system")) {
      chat::Message m;
      m.role = chat::Role::System;
      m.content = *sys;
      r.messages.push_back(m);
    }
    chat::Message u;
    u.content = prompt;
    r.messages.push_back(u);
  }
  return r;
}

// Deepest [ / { nesting outside strings (bodies nested deeper than any real request are
// refused before parsing: later recursive walks such as the schema dump must stay shallow).
static size_t json_depth(const std::string& s) {
  size_t depth = 0, max_depth = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

GenRequest parse_request(Api api, const std::string& body, const ParseContext& ctx) {
  if (json_depth(body) > 256) throw bad_request("request JSON is nested too deeply (limit 256 levels)");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number overflow
    std::string m = e.what();
    auto p = m.find("] ");
    throw bad_request("malformed JSON: " + (p == std::string::npos ? m : m.substr(p + 2)));
  }
  switch (api) {
    case Api::OpenAIChat: return parse_openai_chat(j, ctx);
    case Api::OpenAICompletion: return parse_openai_completion(j, ctx);
    case Api::OpenAIResponses: return parse_openai_responses(j, ctx);
    case Api::Anthropic: return parse_anthropic_messages(j, ctx, false);
    case Api::AnthropicCount: return parse_anthropic_messages(j, ctx, true);
    case Api::OllamaChat: return parse_ollama_chat(j, ctx);
    case Api::OllamaGenerate: return parse_ollama_generate(j, ctx);
  }
  throw bad_request("unknown API");
}

std::vector<chat::PromptSegment> render_prompt(const GenRequest& r) {
  if (!r.is_chat) return {chat::PromptSegment{r.raw_prompt, r.raw_special}};
  return chat_call([&] { return chat::render_chat_segments(r.messages, r.tools, r.chat_options); });
}

bool request_thinking(const GenRequest& r) { return r.is_chat && r.chat_options.thinking; }

}  // namespace dsv4::server
