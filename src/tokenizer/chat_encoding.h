// DeepSeek-V4 / V4.1 chat encoding: a conversation -> the exact prompt text of the official
// encoders (V4: encoding/encoding_dsv4.py, V4.1: encoding/encoding.py), spec
// arch-v41-tokenizer-chat.md Part C. Special tokens appear as their literal strings
// ("<｜User｜>", "<｜Assistant｜>", ...); tokenize the result with special tokens allowed and
// no extra BOS (the BOS is already in the text). Decisions on open points: docs/chat.md.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv4::chat {

// Exact protocol strings (spec C.1 / B.4).
inline constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kUser = "<｜User｜>";
inline constexpr std::string_view kAssistant = "<｜Assistant｜>";
inline constexpr std::string_view kSystem = "<｜System｜>";  // V4.1 only
inline constexpr std::string_view kThinkStart = "<think>";
inline constexpr std::string_view kThinkEnd = "</think>";
inline constexpr std::string_view kDsml = "｜DSML｜";
inline constexpr std::string_view kLatestReminder = "<｜latest_reminder｜>";
inline constexpr std::string_view kImage = "<｜deepseek_image｜>";  // V4.1 only

enum class Variant { V4, V41 };

// Which V4 effort texts to use (spec C.1): the April release encoder knows only "max"
// (Absolute maximum); the V4-Flash-0731 encoder maps "high" (also the default when thinking)
// to Absolute maximum and "max" to Beyond maximum.
enum class V4EffortStyle { April, Flash0731 };

enum class Role { System, Developer, User, Assistant, Tool, LatestReminder };

struct ToolCall {
  std::string id;         // OpenAI tool_calls[].id (drives tool-result ordering)
  std::string name;       // function.name
  std::string arguments;  // function.arguments: a JSON text (object expected)
  bool operator==(const ToolCall&) const = default;
};

// One OpenAI content part. type "text" carries text; "image_url" / "image" / "input_image"
// are images (V4.1 renders them as <｜deepseek_image｜>); any other type renders as
// "[Unsupported TYPE]" like the reference.
struct ContentPart {
  std::string type = "text";
  std::string text;
};

// A tool declaration (the OpenAI tools[].function object). The schema line in the prompt is
// Python json.dumps of {name, description, parameters, strict} in that order, absent fields
// omitted. If `function` is set it is dumped as is instead (key order as received).
struct Tool {
  std::string name;
  std::optional<std::string> description;
  nlohmann::ordered_json parameters;  // null = omitted
  std::optional<bool> strict;
  std::optional<nlohmann::ordered_json> function;
};

struct Message {
  Role role = Role::User;
  std::string content;
  std::vector<ContentPart> parts;  // if non-empty, used instead of `content`
  std::optional<std::string> reasoning_content;  // assistant
  std::vector<ToolCall> tool_calls;              // assistant
  std::string tool_call_id;                      // tool result
  std::string name;                              // tool result (informational)
  std::vector<Tool> tools;                       // tools declared on a system/developer message
  std::optional<nlohmann::ordered_json> response_format;  // system/developer
  std::optional<std::string> task;  // DeepSeek quick-instruction task (action, query, ...)
  bool wo_eos = false;              // assistant prefill: no EOS after this message
};

struct ChatOptions {
  Variant variant = Variant::V4;
  V4EffortStyle v4_effort_style = V4EffortStyle::April;
  bool thinking = true;  // thinking mode ("thinking") vs chat mode ("chat")
  // Reasoning effort, empty = unset. V4: "high" / "max" (0731 style also "low"); "low",
  // "minimal", "medium" are accepted as "low". V4.1: an integer 1..100 as text, or an alias
  // low=50, high=75 (default), max=100, plus medium=75, xhigh=100, minimal=50.
  // "none" switches thinking off (both variants).
  std::string reasoning_effort;
  bool drop_thinking = true;  // drop reasoning of turns before the last user message
  bool add_bos = true;        // emit BOS (only when there is no context)
  // End with the assistant transition (<｜Assistant｜><think> / </think>) after a final
  // user-like message. The reference always does; false omits it (extension).
  bool add_generation_prompt = true;
  // The first `context_messages` messages were already encoded earlier (reference
  // `context`): they take part in the rules but are not rendered, and no BOS is emitted.
  size_t context_messages = 0;
};

// One piece of a rendered prompt: a protocol marker written by the encoder (special = true:
// BOS, EOS, <｜User｜>, <｜Assistant｜>, <｜System｜>, <think>, </think>, ｜DSML｜, task and
// reminder tokens, image placeholders) or text (template text and message content).
// Concatenating the texts gives render_chat(). For protection against special-token
// injection (spec C.7.9), map special segments to their token ids and tokenize text segments
// WITHOUT special-token matching: for ordinary content this gives exactly the ids of the
// string encoder, and marker strings inside user content stay plain text.
struct PromptSegment {
  std::string text;
  bool special = false;
  bool operator==(const PromptSegment&) const = default;
};

// Renders a conversation to the exact prompt text. Request-level `tools` (OpenAI
// tools[].function objects) are attached to the leading system message (V4: or developer
// message), replacing tools already there; if the conversation does not start with one, an
// empty system message is inserted first. Throws dsv4::Error on invalid input (unknown task,
// developer message without content, V4.1 non-object tool arguments, invalid effort, image
// placeholder text in V4.1 content, images with V4).
std::string render_chat(const std::vector<Message>& messages, const std::vector<Tool>& tools,
                        const ChatOptions& options);

// The same prompt as segments (see PromptSegment); adjacent text is merged.
std::vector<PromptSegment> render_chat_segments(const std::vector<Message>& messages,
                                                const std::vector<Tool>& tools,
                                                const ChatOptions& options);

// The "## Tools" section for a tool list (without the leading "\n\n").
std::string render_tools_section(const std::vector<Tool>& tools, Variant variant);

// Python json.dumps of the tool's function object (one schema line).
std::string tool_schema_line(const Tool& tool);

// The reasoning-effort prefix text for the options ("" when none is emitted), assuming
// thinking mode. Throws dsv4::Error for an invalid effort.
std::string reasoning_effort_prefix(const ChatOptions& options);

// V4.1 numeric budget for an effort string (alias or integer 1..100); empty = default 75.
// Throws dsv4::Error when invalid.
int v41_effort_budget(std::string_view effort);

// Dialect detection from a checkpoint directory (rule in docs/chat.md):
// config.json model_type "deepseek_v41" -> V41, "deepseek_v4" -> V4; otherwise
// tokenizer.json declaring the added token "<｜System｜>" -> V41; otherwise V4.
Variant detect_variant(const std::filesystem::path& model_dir);
// encoding/encoding_dsv4.py containing the "Beyond maximum" effort text -> Flash0731, else April.
V4EffortStyle detect_v4_effort_style(const std::filesystem::path& model_dir);

// "v4" / "v4.1" (also "v41", "deepseek_v4", "deepseek_v41") for override flags.
Variant parse_variant(std::string_view name);
std::string_view variant_name(Variant v);

}  // namespace dsv4::chat
