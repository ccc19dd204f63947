// Output mapping with scripted model text: reasoning, content, tool calls and stop strings in
// each API's streaming and non-streaming shape; DSML never leaks.
#include <gtest/gtest.h>

#include "output.h"

using namespace dsv4::server;

namespace {

const std::string kCall =
    "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
    "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n</｜DSML｜tool_calls>";

// Streams `text` in small chunks through a pipeline + writer; returns the streamed bytes.
std::string stream(const GenRequest& r, const std::string& text, bool thinking, Outcome o = {}) {
  ResponseMeta meta{"id1", "tiny", 1, 10, thinking, ""};
  auto w = make_writer(r, meta);
  dsv4::chat::ParseOptions po;
  po.thinking = thinking;
  po.tools_enabled = r.tools_enabled;
  TextPipeline p(nullptr, po, r.stop, !r.is_chat);
  std::string out = w->stream_begin();
  for (size_t i = 0; i < text.size(); i += 3) {
    auto d = p.push_text(text.substr(i, 3));
    out += w->stream_delta(d, nullptr);
    if (p.stopped()) break;
  }
  auto d = p.finish();
  out += w->stream_delta(d, nullptr);
  if (p.stopped()) o.finish = Finish::StopString, o.stop_sequence = p.stop_hit();
  return out + w->stream_end(o);
}

json final(const GenRequest& r, const std::string& text, bool thinking, Outcome o = {}) {
  ResponseMeta meta{"id1", "tiny", 1, 10, thinking, ""};
  auto w = make_writer(r, meta);
  dsv4::chat::ParseOptions po;
  po.thinking = thinking;
  po.tools_enabled = r.tools_enabled;
  TextPipeline p(nullptr, po, r.stop, !r.is_chat);
  dsv4::chat::ParsedMessage m;
  m.append(p.push_text(text));
  m.append(p.finish());
  if (p.stopped()) o.finish = Finish::StopString, o.stop_sequence = p.stop_hit();
  if (o.finish == Finish::Eos && !m.tool_calls.empty()) o.finish = Finish::ToolCalls;
  return w->final_body(m, o, json::array());
}

GenRequest req(Api api, bool tools = true) {
  GenRequest r;
  r.api = api;
  r.tools_enabled = tools;
  return r;
}

}  // namespace

TEST(ServerOutput, OpenAIReasoningAndToolCall) {
  const std::string text = "let me think</think>Checking.\n\n" + kCall;
  json j = final(req(Api::OpenAIChat), text, true);
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg["reasoning_content"], "let me think");
  EXPECT_EQ(msg["content"], "Checking.");
  ASSERT_EQ(msg["tool_calls"].size(), 1u);
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(msg["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);

  const std::string s = stream(req(Api::OpenAIChat), text, true);
  EXPECT_EQ(s.find("DSML"), std::string::npos);
  EXPECT_EQ(s.find("think>"), std::string::npos);
  EXPECT_NE(s.find("\"reasoning_content\":\"let"), std::string::npos);
  EXPECT_NE(s.find("\"tool_calls\":[{\"index\":0"), std::string::npos);
  EXPECT_NE(s.find("data: [DONE]"), std::string::npos);
}

TEST(ServerOutput, StopString) {
  GenRequest r = req(Api::OpenAIChat, false);
  r.stop = {"STOP"};
  json j = final(r, "hello STOP world", false);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hello ");
  const std::string s = stream(r, "hello STOP world", false);
  EXPECT_EQ(s.find("ST"), std::string::npos);  // partial match held back, never emitted
  EXPECT_EQ(s.find("world"), std::string::npos);
}

TEST(ServerOutput, AnthropicBlocks) {
  const std::string text = "hmm</think>Sure.\n\n" + kCall;
  json j = final(req(Api::Anthropic), text, true);
  ASSERT_EQ(j["content"].size(), 3u);
  EXPECT_EQ(j["content"][0]["type"], "thinking");
  EXPECT_EQ(j["content"][1]["text"], "Sure.");
  EXPECT_EQ(j["content"][2]["type"], "tool_use");
  EXPECT_EQ(j["content"][2]["input"]["city"], "Paris");
  EXPECT_EQ(j["stop_reason"], "tool_use");
  const std::string s = stream(req(Api::Anthropic), text, true);
  EXPECT_NE(s.find("event: message_start"), std::string::npos);
  EXPECT_NE(s.find("thinking_delta"), std::string::npos);
  EXPECT_NE(s.find("input_json_delta"), std::string::npos);
  EXPECT_NE(s.find("event: message_stop"), std::string::npos);
  EXPECT_EQ(s.find("DSML"), std::string::npos);
}

TEST(ServerOutput, OllamaAndResponses) {
  const std::string text = "hmm</think>Sure.\n\n" + kCall;
  json o = final(req(Api::OllamaChat), text, true);
  EXPECT_EQ(o["message"]["thinking"], "hmm");
  EXPECT_EQ(o["message"]["tool_calls"][0]["function"]["arguments"]["city"], "Paris");
  EXPECT_EQ(o["done"], true);
  json r = final(req(Api::OpenAIResponses), text, true);
  ASSERT_EQ(r["output"].size(), 3u);
  EXPECT_EQ(r["output"][0]["type"], "reasoning");
  EXPECT_EQ(r["output"][1]["content"][0]["text"], "Sure.");
  EXPECT_EQ(r["output"][2]["type"], "function_call");
  const std::string s = stream(req(Api::OpenAIResponses), text, true);
  EXPECT_NE(s.find("response.completed"), std::string::npos);
  EXPECT_EQ(s.find("DSML"), std::string::npos);
}

TEST(ServerOutput, ToolsDisabledNeverLeaks) {
  json j = final(req(Api::OpenAIChat, false), "Answer.\n\n" + kCall, false);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Answer.");
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
}
