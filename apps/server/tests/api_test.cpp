// Request parsing: each API's JSON -> GenRequest, with precise 400/404 errors.
#include <gtest/gtest.h>

#include "api.h"

using namespace dsv4::server;
using dsv4::chat::Role;

namespace {

ParseContext ctx() {
  ParseContext c;
  c.model_names = {"tiny", "dsv4"};
  return c;
}

int status_of(Api api, const std::string& body) {
  try {
    parse_request(api, body, ctx());
  } catch (const ApiError& e) {
    return e.status;
  }
  return 200;
}

std::string message_of(Api api, const std::string& body) {
  try {
    parse_request(api, body, ctx());
  } catch (const ApiError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ServerApi, OpenAIChatBasic) {
  auto r = parse_request(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"system","content":"s"},
    {"role":"user","content":"hi"}],"max_tokens":5,"temperature":0,"stop":"x","seed":3,"stream":true,
    "stream_options":{"include_usage":true},"unknown_field":{"a":1}})", ctx());
  EXPECT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.temperature, 0);
  ASSERT_EQ(r.stop.size(), 1u);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(*r.seed, 3u);
  EXPECT_TRUE(r.chat_options.thinking);  // default on (spec C.7)
}

TEST(ServerApi, OpenAIThinkingSwitches) {
  auto a = parse_request(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],
    "chat_template_kwargs":{"thinking":false}})", ctx());
  EXPECT_FALSE(a.chat_options.thinking);
  auto b = parse_request(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],
    "reasoning_effort":"none"})", ctx());
  auto segs = render_prompt(b);
  std::string text;
  for (auto& s : segs) text += s.text;
  EXPECT_NE(text.find("</think>"), std::string::npos);
  auto c = parse_request(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],
    "thinking":{"type":"disabled"}})", ctx());
  EXPECT_FALSE(c.chat_options.thinking);
}

TEST(ServerApi, OpenAIToolsAndChoice) {
  const char* tools = R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])";
  auto a = parse_request(Api::OpenAIChat, std::string(R"({"model":"tiny","messages":[{"role":"user","content":"w"}],)") + tools + "}", ctx());
  EXPECT_TRUE(a.tools_enabled);
  auto b = parse_request(Api::OpenAIChat, std::string(R"({"model":"tiny","messages":[{"role":"user","content":"w"}],"tool_choice":"none",)") + tools + "}", ctx());
  EXPECT_FALSE(b.tools_enabled);
  std::string text;
  for (auto& s : render_prompt(a)) text += s.text;
  EXPECT_NE(text.find("get_weather"), std::string::npos);
}

TEST(ServerApi, OpenAIErrors) {
  EXPECT_EQ(status_of(Api::OpenAIChat, "{"), 400);
  EXPECT_NE(message_of(Api::OpenAIChat, "{").find("malformed JSON"), std::string::npos);
  EXPECT_EQ(status_of(Api::OpenAIChat, "[]"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[],"x":1e99999})"), 400);  // number overflow
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny"})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"nope","messages":[{"role":"user","content":"x"}]})"), 404);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":"hi"})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":"hot"})"), 400);
  EXPECT_NE(message_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":"hot"})")
                .find("'temperature' must be a number"),
            std::string::npos);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":0})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"wizard","content":"x"}]})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"top_p":2})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"stop":[1]})"), 400);
}

TEST(ServerApi, Anthropic) {
  auto r = parse_request(Api::Anthropic, R"({"model":"tiny","max_tokens":10,"system":"be brief",
    "messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"tool_use","id":"toolu_1","name":"w","input":{"city":"Paris"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}],
    "tools":[{"name":"w","description":"weather","input_schema":{"type":"object"}}],
    "thinking":{"type":"enabled","budget_tokens":1024}})", ctx());
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, Role::System);
  EXPECT_EQ(r.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(r.messages[2].tool_calls[0].arguments, R"({"city": "Paris"})");
  EXPECT_EQ(r.messages[3].role, Role::Tool);
  EXPECT_EQ(r.messages[3].tool_call_id, "toolu_1");
  EXPECT_TRUE(r.tools_enabled);
  EXPECT_TRUE(r.chat_options.thinking);
  EXPECT_EQ(status_of(Api::Anthropic, R"({"model":"tiny","messages":[{"role":"user","content":"x"}]})"), 400);  // max_tokens
  EXPECT_EQ(status_of(Api::Anthropic, R"({"model":"tiny","max_tokens":5,"messages":[{"role":"system","content":"x"}]})"), 400);
}

TEST(ServerApi, Ollama) {
  auto r = parse_request(Api::OllamaChat, R"({"model":"tiny:latest","messages":[{"role":"user","content":"x"},
    {"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},
    {"role":"tool","content":"42"}],"options":{"temperature":0,"num_predict":7,"stop":["\n"]},"think":true})", ctx());
  EXPECT_TRUE(r.stream);  // Ollama default
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0);
  EXPECT_TRUE(r.chat_options.thinking);
  EXPECT_EQ(r.messages[2].tool_call_id, r.messages[1].tool_calls[0].id);
  auto g = parse_request(Api::OllamaGenerate, R"({"model":"tiny","prompt":"hello","stream":false})", ctx());
  EXPECT_FALSE(g.stream);
  EXPECT_FALSE(g.chat_options.thinking);
  EXPECT_EQ(status_of(Api::OllamaChat, R"({"model":"tiny","messages":[{"role":"user","content":5}]})"), 400);
}

TEST(ServerApi, CompletionsAndResponses) {
  auto c = parse_request(Api::OpenAICompletion, R"({"model":"tiny","prompt":"abc","max_tokens":3,"logprobs":2})", ctx());
  EXPECT_FALSE(c.is_chat);
  EXPECT_EQ(c.top_logprobs, 2);
  auto ids = parse_request(Api::OpenAICompletion, R"({"model":"tiny","prompt":[1,2,3]})", ctx());
  EXPECT_EQ(ids.prompt_ids.size(), 3u);
  auto r = parse_request(Api::OpenAIResponses, R"({"model":"tiny","instructions":"sys","input":[
    {"role":"user","content":[{"type":"input_text","text":"hi"}]},
    {"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"},
    {"type":"function_call_output","call_id":"call_1","output":"ok"}],
    "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"max_output_tokens":9})", ctx());
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[3].role, Role::Tool);
  EXPECT_TRUE(r.tools_enabled);
  EXPECT_EQ(r.max_tokens, 9);
}

TEST(ServerApi, DeepNestingAndChoices) {
  std::string deep = R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":)";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}}]}";
  EXPECT_EQ(status_of(Api::OpenAIChat, deep), 400);
  EXPECT_NE(message_of(Api::OpenAIChat, deep).find("nested too deeply"), std::string::npos);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"[[[[{{{{"}]})"), 200);
  EXPECT_EQ(status_of(Api::OpenAIChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"n":2})"), 400);
  EXPECT_EQ(status_of(Api::OpenAIResponses, R"({"model":"tiny","input":"x","previous_response_id":"resp_1"})"), 400);
}
