// Pre-tokenizer of the DeepSeek-V4 tokenizer (spec B.2, B.7): a sequence of Hugging Face
// `Split` steps (behavior Isolated, invert false), each applied independently to every piece
// produced so far, compiled with PCRE2 (UTF + Unicode properties, JIT where available).
// Internal to dsv4_tokenizer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4::tok::detail {

// Rewrites a Hugging Face (Oniguruma) regex for PCRE2: `\s` / `\S` outside character classes
// become the explicit Unicode White_Space class / its negation (spec B.7), because PCRE2's
// UCP `\s` also matches U+180E. Throws dsv4::Error for `\s` inside a class (unsupported).
std::string translate_hf_regex(const std::string& pattern);

// One compiled PCRE2 pattern (UTF | UCP). Thread-safe: per-thread match scratch.
class Regex {
 public:
  // Throws dsv4::Error naming the pattern and offset when it does not compile.
  explicit Regex(const std::string& pcre2_pattern);
  ~Regex();
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Finds the first match in subject[0, len) at or after `start`. The subject must be valid
  // UTF-8 (not re-checked). Returns false when there is none.
  bool find(const char* subject, size_t len, size_t start, size_t* match_begin,
            size_t* match_end) const;
  bool jit() const { return jit_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

class PreTokenizer {
 public:
  PreTokenizer() = default;
  // Each pattern is a Hugging Face regex (translated with translate_hf_regex).
  explicit PreTokenizer(const std::vector<std::string>& hf_patterns);

  // Calls emit(const char* piece, size_t len) for every piece, in order. `text` must be valid
  // UTF-8. Pieces are never empty.
  template <class Emit>
  void split(std::string_view text, Emit&& emit) const {
    split_level(0, text.data(), text.size(), emit);
  }

  size_t num_steps() const { return steps_.size(); }

 private:
  template <class Emit>
  void split_level(size_t level, const char* s, size_t n, Emit& emit) const {
    if (n == 0) return;
    if (level == steps_.size()) {
      emit(s, n);
      return;
    }
    const Regex& re = steps_[level];
    size_t gap = 0, from = 0;
    while (from < n) {
      size_t mb = 0, me = 0;
      if (!re.find(s, n, from, &mb, &me)) break;
      if (me == mb) {  // empty match: not a piece; continue after the next character
        from = mb + 1;
        while (from < n && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80) ++from;
        continue;
      }
      if (mb > gap) split_level(level + 1, s + gap, mb - gap, emit);
      split_level(level + 1, s + mb, me - mb, emit);
      gap = from = me;
    }
    if (gap < n) split_level(level + 1, s + gap, n - gap, emit);
  }

  std::vector<Regex> steps_;
};

}  // namespace dsv4::tok::detail
