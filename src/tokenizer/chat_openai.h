// OpenAI /v1/chat/completions request pieces -> dsv4::chat types (spec C.7), so a server can
// hand `messages` and `tools` straight to render_chat and map the thinking/effort switches.
#pragma once

#include <nlohmann/json.hpp>

#include "tokenizer/chat_encoding.h"

namespace dsv4::chat {

// `messages` array: roles system / developer / user / assistant / tool (and DeepSeek's
// latest_reminder); content as a string, null, or a list of parts (text, image_url / image /
// input_image, others kept as their type); assistant reasoning_content (alias `reasoning`)
// and tool_calls[].function.{name, arguments} (arguments as a JSON string or an object);
// tool_call_id / name on tool messages. Throws dsv4::Error naming the bad field.
std::vector<Message> messages_from_openai(const nlohmann::ordered_json& messages);

// `tools` array of {"type": "function", "function": {...}}; the function object is kept in
// the order received (Tool::function). Throws dsv4::Error on a malformed entry.
std::vector<Tool> tools_from_openai(const nlohmann::ordered_json& tools);

// Applies the request's thinking / effort switches to options (C.6, C.7): thinking defaults
// to on; chat_template_kwargs.thinking / .enable_thinking or thinking.type ("enabled" /
// "disabled") set it; reasoning_effort (top level, chat_template_kwargs.reasoning_effort, or
// thinking.effort, which wins) sets the effort, "none" turns thinking off; a V4 effort that
// is not a string is ignored; a V4.1 integer is accepted. chat_template_kwargs.drop_thinking
// overrides drop_thinking.
void apply_openai_switches(const nlohmann::ordered_json& request, ChatOptions& options);

}  // namespace dsv4::chat
