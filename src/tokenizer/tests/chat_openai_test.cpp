#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/chat_openai.h"

using namespace dsv4::chat;
using oj = nlohmann::ordered_json;

namespace {
std::string data(const std::string& name) {
  std::ifstream f(std::string(DSV4_TEST_DATA_DIR) + "/chat/" + name, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const char* kRequest = R"({
  "model": "deepseek-v4",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "reasoning_content": "Need the tool.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather",
             "description": "Get the current weather for a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}}]
})";
}  // namespace

TEST(ChatOpenAI, RequestRendersWorkedExample) {
  const oj req = oj::parse(kRequest);
  ChatOptions o;
  apply_openai_switches(req, o);
  EXPECT_TRUE(o.thinking);  // default on
  const std::string p = render_chat(messages_from_openai(req["messages"]), tools_from_openai(req["tools"]), o);
  EXPECT_EQ(p, data("c54_v4_thinking_tool_round.txt"));

  oj r41 = req;
  r41["chat_template_kwargs"] = {{"thinking", false}};
  r41["messages"][2]["reasoning"] = r41["messages"][2]["reasoning_content"];
  r41["messages"][2].erase("reasoning_content");
  ChatOptions o41;
  o41.variant = Variant::V41;
  apply_openai_switches(r41, o41);
  EXPECT_FALSE(o41.thinking);
  const auto msgs = messages_from_openai(r41["messages"]);
  EXPECT_EQ(msgs[2].reasoning_content.value_or(""), "Need the tool.");
  EXPECT_EQ(render_chat(msgs, tools_from_openai(r41["tools"]), o41), data("c54_v41_chat_tool_round.txt"));
}

TEST(ChatOpenAI, Switches) {
  ChatOptions o;
  apply_openai_switches(oj::parse(R"({"reasoning_effort": "none"})"), o);
  EXPECT_FALSE(o.thinking);
  apply_openai_switches(oj::parse(R"({"thinking": {"type": "enabled", "effort": "max"}, "reasoning_effort": "high"})"), o);
  EXPECT_TRUE(o.thinking);
  EXPECT_EQ(o.reasoning_effort, "max");
  apply_openai_switches(oj::parse(R"({"chat_template_kwargs": {"enable_thinking": true, "drop_thinking": false}})"), o);
  EXPECT_TRUE(o.thinking);
  EXPECT_FALSE(o.drop_thinking);
  ChatOptions v41;
  v41.variant = Variant::V41;
  apply_openai_switches(oj::parse(R"({"reasoning_effort": 30})"), v41);
  EXPECT_EQ(v41.reasoning_effort, "30");
  EXPECT_THROW(apply_openai_switches(oj::parse(R"({"reasoning_effort": 300})"), v41), dsv4::Error);
  EXPECT_THROW(apply_openai_switches(oj::parse(R"({"reasoning_effort": "ultra"})"), v41), dsv4::Error);
}

TEST(ChatOpenAI, PartsAndErrors) {
  const auto m = messages_from_openai(oj::parse(
      R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "Hi"}]}])"));
  ASSERT_EQ(m[0].parts.size(), 2u);
  ChatOptions o;
  o.variant = Variant::V41;
  o.thinking = false;
  EXPECT_EQ(render_chat(m, {}, o),
            "<｜begin▁of▁sentence｜><｜User｜><｜deepseek_image｜>\n\nHi<｜Assistant｜></think>");
  EXPECT_THROW(messages_from_openai(oj::parse(R"([{"role": "robot", "content": "x"}])")), dsv4::Error);
  EXPECT_THROW(messages_from_openai(oj::parse(R"([{"role": "user", "content": 5}])")), dsv4::Error);
  EXPECT_THROW(messages_from_openai(oj::parse(R"([{"role": "assistant", "tool_calls": [{"function": {}}]}])")),
               dsv4::Error);
  EXPECT_THROW(tools_from_openai(oj::parse(R"([{"type": "function"}])")), dsv4::Error);
  // Object arguments are accepted and rendered like the JSON string form.
  const auto a = messages_from_openai(oj::parse(
      R"([{"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {"n": 1.5}}}]}])"));
  EXPECT_EQ(a[0].tool_calls[0].arguments, R"({"n": 1.5})");
}
