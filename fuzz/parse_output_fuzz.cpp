// libFuzzer target for the DeepSeek-V4 output parser (src/tokenizer/parse_output.*).
//
// Input layout: byte 0 = options (bit 0 thinking, bit 1 tools enabled, bit 2 V4.1, bits 3-7
// chunking seed), the rest = generated text. Checks: nothing crashes, streaming the text in
// pseudo-random chunks gives exactly the one-shot result, every tool call's arguments are
// valid JSON whenever they are valid UTF-8, and (for UTF-8 input) deltas end on character
// boundaries.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/parse_output.h"

namespace {

using namespace dsv4::chat;

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return false;
    if (i + n > s.size()) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (size_t k = 2; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// True when s ends in the middle of a UTF-8 sequence whose lead byte is well formed.
bool ends_mid_sequence(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;
    const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    return need > back;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  ParseOptions o;
  o.thinking = flags & 1;
  o.tools_enabled = flags & 2;
  o.variant = (flags & 4) ? Variant::V41 : Variant::V4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  const ParsedMessage one = parse_completion(text, o);
  const bool text_utf8 = valid_utf8(text);

  uint32_t state = 0x9E3779B9u ^ (static_cast<uint32_t>(flags >> 3) * 0x85EBCA6Bu) ^
                   static_cast<uint32_t>(size);
  const uint32_t max_chunk = 1u + (flags >> 3) % 24u;
  OutputParser p(o);
  ParsedMessage chunked;
  size_t i = 0;
  while (i < text.size()) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const size_t n = std::min<size_t>(text.size() - i, 1 + state % max_chunk);
    const ParseDelta d = p.push(text.substr(i, n));
    if (text_utf8 && (ends_mid_sequence(d.content) || ends_mid_sequence(d.reasoning))) std::abort();
    chunked.append(d);
    i += n;
  }
  chunked.append(p.finish());
  if (!(chunked == one)) std::abort();

  for (const auto& call : one.tool_calls)
    if (valid_utf8(call.arguments) && (call.arguments.find('\0') != std::string::npos ||
                                       !nlohmann::json::accept(call.arguments)))
      std::abort();
  return 0;
}
