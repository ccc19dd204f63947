// Lenient, chunk-invariant parser for DeepSeek-V4 / V4.1 output (spec C.4, C.6).
//
// The parser is a state machine over a buffer of undecided text. Every decision depends
// only on bytes already seen and is taken only once the bytes that could change it have
// arrived (text that may start a marker is held back), so any chunking of the same text
// yields the same sequence of decisions: that is the chunk-invariance guarantee.
#include "tokenizer/parse_output.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_json.h"

namespace dsv4::chat {
namespace {

enum MarkerKind { kMEos, kMBos, kMThinkEnd, kMThinkStart, kMNlDsml, kMDsmlOpen, kMDsmlClose, kMDsmlBare };

struct Marker {
  std::string_view text;
  MarkerKind kind;
};

constexpr std::string_view kDsmlOpen = "<｜DSML｜";
constexpr std::string_view kDsmlClose = "</｜DSML｜";
constexpr std::string_view kNlDsml = "\n\n<｜DSML｜";

// Markers recognised in reasoning and content.
constexpr std::array kTextMarkers = {
    Marker{kEos, kMEos},          Marker{kBos, kMBos},
    Marker{kThinkEnd, kMThinkEnd}, Marker{kThinkStart, kMThinkStart},
    Marker{kNlDsml, kMNlDsml},    Marker{kDsmlClose, kMDsmlClose},
    Marker{kDsmlOpen, kMDsmlOpen}, Marker{kDsml, kMDsmlBare},
};
// Markers that end free text inside a tool-call block (between tags, in values) and inside
// a tag header (where they mean the tag was never closed).
constexpr std::array kMarkupMarkers = {
    Marker{kEos, kMEos}, Marker{kDsmlClose, kMDsmlClose}, Marker{kDsmlOpen, kMDsmlOpen},
    Marker{kDsml, kMDsmlBare}};

constexpr size_t kMaxTagHeader = 4096;  // bytes between "<｜DSML｜" and ">"

template <size_t N>
size_t find_marker(std::string_view sv, const std::array<Marker, N>& ms, const Marker** which) {
  size_t i = 0;
  while (true) {
    i = sv.find_first_of("<\n\xEF", i);
    if (i == std::string_view::npos) return i;
    const std::string_view tail = sv.substr(i);
    for (const auto& m : ms) {  // listed so that at one position the longer marker wins
      if (tail.substr(0, m.text.size()) == m.text) {
        *which = &m;
        return i;
      }
    }
    ++i;
  }
}

// Length of the longest suffix of sv that is a proper prefix of one of the markers.
template <size_t N>
size_t hold_len(std::string_view sv, const std::array<Marker, N>& ms) {
  size_t maxlen = 0;
  for (const auto& m : ms) maxlen = std::max(maxlen, m.text.size());
  for (size_t k = std::min(sv.size(), maxlen - 1); k > 0; --k) {
    const std::string_view suf = sv.substr(sv.size() - k);
    for (const auto& m : ms)
      if (m.text.size() > k && m.text.substr(0, k) == suf) return k;
  }
  return 0;
}

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9');
}

// Bytes at the end of s that form an incomplete (so far valid) UTF-8 sequence.
size_t incomplete_utf8_tail(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 0;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return (need > back) ? back : 0;
  }
  return 0;
}

std::string snippet(std::string_view s) {
  std::string out(s.substr(0, 40));
  if (s.size() > 40) out += "...";
  return out;
}

}  // namespace

struct OutputParser::Tag {
  enum Status { Incomplete, Ok, Malformed } status = Incomplete;
  enum Kind { Block, Invoke, Param, Unknown } kind = Unknown;
  bool closing = false;
  bool has_name = false, has_string = false;
  std::string name, string_attr;
  size_t len = 0;  // bytes to consume (whole tag, or what is dropped when malformed)
  bool truncated = false;  // the output ended inside the tag
  std::string why;
};

