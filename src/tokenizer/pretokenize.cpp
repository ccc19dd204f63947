#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "core/error.h"

namespace dsv4::tok::detail {

namespace {

// Unicode White_Space (what Oniguruma's \s matches in Unicode mode), spec B.7.
constexpr const char* kWhiteSpace =
    "\\t\\n\\x{0B}\\x{0C}\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Per-thread match scratch: match data (one ovector pair is enough) and a JIT stack large
// enough for very long pieces (megabytes of whitespace or letters).
struct Scratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  Scratch() {
    md = pcre2_match_data_create(1, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    if (mctx && stack) pcre2_jit_stack_assign(mctx, nullptr, stack);
  }
  ~Scratch() {
    if (stack) pcre2_jit_stack_free(stack);
    if (mctx) pcre2_match_context_free(mctx);
    if (md) pcre2_match_data_free(md);
  }
};

Scratch& scratch() {
  thread_local Scratch s;
  if (!s.md || !s.mctx) throw Error("tokenizer: out of memory for PCRE2 match data");
  return s;
}

}  // namespace

std::string translate_hf_regex(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's' || n == 'S') {
        check(!in_class, "tokenizer: pre-tokenizer regex uses \\s inside a character class "
                         "(unsupported): " + p);
        out += n == 's' ? "[" : "[^";
        out += kWhiteSpace;
        out += "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' or '^]' right after '[' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("tokenizer: pre-tokenizer regex does not compile at offset " +
                std::to_string(off) + ": " + reinterpret_cast<const char*>(msg) + " (pattern: " +
                pattern + ")");
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Regex::Regex(Regex&& o) noexcept : code_(std::exchange(o.code_, nullptr)), jit_(o.jit_) {}

Regex& Regex::operator=(Regex&& o) noexcept {
  if (this != &o) {
    if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
    code_ = std::exchange(o.code_, nullptr);
    jit_ = o.jit_;
  }
  return *this;
}

bool Regex::find(const char* subject, size_t len, size_t start, size_t* mb, size_t* me) const {
  Scratch& s = scratch();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto subj = reinterpret_cast<PCRE2_SPTR>(subject);
  int rc = PCRE2_ERROR_JIT_STACKLIMIT;
  if (jit_) rc = pcre2_jit_match(code, subj, len, start, 0, s.md, s.mctx);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT || !jit_)
    rc = pcre2_match(code, subj, len, start, PCRE2_NO_UTF_CHECK, s.md, s.mctx);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw Error(std::string("tokenizer: pre-tokenizer regex match failed: ") +
                reinterpret_cast<const char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
  *mb = ov[0];
  *me = ov[1];
  return true;
}

PreTokenizer::PreTokenizer(const std::vector<std::string>& hf_patterns) {
  steps_.reserve(hf_patterns.size());
  for (const auto& p : hf_patterns) steps_.emplace_back(translate_hf_regex(p));
}

}  // namespace dsv4::tok::detail
