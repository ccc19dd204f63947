// Parsing DeepSeek-V4 / V4.1 generated text into reasoning, content and DSML tool calls
// (spec arch-v41-tokenizer-chat.md C.4 / C.6), incrementally while streaming.
//
// Lenient by design: malformed or truncated DSML is reported in `issues` and never copied
// into content (the reference parser asserts instead). Both DSML spellings are accepted with
// either variant ("tool_calls"/" calls", "invoke"/" invoke", "parameter"/" parameter", any
// whitespace inside tags). Protocol markers (BOS, EOS, <think>, </think>, ｜DSML｜) never
// appear in content or reasoning; stray ones are removed and reported.
//
// Streaming guarantee: for any split of a text into chunks, concatenating the deltas of
// push(chunk)... + finish() gives exactly parse_completion(text). Text that could be the
// start of a marker is held back until it is decided; content and reasoning deltas end on
// UTF-8 character boundaries (incomplete trailing sequences wait for the next chunk).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_encoding.h"

namespace dsv4::chat {

struct ParseOptions {
  Variant variant = Variant::V4;
  // The prompt ended with <think>: the output starts inside the reasoning part and runs to
  // </think>. False (chat mode): everything is content.
  bool thinking = true;
  // Tools were offered. When false, DSML blocks are still parsed (and so kept out of
  // content) but the calls are dropped and reported.
  bool tools_enabled = true;
};

// At most 256 issues are reported per parse; the 256th says that more were suppressed.
struct ParseIssue {
  bool error = false;  // false: warning (output usable), true: something was lost
  size_t offset = 0;   // byte offset in the generated text where the problem was detected
  std::string message;
  bool operator==(const ParseIssue&) const = default;
};

struct ParseDelta {
  std::string content;              // new content text
  std::string reasoning;            // new reasoning text
  std::vector<ToolCall> tool_calls;  // calls completed in this step (id left empty)
  std::vector<ParseIssue> issues;
  bool reasoning_ended = false;  // </think> (or what ends reasoning) was consumed in this step
  bool eos = false;              // the end-of-sentence marker was consumed in this step
  bool empty() const {
    return content.empty() && reasoning.empty() && tool_calls.empty() && issues.empty() &&
           !reasoning_ended && !eos;
  }
};

struct ParsedMessage {
  std::string content;
  std::string reasoning_content;
  std::vector<ToolCall> tool_calls;
  std::vector<ParseIssue> issues;
  bool reasoning_ended = false;
  bool eos = false;
  void append(const ParseDelta& d);
  bool has_errors() const;
  bool operator==(const ParsedMessage&) const = default;
};

class OutputParser {
 public:
  explicit OutputParser(ParseOptions options = {});
  // Feeds the next piece of generated text.
  ParseDelta push(std::string_view chunk);
  // End of generation: flushes held-back text and reports unfinished structures. Further
  // calls to push/finish return empty deltas.
  ParseDelta finish();
  bool finished() const { return finished_; }

  struct Tag;  // a parsed DSML tag (implementation detail)

 private:
  enum class State { Reasoning, Content, Block, Invoke, Param, Done };

  void run(bool final, ParseDelta& d);
  bool step_text(bool final, ParseDelta& d);
  bool step_markup(bool final, ParseDelta& d);
  bool step_param(bool final, ParseDelta& d);
  void handle_block_tag(const Tag& t, ParseDelta& d);
  void handle_invoke_tag(const Tag& t, ParseDelta& d);
  void start_invoke(const Tag& t, ParseDelta& d);
  void finish_param(bool terminated, ParseDelta& d);
  void finish_invoke(ParseDelta& d);
  void on_eos(ParseDelta& d);
  void emit_text(std::string_view s, ParseDelta& d);
  void issue(ParseDelta& d, bool error, size_t rel_pos, std::string msg);
  void consume(size_t n);
  std::string_view rest() const { return std::string_view(buf_).substr(pos_); }
  size_t abs_pos(size_t rel) const { return base_ + pos_ + rel; }
  void finalize_utf8(ParseDelta& d, bool final);

  ParseOptions opt_;
  State state_;
  std::string buf_;
  size_t pos_ = 0;   // consumed prefix of buf_
  size_t base_ = 0;  // absolute offset of buf_[0]
  bool finished_ = false;
  bool after_block_ = false;  // Content state right after a tool-call block
  bool junk_run_ = false;     // currently dropping unexpected text inside a block
  bool after_eos_warned_ = false;
  size_t issue_count_ = 0;
  static constexpr size_t kMaxIssues = 256;  // the last one reported says "too many"

  // Current tool call.
  bool call_ok_ = false;
  std::string call_name_;
  size_t call_offset_ = 0;
  std::vector<std::pair<std::string, std::string>> call_args_;  // key -> JSON value text
  // Current parameter.
  bool param_ok_ = false;
  std::string param_name_;
  int param_string_ = 0;  // 1 string="true", 0 string="false", -1 missing/invalid (auto)
  std::string param_value_;
  size_t param_offset_ = 0;
  // Incomplete UTF-8 tails held back from the previous delta.
  std::string carry_content_, carry_reasoning_;
};

// One-shot parse of a complete generation (equals the concatenated streaming deltas).
ParsedMessage parse_completion(std::string_view text, ParseOptions options = {});

}  // namespace dsv4::chat