namespace {

// Parses the DSML tag starting at sv[0] (which starts with "<｜DSML｜" or "</｜DSML｜").
OutputParser::Tag peek_tag(std::string_view sv, bool final) {
  using Tag = OutputParser::Tag;
  Tag t;
  t.closing = sv.substr(0, kDsmlClose.size()) == kDsmlClose;
  const size_t m = t.closing ? kDsmlClose.size() : kDsmlOpen.size();
  const std::string_view window = sv.substr(m, kMaxTagHeader);
  size_t gt = std::string_view::npos;
  bool in_quote = false;
  for (size_t i = 0; i < window.size(); ++i) {
    if (window[i] == '"') in_quote = !in_quote;
    else if (window[i] == '>' && !in_quote) {
      gt = i;
      break;
    }
  }
  const Marker* which = nullptr;
  const size_t abort_at = find_marker(window.substr(0, gt), kMarkupMarkers, &which);
  if (abort_at != std::string_view::npos) {
    t.status = Tag::Malformed;
    t.len = m + abort_at;
    t.why = "tag not closed before the next marker";
    return t;
  }
  if (gt == std::string_view::npos) {
    if (window.size() >= kMaxTagHeader) {
      t.status = Tag::Malformed;
      t.len = m;
      t.why = "tag header too long";
    } else if (final) {
      t.status = Tag::Malformed;
      t.len = sv.size();
      t.truncated = true;
      t.why = "output ended inside a tag";
    } else {
      t.status = Tag::Incomplete;
    }
    return t;
  }
  t.len = m + gt + 1;
  const std::string_view h = window.substr(0, gt);
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && is_ws(h[i])) ++i;
  };
  auto ident = [&] {
    const size_t s = i;
    while (i < h.size() && is_ident(h[i])) ++i;
    return h.substr(s, i - s);
  };
  auto bad = [&](std::string why) {
    t.status = Tag::Malformed;
    t.why = std::move(why);
    return t;
  };
  skip_ws();
  const std::string_view tag = ident();
  if (tag == "tool_calls" || tag == "calls") t.kind = Tag::Block;
  else if (tag == "invoke") t.kind = Tag::Invoke;
  else if (tag == "parameter") t.kind = Tag::Param;
  else return bad("unknown tag '" + snippet(tag) + "'");
  while (true) {
    const size_t before = i;
    skip_ws();
    if (i == h.size()) break;
    if (i == before) return bad("junk in tag");
    const std::string_view key = ident();
    if (key.empty()) return bad("junk in tag");
    skip_ws();
    if (i == h.size() || h[i] != '=') return bad("attribute without value");
    ++i;
    skip_ws();
    if (i == h.size() || h[i] != '"') return bad("unquoted attribute value");
    const size_t close = h.find('"', i + 1);
    if (close == std::string_view::npos) return bad("unterminated attribute value");
    const std::string value(h.substr(i + 1, close - i - 1));
    i = close + 1;
    if (key == "name") {
      t.has_name = true;
      t.name = value;
    } else if (key == "string") {
      t.has_string = true;
      t.string_attr = value;
    }
  }
  t.status = Tag::Ok;
  return t;
}

}  // namespace

OutputParser::OutputParser(ParseOptions options)
    : opt_(options), state_(options.thinking ? State::Reasoning : State::Content) {}

void OutputParser::issue(ParseDelta& d, bool error, size_t rel_pos, std::string msg) {
  // Bounded: adversarial output (a million stray markers) must not grow the report without
  // limit. The order of issues does not depend on chunking, so neither does the cut.
  ++issue_count_;
  if (issue_count_ > kMaxIssues) return;
  if (issue_count_ == kMaxIssues) msg = "too many problems; further ones are not reported";
  d.issues.push_back(ParseIssue{error, abs_pos(rel_pos), std::move(msg)});
}

void OutputParser::consume(size_t n) { pos_ += n; }

void OutputParser::emit_text(std::string_view s, ParseDelta& d) {
  if (state_ == State::Reasoning) d.reasoning.append(s);
  else d.content.append(s);
}

void OutputParser::on_eos(ParseDelta& d) {
  d.eos = true;
  state_ = State::Done;
}

