// Output parser tests: the reference behaviour on well-formed output (C.4), lenient handling
// of malformed / truncated DSML (C.6), and streaming chunk invariance.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/chat_encoding.h"
#include "tokenizer/parse_output.h"

using namespace dsv4::chat;

namespace dsv4::chat {
// Readable failure output.
void PrintTo(const ParsedMessage& m, std::ostream* os) {
  *os << "{content=" << testing::PrintToString(m.content)
      << " reasoning=" << testing::PrintToString(m.reasoning_content) << " calls=[";
  for (const auto& c : m.tool_calls) *os << c.name << ":" << c.arguments << " ";
  *os << "] issues=[";
  for (const auto& i : m.issues) *os << (i.error ? "E@" : "W@") << i.offset << ":" << i.message << "; ";
  *os << "] eos=" << m.eos << " rend=" << m.reasoning_ended << "}";
}
}  // namespace dsv4::chat

namespace {

const std::string EOS = "<｜end▁of▁sentence｜>";
const std::string BOS = "<｜begin▁of▁sentence｜>";

ParseOptions popts(bool thinking, Variant v = Variant::V4) {
  ParseOptions o;
  o.variant = v;
  o.thinking = thinking;
  return o;
}

bool has_markup(const std::string& s) {
  for (const char* m : {"｜DSML｜", "<think>", "</think>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"})
    if (s.find(m) != std::string::npos) return true;
  return false;
}

ParsedMessage parse_chunked(std::string_view text, ParseOptions o, std::mt19937& rng, size_t max_chunk) {
  OutputParser p(o);
  ParsedMessage m;
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = std::min(text.size() - i, 1 + rng() % max_chunk);
    ParseDelta d = p.push(text.substr(i, n));
    // Deltas end on UTF-8 boundaries: no delta ends with a lead byte of a sequence that
    // continues in the next delta.
    m.append(d);
    i += n;
  }
  m.append(p.finish());
  return m;
}

void expect_chunk_invariant(const std::string& text, ParseOptions o, int rounds = 60) {
  const ParsedMessage one = parse_completion(text, o);
  std::mt19937 rng(12345);
  for (int r = 0; r < rounds; ++r) {
    const size_t max_chunk = r < 10 ? 1 : (r < 30 ? 4 : 40);
    const ParsedMessage chunked = parse_chunked(text, o, rng, max_chunk);
    ASSERT_EQ(chunked, one) << "round " << r << " text: " << text;
  }
}

const std::string kToolOutput =
    "The user wants to know the weather in Beijing. I should use the get_weather tool.</think>\n\n"
    "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
    "<｜DSML｜parameter name=\"location\" string=\"true\">Beijing</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"unit\" string=\"true\">celsius</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n</｜DSML｜tool_calls>" + EOS;

}  // namespace

// ---- well-formed output ------------------------------------------------------------------

TEST(ParseOutput, ThinkingWithToolCall) {
  const ParsedMessage m = parse_completion(kToolOutput, popts(true));
  EXPECT_EQ(m.reasoning_content,
            "The user wants to know the weather in Beijing. I should use the get_weather tool.");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"location": "Beijing", "unit": "celsius"})");
  EXPECT_TRUE(m.issues.empty());
  EXPECT_TRUE(m.eos);
  EXPECT_TRUE(m.reasoning_ended);
  expect_chunk_invariant(kToolOutput, popts(true));
}

TEST(ParseOutput, ThinkingPlainAnswer) {
  const std::string text = "The user asks about the capital of France. It is Paris.</think>"
                           "The capital of France is Paris." + EOS;
  const ParsedMessage m = parse_completion(text, popts(true));
  EXPECT_EQ(m.reasoning_content, "The user asks about the capital of France. It is Paris.");
  EXPECT_EQ(m.content, "The capital of France is Paris.");
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_TRUE(m.issues.empty());
  expect_chunk_invariant(text, popts(true));
}

TEST(ParseOutput, ChatModeEverythingIsContent) {
  const std::string text = "Hello there.\n\nBye." + EOS;
  const ParsedMessage m = parse_completion(text, popts(false));
  EXPECT_EQ(m.content, "Hello there.\n\nBye.");
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_TRUE(m.issues.empty());
}

