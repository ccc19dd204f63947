// DeepSeek-V4 / V4.1 prompt rendering (spec arch-v41-tokenizer-chat.md C.1-C.5).
#include "tokenizer/chat_encoding.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "tokenizer/chat_json.h"

namespace dsv4::chat {
namespace {

constexpr std::string_view kEffortAbsoluteMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n";

constexpr std::string_view kEffortBeyondMax =
    "Reasoning Effort: Beyond maximum \xE2\x80\x94 exhaustive, relentless, and uncompromising.\n"
    "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: "
    "exhaustively decompose the problem into its most fundamental components, trace every "
    "causal chain to its root, and resolve the underlying cause rather than any surface "
    "symptom.\n"
    "Do not stop reasoning until you have independently verified the solution from multiple "
    "angles and are certain that no assumption remains unchecked and no error remains "
    "undiscovered.\n\n";

constexpr std::string_view kResponseFormatPrefix =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

struct Tags {
  std::string_view block, invoke, param;
};
Tags tags_for(Variant v) {
  if (v == Variant::V41) return {" calls", " invoke", " parameter"};
  return {"tool_calls", "invoke", "parameter"};
}

std::string_view task_token(std::string_view task) {
  if (task == "action") return "<｜action｜>";
  if (task == "query") return "<｜query｜>";
  if (task == "authority") return "<｜authority｜>";
  if (task == "domain") return "<｜domain｜>";
  if (task == "title") return "<｜title｜>";
  if (task == "read_url") return "<｜read_url｜>";
  throw Error("chat: invalid task '" + std::string(task) +
              "' (valid: action, query, authority, domain, title, read_url)");
}

bool is_image_type(std::string_view t) {
  return t == "image_url" || t == "image" || t == "input_image";
}

using Segs = std::vector<PromptSegment>;

// Protocol markers that may appear inside encoder template text (tools section, DSML).
constexpr std::string_view kTemplateMarkers[] = {kBos,           kEos,   kUser,      kAssistant,
                                                 kSystem,        kThinkStart, kThinkEnd, kDsml,
                                                 kLatestReminder, kImage};

// Builds the prompt as segments: encoder-emitted special markers, and text (template text
// and message content) with adjacent text merged.
class Out {
 public:
  void text(std::string_view s) {
    if (s.empty()) return;
    if (!segs_.empty() && !segs_.back().special) segs_.back().text.append(s);
    else segs_.push_back({std::string(s), false});
  }
  void special(std::string_view s) { segs_.push_back({std::string(s), true}); }
  // Encoder template text: known markers in it become special segments.
  void tmpl(std::string_view s) {
    while (!s.empty()) {
      size_t best = std::string_view::npos, len = 0;
      for (std::string_view m : kTemplateMarkers) {
        const size_t pos = s.find(m);
        if (pos < best) best = pos, len = m.size();
      }
      if (best == std::string_view::npos) {
        text(s);
        return;
      }
      text(s.substr(0, best));
      special(s.substr(best, len));
      s.remove_prefix(best + len);
    }
  }
  void append(const Segs& o) {
    for (const auto& x : o) {
      if (x.special) special(x.text);
      else text(x.text);
    }
  }
  Segs take() { return std::move(segs_); }