bool OutputParser::step_text(bool final, ParseDelta& d) {
  std::string_view sv = rest();
  const Marker* mk = nullptr;
  if (state_ == State::Content && after_block_) {
    size_t k = 0;
    while (k < sv.size() && is_ws(sv[k])) ++k;
    consume(k);
    sv = rest();
    if (sv.empty()) return false;
    const size_t p = find_marker(sv, kTextMarkers, &mk);
    if (p != 0) {
      if (p == std::string_view::npos && !final && hold_len(sv, kTextMarkers) == sv.size())
        return false;  // may still become a marker
      issue(d, false, 0, "text after the tool-call block (kept as content)");
      after_block_ = false;
    }
  }
  const size_t p = find_marker(sv, kTextMarkers, &mk);
  if (p == std::string_view::npos) {
    const size_t n = sv.size() - (final ? 0 : hold_len(sv, kTextMarkers));
    emit_text(sv.substr(0, n), d);
    consume(n);
    return false;
  }
  if (p > 0) {
    emit_text(sv.substr(0, p), d);
    consume(p);
    sv = rest();
  }
  switch (mk->kind) {
    case kMEos:
      if (state_ == State::Reasoning)
        issue(d, false, 0, "end of sentence inside the reasoning (no </think>)");
      consume(mk->text.size());
      on_eos(d);
      return true;
    case kMThinkEnd:
      if (state_ == State::Reasoning) {
        consume(mk->text.size());
        state_ = State::Content;
        d.reasoning_ended = true;
        return true;
      }
      issue(d, false, 0, "stray </think> removed");
      consume(mk->text.size());
      return true;
    case kMThinkStart:
      issue(d, false, 0, "stray <think> removed");
      consume(mk->text.size());
      return true;
    case kMBos:
      issue(d, false, 0, "stray begin-of-sentence marker removed");
      consume(mk->text.size());
      return true;
    case kMDsmlBare:
      issue(d, false, 0, "stray ｜DSML｜ marker removed");
      consume(mk->text.size());
      return true;
    case kMNlDsml:
    case kMDsmlOpen:
    case kMDsmlClose: {
      const size_t off = mk->kind == kMNlDsml ? 2 : 0;
      const Tag t = peek_tag(sv.substr(off), final);
      if (t.status == Tag::Incomplete) return false;
      if (t.status == Tag::Ok && !t.closing && (t.kind == Tag::Block || t.kind == Tag::Invoke)) {
        if (state_ == State::Reasoning) {
          issue(d, false, off, "tool calls started inside the reasoning (no </think>)");
          d.reasoning_ended = true;
        }
        if (t.kind == Tag::Block) {
          consume(off + t.len);
        } else {
          issue(d, false, off, "invoke without an enclosing tool-call block");
          consume(off);
        }
        state_ = State::Block;
        after_block_ = false;
        junk_run_ = false;
        return true;
      }
      if (off && !t.truncated) {  // a stray tag: the blank line before it is text
        emit_text(sv.substr(0, off), d);
        consume(off);
      }
      issue(d, false, 0,
            t.status == Tag::Ok ? "stray DSML tag removed" : "malformed DSML markup removed (" + t.why + ")");
      consume(t.len + (t.truncated ? off : 0));
      return true;
    }
  }
  return false;
}

bool OutputParser::step_markup(bool final, ParseDelta& d) {
  std::string_view sv = rest();
  const Marker* mk = nullptr;
  const size_t p = find_marker(sv, kMarkupMarkers, &mk);
  const size_t junk_end =
      p != std::string_view::npos ? p : sv.size() - (final ? 0 : hold_len(sv, kMarkupMarkers));
  if (junk_end > 0) {
    for (size_t k = 0; k < junk_end && !junk_run_; ++k) {
      if (!is_ws(sv[k])) {
        issue(d, false, k, "unexpected text inside the tool-call block dropped");
        junk_run_ = true;
      }
    }
    consume(junk_end);
  }
  if (p == std::string_view::npos) return false;
  sv = rest();
  if (mk->kind == kMEos) {
    junk_run_ = false;
    if (state_ == State::Invoke) {
      issue(d, false, 0, "tool call '" + snippet(call_name_) + "' not closed before end of sentence");
      finish_invoke(d);
    } else {
      issue(d, false, 0, "tool-call block not closed before end of sentence");
    }
    consume(mk->text.size());
    on_eos(d);
    return true;
  }
  if (mk->kind == kMDsmlBare) {
    junk_run_ = false;
    issue(d, false, 0, "stray ｜DSML｜ marker inside the tool-call block dropped");
    consume(mk->text.size());
    return true;
  }
  const Tag t = peek_tag(sv, final);
  if (t.status == Tag::Incomplete) return false;
  junk_run_ = false;
  if (t.status == Tag::Malformed) {
    issue(d, false, 0, "malformed DSML tag dropped (" + t.why + ")");
    consume(t.len);
    return true;
  }
  if (state_ == State::Block) handle_block_tag(t, d);
  else handle_invoke_tag(t, d);
  return true;
}