TEST(ParseOutput, ContentBeforeCallsAndJsonParameters) {
  const std::string text =
      "Let me look.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"search\">\n"
      "<｜DSML｜parameter name=\"q\" string=\"true\">a \"quoted\"\nline</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"n\" string=\"false\">5</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"opts\" string=\"false\">{\"deep\": [1, 2.5, true]}</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"time\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" + EOS;
  const ParsedMessage m = parse_completion(text, popts(false));
  EXPECT_EQ(m.content, "Let me look.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].arguments,
            R"({"q": "a \"quoted\"\nline", "n": 5, "opts": {"deep": [1, 2.5, true]}})");
  EXPECT_EQ(m.tool_calls[1].name, "time");
  EXPECT_EQ(m.tool_calls[1].arguments, "{}");
  EXPECT_TRUE(m.issues.empty()) << m.issues[0].message;
  expect_chunk_invariant(text, popts(false));
}

TEST(ParseOutput, V41TagsAndWhitespaceInsideTags) {
  const std::string text =
      "</think>\n\n<｜DSML｜ calls>\n<｜DSML｜ invoke name=\"f\">\n"
      "<｜DSML｜ parameter name=\"x\" string=\"true\">1</｜DSML｜ parameter>\n"
      "</｜DSML｜ invoke>\n</｜DSML｜ calls>" + EOS;
  const ParsedMessage m = parse_completion(text, popts(true, Variant::V41));
  EXPECT_EQ(m.reasoning_content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"x": "1"})");
  EXPECT_TRUE(m.issues.empty());
  // Loose spacing is accepted too.
  const std::string loose =
      "<｜DSML｜tool_calls >  <｜DSML｜invoke   name = \"f\" >"
      "<｜DSML｜parameter name=\"x\"  string=\"false\" >[1]</｜DSML｜parameter ></｜DSML｜invoke></｜DSML｜tool_calls>";
  const ParsedMessage l = parse_completion(loose, popts(false));
  ASSERT_EQ(l.tool_calls.size(), 1u);
  EXPECT_EQ(l.tool_calls[0].arguments, R"({"x": [1]})");
  EXPECT_TRUE(l.issues.empty());
}

TEST(ParseOutput, RoundTripWithRenderedAssistantTurn) {
  // What the encoder renders for an assistant turn is parsed back to the same message.
  Message u;
  u.role = Role::User;
  u.content = "Q";
  Message a;
  a.role = Role::Assistant;
  a.content = "Checking.";
  a.reasoning_content = "Think.";
  a.tool_calls.push_back({"c", "f", R"({"city": "Paris", "days": 3, "tags": ["a", "b"]})"});
  ChatOptions o;
  o.drop_thinking = false;
  const std::string p = render_chat({u, a}, {}, o);
  const std::string gen = p.substr(p.find("<think>") + 7);
  const ParsedMessage m = parse_completion(gen, popts(true));
  EXPECT_EQ(m.reasoning_content, "Think.");
  EXPECT_EQ(m.content, "Checking.");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, a.tool_calls[0].arguments);
  EXPECT_TRUE(m.issues.empty());
}

// ---- lenient handling --------------------------------------------------------------------

TEST(ParseOutput, NoThinkEndMeansAllReasoning) {
  const ParsedMessage m = parse_completion("still thinking about it", popts(true));
  EXPECT_EQ(m.reasoning_content, "still thinking about it");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.issues.size(), 1u);
  EXPECT_FALSE(m.issues[0].error);
}

TEST(ParseOutput, ToolCallsInsideReasoning) {
  const std::string text = "I will call.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n"
                           "</｜DSML｜tool_calls>" + EOS;
  const ParsedMessage m = parse_completion(text, popts(true));
  EXPECT_EQ(m.reasoning_content, "I will call.");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_FALSE(m.has_errors());
  EXPECT_EQ(m.issues.size(), 1u);
}

