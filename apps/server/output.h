// dsv4 serve: generated tokens -> API responses. TextPipeline turns token ids into text
// (streaming UTF-8 decode), applies stop strings (partial matches held back) and runs the
// chat OutputParser (reasoning / content / DSML tool calls; markup never leaks). A
// ResponseWriter per API turns parse deltas into SSE / NDJSON chunks, or the final message
// into one JSON body. No I/O here: the unit tests feed scripted text.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api.h"
#include "tokenizer/parse_output.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

class TextPipeline {
 public:
  // tok may be null when only push_text is used. raw: no chat parsing (completions).
  TextPipeline(const tok::Tokenizer* tok, chat::ParseOptions popt, std::vector<std::string> stops, bool raw);
  chat::ParseDelta push_token(int32_t id);
  chat::ParseDelta push_text(std::string_view text);
  chat::ParseDelta finish();
  bool stopped() const { return !stop_hit_.empty(); }
  const std::string& stop_hit() const { return stop_hit_; }

 private:
  void feed(std::string_view s, chat::ParseDelta& d);
  std::optional<tok::StreamDecoder> dec_;
  chat::OutputParser parser_;
  std::vector<std::string> stops_;
  bool raw_;
  std::string pending_;
  std::string stop_hit_;
  bool finished_ = false;
};

enum class Finish { Eos, StopString, Length, ToolCalls, Cancelled, Error };

struct Outcome {
  Finish finish = Finish::Eos;
  std::string stop_sequence;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  double queue_s = 0, prefill_s = 0, decode_s = 0, total_s = 0;
  std::string error;
};

struct ResponseMeta {
  std::string id;       // chatcmpl-..., msg_..., resp_...
  std::string model;
  int64_t created = 0;  // unix seconds
  int64_t prompt_tokens = 0;
  bool thinking = false;
  std::string echo_text;  // completions echo
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual const char* stream_content_type() const { return "text/event-stream"; }
  virtual std::string stream_begin() { return {}; }
  // logprobs: OpenAI logprob entries for the tokens that arrived with this delta (or null).
  virtual std::string stream_delta(chat::ParseDelta& d, const json& logprobs) = 0;
  virtual std::string stream_end(const Outcome& o) = 0;
  virtual std::string stream_error(const std::string& message) = 0;
  virtual std::string stream_keepalive() { return ": keep-alive\n\n"; }
  virtual json final_body(chat::ParsedMessage& m, const Outcome& o, const json& logprobs) = 0;
};

std::unique_ptr<ResponseWriter> make_writer(const GenRequest& r, const ResponseMeta& meta);

// Error bodies in each API's own format.
json error_body(Api api, const ApiError& e);
// Finish reason names per API.
std::string openai_finish(Finish f);
std::string anthropic_stop_reason(Finish f);

// "data: <json>\n\n" / "event: <name>\ndata: <json>\n\n".
std::string sse(const json& j);
std::string sse_event(const std::string& event, const json& j);

// ISO 8601 UTC time with nanoseconds (Ollama created_at).
std::string iso_now();

}  // namespace dsv4::server