 private:
  Segs segs_;
};

std::string join(const Segs& segs) {
  std::string s;
  for (const auto& x : segs) s += x.text;
  return s;
}

// A message after tool-merging (the reference's content_blocks form).
struct Block {
  enum Kind { Text, ToolResult } kind = Text;
  Segs content;             // text (or image placeholder), or the tool result content
  std::string tool_use_id;  // ToolResult
};

struct Msg {
  Role role = Role::User;
  std::string content;
  std::optional<Segs> content_parts;  // content given as parts (non-user roles)
  bool has_blocks = false;
  std::vector<Block> blocks;
  std::optional<std::string> reasoning;
  std::vector<ToolCall> tool_calls;
  std::vector<Tool> tools;
  std::optional<nlohmann::ordered_json> response_format;
  std::optional<std::string> task;
  bool wo_eos = false;
};

Segs text_seg(std::string s) { return Segs{PromptSegment{std::move(s), false}}; }

// Content of a tool result: parts joined by "\n\n" (V4.1 images become the placeholder).
// Text and image parts of a non-user message (V4.1 reference: the message content becomes
// its text blocks, images already replaced by the placeholder, joined by "\n\n"; other part
// types are left out). V4 keeps the text parts only.
Segs text_and_image_parts(const Message& m, Variant v) {
  Out out;
  bool first = true;
  for (const auto& p : m.parts) {
    const bool image = is_image_type(p.type);
    check(!image || v == Variant::V41, "chat: image content parts need the V4.1 encoder");
    if (p.type != "text" && !image) continue;
    if (!first) out.text("\n\n");
    first = false;
    if (image) out.special(kImage);
    else out.text(p.text);
  }
  return out.take();
}

Segs tool_result_content(const Message& m, Variant v) {
  if (m.parts.empty()) return text_seg(m.content);
  if (v == Variant::V41) return text_and_image_parts(m, v);
  // V4: the reference renders each part of a list content (non-text as "[Unsupported T]").
  Out out;
  bool first = true;
  for (const auto& p : m.parts) {
    if (!first) out.text("\n\n");
    first = false;
    if (p.type == "text")
      out.text(p.text);
    else if (v == Variant::V41 && is_image_type(p.type))
      out.special(kImage);
    else
      out.text("[Unsupported " + p.type + "]");
  }
  return out.take();
}

std::vector<Block> user_blocks(const Message& m, Variant v) {
  std::vector<Block> blocks;
  if (m.parts.empty()) {
    blocks.push_back({Block::Text, text_seg(m.content), {}});
    return blocks;
  }
  for (const auto& p : m.parts) {
    if (p.type == "text") {
      blocks.push_back({Block::Text, text_seg(p.text), {}});
    } else if (is_image_type(p.type)) {
      check(v == Variant::V41, "chat: image content parts need the V4.1 encoder");
      blocks.push_back({Block::Text, Segs{PromptSegment{std::string(kImage), true}}, {}});
    } else {
      blocks.push_back({Block::Text, text_seg("[Unsupported " + p.type + "]"), {}});
    }
  }
  return blocks;
}

std::vector<Msg> merge_tool_messages(const std::vector<Message>& in, Variant v) {
  std::vector<Msg> out;
  for (const auto& m : in) {
    if (m.role == Role::Tool) {
      Block b{Block::ToolResult, tool_result_content(m, v), m.tool_call_id};
      if (!out.empty() && out.back().role == Role::User && out.back().has_blocks) {
        out.back().blocks.push_back(std::move(b));
      } else {
        Msg u;
        u.role = Role::User;
        u.has_blocks = true;
        u.blocks.push_back(std::move(b));
        out.push_back(std::move(u));
      }
    } else if (m.role == Role::User) {
      auto blocks = user_blocks(m, v);
      if (!out.empty() && out.back().role == Role::User && out.back().has_blocks &&
          !out.back().task) {
        for (auto& b : blocks) out.back().blocks.push_back(std::move(b));
      } else {
        Msg u;
        u.role = Role::User;
        u.content = m.content;
        u.has_blocks = true;
        u.blocks = std::move(blocks);
        u.task = m.task;
        u.wo_eos = m.wo_eos;
        out.push_back(std::move(u));
      }
    } else {
      Msg x;
      x.role = m.role;
      x.content = m.content;
      if (!m.parts.empty()) {
        x.content_parts = text_and_image_parts(m, v);
        x.content = join(*x.content_parts);
      }
      x.reasoning = m.reasoning_content;
      x.tool_calls = m.tool_calls;
      x.tools = m.tools;
      x.response_format = m.response_format;
      x.task = m.task;
      x.wo_eos = m.wo_eos;
      out.push_back(std::move(x));
    }
  }
  return out;
}

void sort_tool_results_by_call_order(std::vector<Msg>& msgs) {
  std::map<std::string, int> order;
  for (auto& m : msgs) {
    if (m.role == Role::Assistant && !m.tool_calls.empty()) {
      order.clear();
      for (size_t i = 0; i < m.tool_calls.size(); ++i)
        if (!m.tool_calls[i].id.empty()) order[m.tool_calls[i].id] = static_cast<int>(i);
    } else if (m.role == Role::User && m.has_blocks) {
      std::vector<Block> results;
      for (const auto& b : m.blocks)
        if (b.kind == Block::ToolResult) results.push_back(b);
      if (results.size() > 1 && !order.empty()) {
        auto key = [&](const Block& b) {
          auto it = order.find(b.tool_use_id);
          return it == order.end() ? 0 : it->second;
        };
        std::stable_sort(results.begin(), results.end(),
                         [&](const Block& a, const Block& b) { return key(a) < key(b); });
        size_t k = 0;
        for (auto& b : m.blocks)
          if (b.kind == Block::ToolResult) b = results[k++];
      }
    }
  }
}

bool is_user_like(const std::vector<Msg>& msgs, size_t i, Variant v) {
  const Role r = msgs[i].role;
  return r == Role::User || r == Role::Developer ||
         (v == Variant::V41 && r == Role::System && i > 0);
}

long find_last_user_index(const std::vector<Msg>& msgs, Variant v) {
  for (size_t i = msgs.size(); i-- > 0;)
    if (is_user_like(msgs, i, v)) return static_cast<long>(i);
  return -1;
}

std::vector<Msg> drop_thinking_messages(const std::vector<Msg>& msgs, Variant v) {
  const long last = find_last_user_index(msgs, v);
  std::vector<Msg> out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const Role r = msgs[i].role;
    if (r == Role::User || r == Role::System || r == Role::Tool || r == Role::LatestReminder ||
        static_cast<long>(i) >= last) {
      out.push_back(msgs[i]);
    } else if (r == Role::Assistant) {
      Msg m = msgs[i];
      m.reasoning.reset();
      out.push_back(std::move(m));
    }
    // developer messages before the last user message are dropped
  }
  return out;
}

void encode_arguments(Out& out, const ToolCall& tc, Variant v) {
  const Tags t = tags_for(v);
  const std::string d(kDsml), P(t.param);
  nlohmann::ordered_json args;
  try {
    args = nlohmann::ordered_json::parse(tc.arguments);
  } catch (const nlohmann::json::exception&) {
    check(v == Variant::V4, "chat: tool call '" + tc.name +
                                "' arguments are not valid JSON (V4.1 needs a JSON object)");
    args = nlohmann::ordered_json::object();
    args["arguments"] = tc.arguments;
  }
  check(args.is_object(), "chat: tool call '" + tc.name + "' arguments must be a JSON object");
  bool first = true;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!first) out.text("\n");
    first = false;
    const bool is_str = it.value().is_string();
    out.tmpl("<" + d + P + " name=\"");
    out.text(it.key());
    out.tmpl(std::string("\" string=\"") + (is_str ? "true" : "false") + "\">");
    out.text(is_str ? it.value().get_ref<const std::string&>() : py_json_dumps(it.value()));
    out.tmpl("</" + d + P + ">");
  }
}