void OutputParser::start_invoke(const Tag& t, ParseDelta& d) {
  call_ok_ = t.has_name && !t.name.empty();
  call_name_ = t.name;
  call_args_.clear();
  call_offset_ = abs_pos(0);
  if (!call_ok_) issue(d, true, 0, "invoke without a tool name; call dropped");
}

void OutputParser::handle_block_tag(const Tag& t, ParseDelta& d) {
  if (!t.closing && t.kind == Tag::Invoke) {
    start_invoke(t, d);
    consume(t.len);
    state_ = State::Invoke;
  } else if (t.closing && t.kind == Tag::Block) {
    consume(t.len);
    state_ = State::Content;
    after_block_ = true;
  } else {
    issue(d, false, 0, "unexpected DSML tag between tool calls dropped");
    consume(t.len);
  }
}

void OutputParser::handle_invoke_tag(const Tag& t, ParseDelta& d) {
  if (!t.closing && t.kind == Tag::Param) {
    param_ok_ = t.has_name && !t.name.empty();
    param_name_ = t.name;
    param_value_.clear();
    param_offset_ = abs_pos(0);
    if (!t.has_string) {
      param_string_ = -1;
      issue(d, false, 0, "parameter '" + snippet(t.name) + "' without string=\"true|false\"");
    } else if (t.string_attr == "true" || t.string_attr == "false") {
      param_string_ = t.string_attr == "true" ? 1 : 0;
    } else {
      param_string_ = -1;
      issue(d, false, 0, "parameter '" + snippet(t.name) + "' has an invalid string attribute");
    }
    if (!param_ok_ && call_ok_)
      issue(d, true, 0, "parameter without a name in call '" + snippet(call_name_) + "' dropped");
    consume(t.len);
    state_ = State::Param;
  } else if (t.closing && t.kind == Tag::Invoke) {
    consume(t.len);
    finish_invoke(d);
    state_ = State::Block;
  } else if (!t.closing && t.kind == Tag::Invoke) {
    issue(d, false, 0, "tool call '" + snippet(call_name_) + "' not closed before the next invoke");
    finish_invoke(d);
    state_ = State::Block;  // the invoke tag is handled there
  } else if (t.closing && t.kind == Tag::Block) {
    issue(d, false, 0, "tool call '" + snippet(call_name_) + "' not closed before the block end");
    finish_invoke(d);
    state_ = State::Block;  // the block end is handled there
  } else {
    issue(d, false, 0, "unexpected DSML tag inside a tool call dropped");
    consume(t.len);
  }
}

bool OutputParser::step_param(bool final, ParseDelta& d) {
  std::string_view sv = rest();
  const Marker* mk = nullptr;
  const size_t p = find_marker(sv, kMarkupMarkers, &mk);
  if (p == std::string_view::npos) {
    const size_t n = sv.size() - (final ? 0 : hold_len(sv, kMarkupMarkers));
    param_value_.append(sv.substr(0, n));
    consume(n);
    return false;
  }
  param_value_.append(sv.substr(0, p));
  consume(p);
  sv = rest();
  if (mk->kind == kMEos) {
    if (call_ok_)
      issue(d, true, 0, "tool call '" + snippet(call_name_) + "' cut off inside parameter '" +
                            snippet(param_name_) + "' by end of sentence; call dropped");
    call_ok_ = false;
    consume(mk->text.size());
    on_eos(d);
    return true;
  }
  if (mk->kind == kMDsmlBare) {  // a bare marker cannot be part of a value: drop it
    issue(d, false, 0, "stray ｜DSML｜ marker inside a parameter value removed");
    consume(mk->text.size());
    return true;
  }
  const Tag t = peek_tag(sv, final);
  if (t.status == Tag::Incomplete) return false;
  if (t.status == Tag::Ok && t.closing && t.kind == Tag::Param) {
    consume(t.len);
    finish_param(true, d);
  } else {
    issue(d, false, 0, "parameter '" + snippet(param_name_) + "' not closed");
    finish_param(false, d);  // the tag itself is handled in the invoke state
  }
  state_ = State::Invoke;
  return true;
}