TEST(ParseOutput, StrayMarkersRemoved) {
  const std::string text = "<think>a</think>b</think>c<think>d｜DSML｜e" + BOS + "f" + EOS + "junk after";
  const ParsedMessage m = parse_completion(text, popts(true));
  EXPECT_EQ(m.reasoning_content, "a");
  EXPECT_EQ(m.content, "bcdef");
  EXPECT_EQ(m.issues.size(), 6u);
  expect_chunk_invariant(text, popts(true));
  const std::string stray = "x</｜DSML｜parameter>y<｜DSML｜bogus>z<｜DSML｜parameter name=\"a\" string=\"true\">w";
  const ParsedMessage s = parse_completion(stray, popts(false));
  EXPECT_EQ(s.content, "xyzw");
  EXPECT_FALSE(has_markup(s.content));
  expect_chunk_invariant(stray, popts(false));
}

TEST(ParseOutput, TruncatedInsideParameterDropsCall) {
  const std::string text = "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
                           "<｜DSML｜parameter name=\"x\" string=\"true\">partial val";
  const ParsedMessage m = parse_completion(text, popts(true));
  EXPECT_TRUE(m.tool_calls.empty());
  EXPECT_TRUE(m.has_errors());
  EXPECT_EQ(m.content, "");
  EXPECT_FALSE(m.eos);
  expect_chunk_invariant(text, popts(true));
  // Every prefix of a good output parses without markup in content.
  for (size_t n = 0; n <= kToolOutput.size(); ++n) {
    const ParsedMessage pm = parse_completion(kToolOutput.substr(0, n), popts(true));
    EXPECT_FALSE(has_markup(pm.content)) << n;
    EXPECT_FALSE(has_markup(pm.reasoning_content)) << n;
    EXPECT_LE(pm.tool_calls.size(), 1u);
  }
}

TEST(ParseOutput, TruncatedTagAndBlock) {
  const ParsedMessage a = parse_completion("Answer\n\n<｜DSML｜tool_ca", popts(false));
  EXPECT_EQ(a.content, "Answer");
  EXPECT_EQ(a.issues.size(), 1u);
  const ParsedMessage b = parse_completion("Answer\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n",
                                           popts(false));
  EXPECT_EQ(b.content, "Answer");
  EXPECT_TRUE(b.tool_calls.empty());
  EXPECT_TRUE(b.has_errors());
  const ParsedMessage c = parse_completion("Answer\n\n<｜DS", popts(false));
  EXPECT_EQ(c.content, "Answer\n\n<｜DS");  // not markup: a plain-text prefix at the end
}

TEST(ParseOutput, MalformedButRecoverable) {
  // Missing </invoke> before EOS, missing </tool_calls>, unterminated parameter, junk.
  const std::string text =
      "\n\n<｜DSML｜tool_calls>\njunk here\n<｜DSML｜invoke name=\"f\">\n"
      "<｜DSML｜parameter name=\"a\" string=\"false\">not json</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"b\" string=\"true\">unterminated\n"
      "<｜DSML｜parameter name=\"a\" string=\"true\">dup</｜DSML｜parameter>\n"
      "<｜DSML｜invoke name=\"g\">\n<｜DSML｜parameter name=\"c\">7</｜DSML｜parameter>\n" + EOS;
  const ParsedMessage m = parse_completion(text, popts(false));
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "f");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": "not json", "b": "unterminated\n"})");
  EXPECT_EQ(m.tool_calls[1].name, "g");
  EXPECT_EQ(m.tool_calls[1].arguments, R"({"c": 7})");
  EXPECT_GE(m.issues.size(), 5u);
  EXPECT_TRUE(m.eos);
  expect_chunk_invariant(text, popts(false));
}

TEST(ParseOutput, ArgumentsAreAlwaysValidJson) {
  // A NUL byte ends nlohmann's input early: such a value must not be inserted raw.
  const std::string text = std::string("<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\">"
                                       "<｜DSML｜parameter name=\"x\" string=\"false\">1") +
                           std::string(3, '\0') + "junk</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>";
  const ParsedMessage m = parse_completion(text, popts(false));
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"x\": \"1\\u0000\\u0000\\u0000junk\"}");
  EXPECT_TRUE(nlohmann::json::accept(m.tool_calls[0].arguments));
}