void render_tool_calls(Out& out, const std::vector<ToolCall>& calls, Variant v) {
  const Tags t = tags_for(v);
  const std::string d(kDsml), B(t.block), I(t.invoke);
  out.tmpl("\n\n<" + d + B + ">\n");
  bool first = true;
  for (const auto& tc : calls) {
    if (!first) out.text("\n");
    first = false;
    out.tmpl("<" + d + I + " name=\"");
    out.text(tc.name);
    out.tmpl("\">\n");
    encode_arguments(out, tc, v);
    out.tmpl("\n</" + d + I + ">");
  }
  out.tmpl("\n</" + d + B + ">");
}

void render_tools(Out& out, const std::vector<Tool>& tools, Variant variant);

// Python truthiness of a JSON value: null, false, 0, "", [] and {} are false.
bool py_truthy(const nlohmann::ordered_json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number()) return j.get<double>() != 0.0;
  if (j.is_string()) return !j.get_ref<const std::string&>().empty();
  if (j.is_array() || j.is_object()) return !j.empty();
  return true;
}

void system_extras(Out& out, const Msg& m, Variant v) {
  if (!m.tools.empty()) {
    out.text("\n\n");
    render_tools(out, m.tools, v);
  }
  if (m.response_format && py_truthy(*m.response_format)) {
    out.text("\n\n");
    out.text(kResponseFormatPrefix);
    out.text(py_json_dumps(*m.response_format));
  }
}

