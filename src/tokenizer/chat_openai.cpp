#include "tokenizer/chat_openai.h"

#include "core/error.h"
#include "tokenizer/chat_json.h"

namespace dsv4::chat {
namespace {

using oj = nlohmann::ordered_json;

std::string where(size_t i, const char* field) {
  return "messages[" + std::to_string(i) + "]." + field;
}

std::string get_string(const oj& o, const char* key, const std::string& ctx) {
  if (!o.contains(key) || o[key].is_null()) return {};
  check(o[key].is_string(), "chat: " + ctx + " must be a string");
  return o[key].get<std::string>();
}

Role role_from(const std::string& r, size_t i) {
  if (r == "system") return Role::System;
  if (r == "developer") return Role::Developer;
  if (r == "user") return Role::User;
  if (r == "assistant") return Role::Assistant;
  if (r == "tool") return Role::Tool;
  if (r == "latest_reminder") return Role::LatestReminder;
  throw Error("chat: " + where(i, "role") + " '" + r + "' is not supported");
}

}  // namespace

std::vector<Message> messages_from_openai(const oj& messages) {
  check(messages.is_array(), "chat: messages must be an array");
  std::vector<Message> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const oj& j = messages[i];
    check(j.is_object(), "chat: messages[" + std::to_string(i) + "] must be an object");
    Message m;
    m.role = role_from(get_string(j, "role", where(i, "role")), i);
    if (j.contains("content") && !j["content"].is_null()) {
      const oj& c = j["content"];
      if (c.is_string()) {
        m.content = c.get<std::string>();
      } else if (c.is_array()) {
        for (const auto& part : c) {
          check(part.is_object() && part.contains("type") && part["type"].is_string(),
                "chat: " + where(i, "content") + " parts need a string type");
          ContentPart p;
          p.type = part["type"].get<std::string>();
          if (p.type == "text" || p.type == "input_text") {
            p.type = "text";
            p.text = get_string(part, "text", where(i, "content[].text"));
          }
          m.parts.push_back(std::move(p));
        }
      } else {
        throw Error("chat: " + where(i, "content") + " must be a string, null or a list of parts");
      }
    }
    if (j.contains("reasoning_content") && !j["reasoning_content"].is_null())
      m.reasoning_content = get_string(j, "reasoning_content", where(i, "reasoning_content"));
    else if (j.contains("reasoning") && !j["reasoning"].is_null())
      m.reasoning_content = get_string(j, "reasoning", where(i, "reasoning"));
    if (j.contains("tool_calls") && !j["tool_calls"].is_null()) {
      check(j["tool_calls"].is_array(), "chat: " + where(i, "tool_calls") + " must be an array");
      for (const auto& tc : j["tool_calls"]) {
        check(tc.is_object() && tc.contains("function") && tc["function"].is_object(),
              "chat: " + where(i, "tool_calls[]") + " needs a function object");
        const oj& f = tc["function"];
        ToolCall call;
        call.id = get_string(tc, "id", where(i, "tool_calls[].id"));
        call.name = get_string(f, "name", where(i, "tool_calls[].function.name"));
        check(!call.name.empty(), "chat: " + where(i, "tool_calls[].function.name") + " is missing");
        if (f.contains("arguments") && f["arguments"].is_string())
          call.arguments = f["arguments"].get<std::string>();
        else if (f.contains("arguments") && !f["arguments"].is_null())
          call.arguments = py_json_dumps(f["arguments"]);
        else
          call.arguments = "{}";
        m.tool_calls.push_back(std::move(call));
      }
    }
    m.tool_call_id = get_string(j, "tool_call_id", where(i, "tool_call_id"));
    m.name = get_string(j, "name", where(i, "name"));
    if (j.contains("response_format") && !j["response_format"].is_null())
      m.response_format = j["response_format"];
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<Tool> tools_from_openai(const oj& tools) {
  std::vector<Tool> out;
  if (tools.is_null()) return out;
  check(tools.is_array(), "chat: tools must be an array");
  for (size_t i = 0; i < tools.size(); ++i) {
    const oj& t = tools[i];
    const std::string ctx = "tools[" + std::to_string(i) + "]";
    check(t.is_object() && t.contains("function") && t["function"].is_object(),
          "chat: " + ctx + " needs a function object");
    const oj& f = t["function"];
    check(f.contains("name") && f["name"].is_string() && !f["name"].get<std::string>().empty(),
          "chat: " + ctx + ".function.name is missing");
    Tool tool;
    tool.name = f["name"].get<std::string>();
    if (f.contains("description") && f["description"].is_string())
      tool.description = f["description"].get<std::string>();
    if (f.contains("parameters")) tool.parameters = f["parameters"];
    tool.function = f;
    out.push_back(std::move(tool));
  }
  return out;
}

void apply_openai_switches(const oj& req, ChatOptions& o) {
  auto truthy = [](const oj& v) {
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>() != 0.0;
    if (v.is_string()) return !v.get_ref<const std::string&>().empty();
    return !v.is_null();
  };
  o.thinking = true;
  std::optional<oj> effort;
  if (req.contains("reasoning_effort") && !req["reasoning_effort"].is_null())
    effort = req["reasoning_effort"];
  if (req.contains("chat_template_kwargs") && req["chat_template_kwargs"].is_object()) {
    const oj& k = req["chat_template_kwargs"];
    bool seen = false, on = false;
    for (const char* key : {"thinking", "enable_thinking"}) {
      if (k.contains(key) && !k[key].is_null()) {
        seen = true;
        on = on || truthy(k[key]);
      }
    }
    if (seen) o.thinking = on;
    if (k.contains("reasoning_effort") && !k["reasoning_effort"].is_null())
      effort = k["reasoning_effort"];
    if (k.contains("drop_thinking") && k["drop_thinking"].is_boolean())
      o.drop_thinking = k["drop_thinking"].get<bool>();
  }
  if (req.contains("thinking") && req["thinking"].is_object()) {
    const oj& t = req["thinking"];
    if (t.contains("type") && t["type"].is_string())
      o.thinking = t["type"].get<std::string>() != "disabled";
    if (t.contains("effort") && !t["effort"].is_null()) effort = t["effort"];
  }
  o.reasoning_effort.clear();
  if (effort) {
    if (effort->is_string()) {
      o.reasoning_effort = effort->get<std::string>();
    } else if (o.variant == Variant::V41 && effort->is_number_integer()) {
      o.reasoning_effort = std::to_string(effort->get<long long>());
    } else if (o.variant == Variant::V41) {
      throw Error("chat: reasoning_effort must be a string or an integer 1..100");
    }
  }
  if (o.reasoning_effort == "none") {
    o.thinking = false;
    o.reasoning_effort.clear();
  }
  if (o.variant == Variant::V41 && !o.reasoning_effort.empty())
    (void)v41_effort_budget(o.reasoning_effort);  // HTTP 400 on an invalid value
}

}  // namespace dsv4::chat