void OutputParser::finish_param(bool /*terminated*/, ParseDelta& d) {
  if (!param_ok_ || !call_ok_) return;
  for (const auto& kv : call_args_) {
    if (kv.first == param_name_) {
      issue(d, false, 0, "duplicate parameter '" + snippet(param_name_) + "' in call '" +
                             snippet(call_name_) + "'; first value kept");
      return;
    }
  }
  std::string value;
  if (param_string_ == 1) {
    value = py_json_quote(param_value_);
  } else if (param_value_.find('\0') == std::string::npos &&  // nlohmann stops at NUL
             nlohmann::json::accept(param_value_)) {
    value = param_value_;  // raw JSON text, as the reference does
  } else {
    if (param_string_ == 0)
      issue(d, false, 0, "parameter '" + snippet(param_name_) +
                             "' is marked string=\"false\" but is not valid JSON; passed as a string");
    value = py_json_quote(param_value_);
  }
  call_args_.emplace_back(param_name_, std::move(value));
}

void OutputParser::finish_invoke(ParseDelta& d) {
  if (!call_ok_) return;
  call_ok_ = false;
  std::string args = "{";
  for (size_t i = 0; i < call_args_.size(); ++i) {
    if (i) args += ", ";
    args += py_json_quote(call_args_[i].first);
    args += ": ";
    args += call_args_[i].second;
  }
  args += "}";
  call_args_.clear();
  if (!opt_.tools_enabled) {
    issue(d, true, 0, "tool call '" + snippet(call_name_) + "' ignored: tools are not enabled");
    return;
  }
  d.tool_calls.push_back(ToolCall{"", call_name_, std::move(args)});
}

void OutputParser::run(bool final, ParseDelta& d) {
  while (true) {
    bool progressed = false;
    switch (state_) {
      case State::Reasoning:
      case State::Content: progressed = step_text(final, d); break;
      case State::Block:
      case State::Invoke: progressed = step_markup(final, d); break;
      case State::Param: progressed = step_param(final, d); break;
      case State::Done: {
        const std::string_view r = rest();
        if (!r.empty()) {
          if (!after_eos_warned_) {
            issue(d, false, 0, "text after end of sentence ignored");
            after_eos_warned_ = true;
          }
          consume(r.size());
        }
        break;
      }
    }
    if (!progressed) break;
  }
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    base_ += pos_;
    pos_ = 0;
  }
}

void OutputParser::finalize_utf8(ParseDelta& d, bool final) {
  if (!carry_content_.empty()) {
    d.content.insert(0, carry_content_);
    carry_content_.clear();
  }
  if (!carry_reasoning_.empty()) {
    d.reasoning.insert(0, carry_reasoning_);
    carry_reasoning_.clear();
  }
  if (final) return;
  if (size_t k = incomplete_utf8_tail(d.content)) {
    carry_content_ = d.content.substr(d.content.size() - k);
    d.content.resize(d.content.size() - k);
  }
  if (size_t k = incomplete_utf8_tail(d.reasoning)) {
    carry_reasoning_ = d.reasoning.substr(d.reasoning.size() - k);
    d.reasoning.resize(d.reasoning.size() - k);
  }
}

ParseDelta OutputParser::push(std::string_view chunk) {
  ParseDelta d;
  if (finished_) return d;
  buf_.append(chunk);
  run(false, d);
  finalize_utf8(d, false);
  return d;
}

ParseDelta OutputParser::finish() {
  ParseDelta d;
  if (finished_) return d;
  finished_ = true;
  run(true, d);
  switch (state_) {
    case State::Reasoning:
      issue(d, false, 0, "output ended inside the reasoning (no </think>)");
      break;
    case State::Block:
      issue(d, true, 0, "output ended inside the tool-call block");
      break;
    case State::Invoke:
      issue(d, true, 0, "output ended inside tool call '" + snippet(call_name_) + "'; call dropped");
      break;
    case State::Param:
      issue(d, true, 0, "output ended inside parameter '" + snippet(param_name_) + "' of tool call '" +
                            snippet(call_name_) + "'; call dropped");
      break;
    default: break;
  }
  finalize_utf8(d, true);
  return d;
}

void ParsedMessage::append(const ParseDelta& d) {
  content += d.content;
  reasoning_content += d.reasoning;
  tool_calls.insert(tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  issues.insert(issues.end(), d.issues.begin(), d.issues.end());
  reasoning_ended = reasoning_ended || d.reasoning_ended;
  eos = eos || d.eos;
}

bool ParsedMessage::has_errors() const {
  return std::any_of(issues.begin(), issues.end(), [](const ParseIssue& i) { return i.error; });
}

ParsedMessage parse_completion(std::string_view text, ParseOptions options) {
  OutputParser p(options);
  ParsedMessage m;
  m.append(p.push(text));
  m.append(p.finish());
  return m;
}

}  // namespace dsv4::chat