struct RenderCtx {
  Variant variant;
  bool thinking;
  bool drop_thinking;
  bool add_generation_prompt;
  std::string effort_prefix;  // thinking-mode prefix for index 0 ("" if none)
  long last_user = -1;        // find_last_user_index of the rendered list
};

void put_content(Out& out, const Msg& m) {
  if (m.content_parts) out.append(*m.content_parts);
  else out.text(m.content);
}

void render_message(Out& out, size_t i, const std::vector<Msg>& msgs, const RenderCtx& c) {
  const Msg& m = msgs[i];
  const Variant v = c.variant;
  const long last_user = c.last_user;

  const std::string effort = (i == 0 && c.thinking) ? c.effort_prefix : std::string();
  if (v == Variant::V41 && i == 0 && (!effort.empty() || m.role == Role::System))
    out.special(kSystem);
  out.text(effort);

  switch (m.role) {
    case Role::System:
      if (v == Variant::V41 && i > 0) out.special(kSystem);
      put_content(out, m);
      system_extras(out, m, v);
      break;
    case Role::Developer:
      check(!m.content.empty(), "chat: a developer message needs content");
      out.special(kUser);
      put_content(out, m);
      system_extras(out, m, v);
      break;
    case Role::User: {
      out.special(kUser);
      if (m.has_blocks) {
        bool first = true;
        for (const auto& b : m.blocks) {
          if (!first) out.text("\n\n");
          first = false;
          if (b.kind == Block::Text) {
            out.append(b.content);
          } else {
            out.text("<tool_result>");
            out.append(b.content);
            out.text("</tool_result>");
          }
        }
      } else {
        out.text(m.content);
      }
      break;
    }
    case Role::LatestReminder:
      out.special(kLatestReminder);
      put_content(out, m);
      break;
    case Role::Tool:
      throw Error("chat: internal: unmerged tool message");
    case Role::Assistant: {
      const bool prev_has_task = i > 0 && msgs[i - 1].task.has_value();
      if (c.thinking && !prev_has_task &&
          (!c.drop_thinking || static_cast<long>(i) > last_user)) {
        out.text(m.reasoning.value_or(""));
        out.special(kThinkEnd);
      }
      put_content(out, m);
      if (!m.tool_calls.empty()) render_tool_calls(out, m.tool_calls, v);
      if (!m.wo_eos) out.special(kEos);
      break;
    }
  }

  // Transition to the next assistant turn.
  if (i + 1 < msgs.size() && msgs[i + 1].role != Role::Assistant &&
      msgs[i + 1].role != Role::LatestReminder)
    return;
  const bool is_last = i + 1 == msgs.size();
  if (m.task) {
    const std::string_view tok = task_token(*m.task);
    if (is_last && !c.add_generation_prompt) return;
    if (*m.task != "action") {
      out.special(tok);
    } else {
      out.special(kAssistant);
      out.special(c.thinking ? kThinkStart : kThinkEnd);
      out.special(tok);
    }
  } else if (is_user_like(msgs, i, v)) {
    if (is_last && !c.add_generation_prompt) return;
    out.special(kAssistant);
    const bool open_thinking =
        c.thinking && (!c.drop_thinking || static_cast<long>(i) >= last_user);
    out.special(open_thinking ? kThinkStart : kThinkEnd);
  }
}