TEST(ParseOutput, InvokeWithoutNameAndToolsDisabled) {
  const std::string text = "<｜DSML｜tool_calls><｜DSML｜invoke>\n</｜DSML｜invoke>"
                           "<｜DSML｜invoke name=\"ok\"></｜DSML｜invoke></｜DSML｜tool_calls>" + EOS;
  const ParsedMessage m = parse_completion(text, popts(false));
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "ok");
  EXPECT_TRUE(m.has_errors());
  ParseOptions o = popts(false);
  o.tools_enabled = false;
  const ParsedMessage d = parse_completion(text, o);
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_EQ(d.content, "");
}

TEST(ParseOutput, TextAfterBlockAndSecondBlock) {
  const std::string text = "A\n\n<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"></｜DSML｜invoke></｜DSML｜tool_calls>\n\n"
                           "B\n\n<｜DSML｜tool_calls><｜DSML｜invoke name=\"g\"></｜DSML｜invoke></｜DSML｜tool_calls>\n" + EOS;
  const ParsedMessage m = parse_completion(text, popts(false));
  EXPECT_EQ(m.content, "AB");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.issues.size(), 1u);
  expect_chunk_invariant(text, popts(false));
}

TEST(ParseOutput, NestedJunkAndHugeInput) {
  std::string text = "</think>";
  for (int i = 0; i < 2000; ++i) text += "<｜DSML｜<｜DSML｜invoke name=\"<｜DSML｜\"></｜DSML｜x>\n\n<";
  text += std::string(200000, 'a');
  text += "<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"><｜DSML｜parameter name=\"v\" string=\"true\">";
  text += std::string(300000, 'v');
  text += "</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>" + EOS;
  const ParsedMessage m = parse_completion(text, popts(true));
  EXPECT_FALSE(has_markup(m.content));
  ASSERT_FALSE(m.tool_calls.empty());
  EXPECT_EQ(m.tool_calls.back().arguments.size(), 300000u + 9u);
  std::mt19937 rng(7);
  EXPECT_EQ(parse_chunked(text, popts(true), rng, 3000), m);
  EXPECT_EQ(m.issues.size(), 256u);  // capped
  EXPECT_EQ(m.issues.back().message, "too many problems; further ones are not reported");
  // A tag header that never closes is abandoned after a bounded length.
  const std::string open = "<｜DSML｜invoke name=\"" + std::string(100000, 'n');
  const ParsedMessage o = parse_completion(open, popts(false));
  EXPECT_FALSE(has_markup(o.content));
  EXPECT_FALSE(o.issues.empty());
}

TEST(ParseOutput, Utf8SplitAcrossChunksIsHeldBack) {
  const std::string text = "é中😀</think>ü😀" + EOS;
  OutputParser p(popts(true));
  std::string reasoning, content;
  for (char c : text) {
    ParseDelta d = p.push(std::string_view(&c, 1));
    for (const std::string* s : {&d.reasoning, &d.content}) {
      // every delta is valid UTF-8 on its own
      size_t i = 0;
      while (i < s->size()) {
        const auto b = static_cast<unsigned char>((*s)[i]);
        const size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : 4;
        ASSERT_LE(i + len, s->size());
        i += len;
      }
    }
    reasoning += d.reasoning;
    content += d.content;
  }
  ParseDelta f = p.finish();
  reasoning += f.reasoning;
  content += f.content;
  EXPECT_EQ(reasoning, "é中😀");
  EXPECT_EQ(content, "ü😀");
}

TEST(ParseOutput, HoldsBackPossibleMarkersWhileStreaming) {
  OutputParser p(popts(false));
  ParseDelta d1 = p.push("Hello\n\n<｜DS");
  EXPECT_EQ(d1.content, "Hello");
  ParseDelta d2 = p.push("ML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n");
  EXPECT_EQ(d2.content, "");
  ASSERT_EQ(d2.tool_calls.size(), 1u);
  ParseDelta d3 = p.push("</｜DSML｜tool_calls>" + EOS);
  EXPECT_TRUE(d3.eos);
  EXPECT_TRUE(p.finish().issues.empty());
  EXPECT_TRUE(p.push("more").empty());
}

