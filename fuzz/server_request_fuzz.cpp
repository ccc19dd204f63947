// libFuzzer target for dsv4 serve's request parsing (apps/server/api.*) and response mapping
// (apps/server/output.*).
//
// Input layout: byte 0 selects the API (OpenAI chat / completions / responses, Anthropic
// messages / count_tokens, Ollama chat / generate) and, in bit 3, V4 vs V4.1; the rest is the
// request body. Checks: parsing either succeeds or throws ApiError with a 4xx status (no other
// exception, no crash); an accepted request renders to a prompt (or ApiError); the body text
// fed back as "model output" through the stop-string/DSML pipeline and the API's writer,
// streaming and not, never crashes and never emits the DSML marker.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api.h"
#include "output.h"

using namespace dsv4::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const Api kApis[] = {Api::OpenAIChat, Api::OpenAICompletion, Api::OpenAIResponses, Api::Anthropic,
                              Api::AnthropicCount, Api::OllamaChat, Api::OllamaGenerate, Api::OpenAIChat};
  const Api api = kApis[data[0] & 7];
  ParseContext ctx;
  ctx.model_names = {"tiny"};
  ctx.require_model = false;
  ctx.variant = (data[0] & 8) ? dsv4::chat::Variant::V41 : dsv4::chat::Variant::V4;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  GenRequest r;
  try {
    r = parse_request(api, body, ctx);
  } catch (const ApiError& e) {
    if (e.status < 400 || e.status > 499) std::abort();
    return 0;
  }
  try {
    (void)render_prompt(r);
  } catch (const ApiError& e) {
    if (e.status != 400) std::abort();
  }
  // Output side: the body as generated text.
  dsv4::chat::ParseOptions po;
  po.variant = ctx.variant;
  po.thinking = r.chat_options.thinking;
  po.tools_enabled = r.tools_enabled;
  ResponseMeta meta{"id", "tiny", 0, 3, po.thinking, ""};
  auto w = make_writer(r, meta);
  TextPipeline p(nullptr, po, r.stop, !r.is_chat);
  std::string streamed = w->stream_begin();
  dsv4::chat::ParsedMessage m;
  const size_t step = 1 + (data[0] >> 4);
  for (size_t i = 0; i < body.size(); i += step) {
    auto d = p.push_text(std::string_view(body).substr(i, step));
    m.append(d);
    streamed += w->stream_delta(d, nullptr);
  }
  auto d = p.finish();
  m.append(d);
  streamed += w->stream_delta(d, nullptr);
  Outcome o;
  streamed += w->stream_end(o);
  const std::string full = dump(w->final_body(m, o, json::array()));
  if (r.is_chat && body.find("DSML") == std::string::npos &&
      (streamed.find("｜DSML｜") != std::string::npos || full.find("｜DSML｜") != std::string::npos))
    std::abort();
  return 0;
}