void validate_v41_text(const Message& m) {
  auto bad = [](std::string_view s) { return s.find(kImage) != std::string_view::npos; };
  check(!bad(m.content), "chat: message content contains the image token <｜deepseek_image｜>; "
                         "send images as image content parts");
  for (const auto& p : m.parts)
    check(p.type != "text" || !bad(p.text),
          "chat: text part contains the image token <｜deepseek_image｜>");
  check(!m.reasoning_content || !bad(*m.reasoning_content),
        "chat: reasoning_content contains the image token <｜deepseek_image｜>");
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return {};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string tool_schema_line(const Tool& tool) {
  if (tool.function) return py_json_dumps(*tool.function);
  nlohmann::ordered_json f = nlohmann::ordered_json::object();
  f["name"] = tool.name;
  if (tool.description) f["description"] = *tool.description;
  if (!tool.parameters.is_null()) f["parameters"] = tool.parameters;
  if (tool.strict) f["strict"] = *tool.strict;
  return py_json_dumps(f);
}

namespace {
void render_tools(Out& out, const std::vector<Tool>& tools, Variant variant) {
  const Tags t = tags_for(variant);
  const std::string d(kDsml);
  const std::string B(t.block), I(t.invoke), P(t.param);
  std::string schemas;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (i) schemas += "\n";
    schemas += tool_schema_line(tools[i]);
  }
  std::string s;
  s += "## Tools\n\n";
  s += "You have access to a set of tools to help answer the user's question. You can invoke "
       "tools by writing a \"<" + d + B + ">\" block like the following:\n\n";
  s += "<" + d + B + ">\n";
  s += "<" + d + I + " name=\"$TOOL_NAME\">\n";
  s += "<" + d + P + " name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" + d +
       P + ">\n";
  s += "...\n";
  s += "</" + d + I + ">\n";
  s += "<" + d + I + " name=\"$TOOL_NAME2\">\n";
  s += "...\n";
  s += "</" + d + I + ">\n";
  s += "</" + d + B + ">\n\n";
  s += "String parameters should be specified as is and set `string=\"true\"`. For all other "
       "types (numbers, booleans, arrays, objects), pass the value in JSON format and set "
       "`string=\"false\"`.\n\n";
  s += "If thinking_mode is enabled (triggered by <think>), you MUST output your complete "
       "reasoning inside <think>...</think> BEFORE any tool calls or final response.\n\n";
  s += "Otherwise, output directly after </think> with tool calls or final response.\n\n";
  s += "### Available Tool Schemas\n\n";
  out.tmpl(s);
  out.text(schemas);
  s = "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to "
       "invoke tool calls.\n";
  out.tmpl(s);
}
}  // namespace

std::string render_tools_section(const std::vector<Tool>& tools, Variant variant) {
  Out out;
  render_tools(out, tools, variant);
  return join(out.take());
}

int v41_effort_budget(std::string_view e) {
  if (e.empty() || e == "high" || e == "medium") return 75;
  if (e == "low" || e == "minimal") return 50;
  if (e == "max" || e == "xhigh") return 100;
  int n = 0;
  auto r = std::from_chars(e.data(), e.data() + e.size(), n);
  check(r.ec == std::errc() && r.ptr == e.data() + e.size() && n >= 1 && n <= 100,
        "chat: invalid reasoning effort '" + std::string(e) +
            "' for V4.1 (integer 1..100, or low/medium/high/xhigh/max/none)");
  return n;
}

std::string reasoning_effort_prefix(const ChatOptions& o) {
  const std::string_view e = o.reasoning_effort;
  if (e == "none") return {};
  if (o.variant == Variant::V41)
    return "Reasoning Effort: " + std::to_string(v41_effort_budget(e)) +
           " (range 1-100, the higher the value, the more thorough the reasoning)\n\n";
  const bool low = e == "low" || e == "minimal" || e == "medium";
  check(e.empty() || e == "high" || e == "max" || low,
        "chat: invalid reasoning effort '" + std::string(e) + "' for V4 (low/high/max/none)");
  if (o.v4_effort_style == V4EffortStyle::April)
    return e == "max" ? std::string(kEffortAbsoluteMax) : std::string();
  if (low) return {};
  return e == "max" ? std::string(kEffortBeyondMax) : std::string(kEffortAbsoluteMax);
}