TEST(ParseOutput, RandomStructuredFragmentsAreChunkInvariant) {
  const std::vector<std::string> pieces = {
      "a", "b c", "\n", "\n\n", "<", ">", "\"", "=", " ", "</think>", "<think>", EOS, BOS, "｜DSML｜",
      "<｜DSML｜", "</｜DSML｜", "tool_calls", " calls", "invoke", "parameter", " name=\"", "\"",
      " string=\"true\"", " string=\"false\"", "{\"k\": 1}", "é", "\xE4\xB8", "\xAD", "<｜DS", "ML｜"};
  std::mt19937 rng(99);
  for (int t = 0; t < 400; ++t) {
    std::string text;
    const int n = 1 + rng() % 40;
    for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    for (bool thinking : {true, false}) {
      const ParsedMessage one = parse_completion(text, popts(thinking));
      EXPECT_FALSE(one.content.find("｜DSML｜") != std::string::npos &&
                   text.find("｜DS") == std::string::npos);
      for (int r = 0; r < 8; ++r) {
        ASSERT_EQ(parse_chunked(text, popts(thinking), rng, 1 + r * 3), one) << text;
      }
    }
  }
}

// Encoder/parser consistency: a random assistant turn rendered by render_chat parses back to
// the same reasoning, content and calls (texts contain marker fragments but no full marker).
TEST(ParseOutput, RandomRenderParseRoundTrip) {
  const std::vector<std::string> alphabet = {"a", "Z", " ", "\n", "<", ">", "/", "\"", "=", "{", "}",
                                             "é", "中", "😀", "</thi", "<thin", "｜DS", "ML｜", "<｜",
                                             "end▁of", "\\", "\t", "string=\"true\"", "name="};
  std::mt19937 rng(2024);
  auto rand_text = [&](size_t max_pieces) {
    std::string s;
    const size_t n = rng() % (max_pieces + 1);
    for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  int checked = 0;
  for (int iter = 0; iter < 400; ++iter) {
    Message a;
    a.role = Role::Assistant;
    a.reasoning_content = rand_text(12);
    a.content = rand_text(12);
    const int ncalls = rng() % 3;
    for (int c = 0; c < ncalls; ++c) {
      nlohmann::ordered_json args = nlohmann::ordered_json::object();
      const int nargs = rng() % 4;
      for (int k = 0; k < nargs; ++k) {
        std::string key = "k" + std::to_string(k) + std::string(rng() % 2 ? "é" : "_x");
        switch (rng() % 4) {
          case 0: args[key] = rand_text(8); break;
          case 1: args[key] = static_cast<int>(rng() % 1000) - 500; break;
          case 2: args[key] = nlohmann::ordered_json::array({1.5, "s", nullptr, true}); break;
          default: args[key] = nlohmann::ordered_json::object({{"n", rand_text(3)}}); break;
        }
      }
      a.tool_calls.push_back({"id" + std::to_string(c), "tool_" + std::to_string(c), args.dump()});
    }
    const Variant v = rng() % 2 ? Variant::V41 : Variant::V4;
    std::string all = *a.reasoning_content + a.content;
    for (const auto& tc : a.tool_calls) all += tc.arguments;
    if (has_markup(all) || all.find("<｜DSML") != std::string::npos) continue;
    Message u;
    u.role = Role::User;
    u.content = "Q";
    ChatOptions o;
    o.variant = v;
    o.drop_thinking = false;
    const std::string prompt = render_chat({u, a}, {}, o);
    const std::string marker = "<｜Assistant｜><think>";
    const std::string gen = prompt.substr(prompt.find(marker) + marker.size());
    const ParsedMessage m = parse_completion(gen, popts(true, v));
    ASSERT_EQ(m.reasoning_content, *a.reasoning_content) << gen;
    ASSERT_EQ(m.content, a.content) << gen;
    ASSERT_EQ(m.tool_calls.size(), a.tool_calls.size()) << gen;
    for (size_t i = 0; i < a.tool_calls.size(); ++i) {
      EXPECT_EQ(m.tool_calls[i].name, a.tool_calls[i].name);
      EXPECT_EQ(nlohmann::json::parse(m.tool_calls[i].arguments), nlohmann::json::parse(a.tool_calls[i].arguments))
          << gen;
    }
    EXPECT_TRUE(m.issues.empty()) << gen << "\n" << m.issues[0].message;
    EXPECT_TRUE(m.eos);
    ++checked;
  }
  EXPECT_GT(checked, 100);
}
