// dsv4 serve: the API layer. Parses an OpenAI / Anthropic / Ollama request body (JSON) into
// one internal request (GenRequest) with precise validation errors, independent of any I/O,
// so the same code is exercised by the HTTP server, the unit tests and the fuzzer.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_encoding.h"

namespace dsv4::server {

using json = nlohmann::ordered_json;

enum class Api { OpenAIChat, OpenAICompletion, OpenAIResponses, Anthropic, AnthropicCount, OllamaChat, OllamaGenerate };

// A request the server refuses; rendered in the error format of the API that was called.
struct ApiError : std::runtime_error {
  int status;
  std::string type;   // OpenAI error.type / Anthropic error.type
  std::string param;  // offending field (OpenAI error.param), may be empty
  std::string code;   // OpenAI error.code, may be empty
  ApiError(int status_, std::string type_, const std::string& message, std::string param_ = {},
           std::string code_ = {})
      : std::runtime_error(message), status(status_), type(std::move(type_)), param(std::move(param_)),
        code(std::move(code_)) {}
};
ApiError bad_request(const std::string& message, const std::string& param = {});

// What the parser needs to know about the served model.
struct ParseContext {
  chat::Variant variant = chat::Variant::V4;
  chat::V4EffortStyle effort_style = chat::V4EffortStyle::April;
  std::vector<std::string> model_names;  // accepted "model" values (first = canonical)
  bool require_model = true;
  double default_temperature = 1.0;
  double default_top_p = 1.0;
  int64_t default_max_tokens = -1;  // -1: up to the context
};

// The common internal request.
struct GenRequest {
  Api api = Api::OpenAIChat;
  std::string model;
  bool stream = false;
  // Prompt: either a conversation rendered with the chat encoder or raw text.
  bool is_chat = true;
  std::vector<chat::Message> messages;
  std::vector<chat::Tool> tools;
  chat::ChatOptions chat_options;
  std::string raw_prompt;               // !is_chat
  std::vector<int32_t> prompt_ids;      // !is_chat: explicit token ids (OpenAI completions)
  bool raw_special = true;              // !is_chat: marker strings in raw_prompt become ids
  bool tools_enabled = false;           // parse DSML tool calls into the response
  std::string tool_choice = "auto";     // auto / none / required / a function name
  // Generation.
  int64_t max_tokens = -1;              // -1 = up to the context
  double temperature = 1.0, top_p = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool logprobs = false;
  int64_t top_logprobs = 0;
  bool include_usage = false;           // OpenAI stream_options.include_usage
  bool echo = false;                    // OpenAI completions echo
  std::string suffix;                   // Responses: previous-id etc. are not supported
  std::string instructions_note;
  bool ollama_raw = false;
};

// Parsers. Throw ApiError (status 400 / 404) with a message naming the offending field.
GenRequest parse_openai_chat(const json& body, const ParseContext& ctx);
GenRequest parse_openai_completion(const json& body, const ParseContext& ctx);
GenRequest parse_openai_responses(const json& body, const ParseContext& ctx);
GenRequest parse_anthropic_messages(const json& body, const ParseContext& ctx, bool count_only = false);
GenRequest parse_ollama_chat(const json& body, const ParseContext& ctx);
GenRequest parse_ollama_generate(const json& body, const ParseContext& ctx);

// Parses a request body of the given API (JSON text) -> GenRequest; the fuzzer's entry point.
GenRequest parse_request(Api api, const std::string& body, const ParseContext& ctx);

// Renders a chat request to its prompt segments (marker / text), see chat::PromptSegment.
// Raw requests give one segment (special = false) or, when raw_special, the text as is.
std::vector<chat::PromptSegment> render_prompt(const GenRequest& r);

// Whether the output starts inside the reasoning part (prompt ended with <think>).
bool request_thinking(const GenRequest& r);

// "call_" + 24 hex digits / "toolu_" + 24 alphanumerics etc.
std::string random_id(const std::string& prefix, size_t n = 24);

// json.dump that never throws on invalid UTF-8 (replaces it).
std::string dump(const json& j);

}  // namespace dsv4::server