std::vector<PromptSegment> render_chat_segments(const std::vector<Message>& messages,
                                                const std::vector<Tool>& tools,
                                                const ChatOptions& o) {
  const Variant v = o.variant;
  std::vector<Message> msgs = messages;
  size_t ctx_n = std::min(o.context_messages, msgs.size());
  if (!tools.empty()) {
    if (!msgs.empty() && (msgs[0].role == Role::System ||
                          (v == Variant::V4 && msgs[0].role == Role::Developer))) {
      msgs[0].tools = tools;
    } else {
      Message sys;
      sys.role = Role::System;
      sys.tools = tools;
      msgs.insert(msgs.begin(), std::move(sys));
      if (ctx_n > 0) ++ctx_n;
    }
  }
  for (const auto& m : msgs) {
    if (m.task) (void)task_token(*m.task);
    if (v == Variant::V41) validate_v41_text(m);
  }

  RenderCtx c;
  c.variant = v;
  c.thinking = o.thinking && o.reasoning_effort != "none";
  c.add_generation_prompt = o.add_generation_prompt;
  c.effort_prefix = reasoning_effort_prefix(o);  // validates the effort in both modes

  std::vector<Message> ctx_in(msgs.begin(), msgs.begin() + static_cast<long>(ctx_n));
  std::vector<Message> cur_in(msgs.begin() + static_cast<long>(ctx_n), msgs.end());
  std::vector<Msg> ctx = merge_tool_messages(ctx_in, v);
  std::vector<Msg> cur = merge_tool_messages(cur_in, v);
  std::vector<Msg> full = ctx;
  full.insert(full.end(), cur.begin(), cur.end());
  sort_tool_results_by_call_order(full);

  Out out;
  if (o.add_bos && ctx.empty()) out.special(kBos);

  bool drop = o.drop_thinking;
  for (const auto& m : full)
    if (!m.tools.empty()) drop = false;
  c.drop_thinking = drop;

  size_t num_to_render = cur.size();
  if (c.thinking && drop) {
    full = drop_thinking_messages(full, v);
    num_to_render = full.size() - drop_thinking_messages(ctx, v).size();
  }
  const size_t ctx_len = full.size() - num_to_render;
  c.last_user = find_last_user_index(full, v);
  for (size_t i = ctx_len; i < full.size(); ++i) render_message(out, i, full, c);
  return out.take();
}

std::string render_chat(const std::vector<Message>& messages, const std::vector<Tool>& tools,
                        const ChatOptions& options) {
  return join(render_chat_segments(messages, tools, options));
}

Variant detect_variant(const std::filesystem::path& dir) {
  const std::string cfg = read_file(dir / "config.json");
  if (!cfg.empty()) {
    auto j = nlohmann::json::parse(cfg, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("model_type") && j["model_type"].is_string()) {
      const std::string mt = j["model_type"].get<std::string>();
      if (mt == "deepseek_v41") return Variant::V41;
      if (mt == "deepseek_v4") return Variant::V4;
    }
  }
  const std::string tok = read_file(dir / "tokenizer.json");
  if (!tok.empty()) {
    auto j = nlohmann::json::parse(tok, nullptr, false);
    if (j.is_object() && j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const auto& t : j["added_tokens"])
        if (t.is_object() && t.contains("content") && t["content"].is_string() &&
            t["content"].get<std::string>() == kSystem)
          return Variant::V41;
  }
  return Variant::V4;
}

V4EffortStyle detect_v4_effort_style(const std::filesystem::path& dir) {
  const std::string enc = read_file(dir / "encoding" / "encoding_dsv4.py");
  return enc.find("Beyond maximum") != std::string::npos ? V4EffortStyle::Flash0731
                                                         : V4EffortStyle::April;
}

Variant parse_variant(std::string_view n) {
  if (n == "v4" || n == "V4" || n == "deepseek_v4") return Variant::V4;
  if (n == "v4.1" || n == "V4.1" || n == "v41" || n == "V41" || n == "deepseek_v41")
    return Variant::V41;
  throw Error("chat: unknown chat variant '" + std::string(n) + "' (v4 or v4.1)");
}

std::string_view variant_name(Variant v) { return v == Variant::V41 ? "v4.1" : "v4"; }

}  // namespace dsv4::chat
