#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <array>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace dsv4::tok {

namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers.

enum class Seq { kOk, kInvalid, kIncomplete };

// Classifies the sequence at s[0, n) (n > 0). kOk: a valid character of *len bytes.
// kInvalid: *len is the maximal invalid subpart (>= 1 byte) to replace with one U+FFFD.
// kIncomplete: s[0, n) is a valid but truncated prefix of a character.
Seq utf8_next(const unsigned char* s, size_t n, size_t* len) {
  const unsigned char c = s[0];
  if (c < 0x80) {
    *len = 1;
    return Seq::kOk;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *len = 1;
    return Seq::kInvalid;
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= n) {
      *len = i;
      return Seq::kIncomplete;
    }
    const unsigned char b = s[i];
    const bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *len = i;
      return Seq::kInvalid;
    }
  }
  *len = need;
  return Seq::kOk;
}

// Offset of the first invalid byte, or npos when s is valid UTF-8.
size_t utf8_invalid_offset(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    if (utf8_next(s + i, n - i, &len) != Seq::kOk) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Appends s to out with every maximal invalid subpart (and a truncated tail when `final`)
// replaced by U+FFFD. Returns the number of trailing bytes not consumed (an incomplete
// sequence, only when !final).
size_t append_lossy(std::string& out, std::string_view sv, bool final) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  size_t i = 0, run = 0;  // [run, i) is valid and not yet copied
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    const Seq r = utf8_next(s + i, n - i, &len);
    if (r == Seq::kOk) {
      i += len;
      continue;
    }
    out.append(sv.data() + run, i - run);
    if (r == Seq::kIncomplete && !final) return n - i;
    out.append(kReplacement, 3);
    i += len;
    run = i;
  }
  out.append(sv.data() + run, n - run);
  return 0;
}

// Decodes one code point from valid UTF-8 (JSON strings are valid UTF-8).
uint32_t next_codepoint(const std::string& s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  if (utf8_next(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i, &len) !=
      Seq::kOk) {
    ++i;
    return 0xFFFFFFFF;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order. All code points are < 0x144.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? uint32_t(b) : next++;
      to_byte[to_cp[b]] = int16_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// Decodes a byte-level vocabulary string to raw bytes; false if a char is not in the map.
bool byte_level_decode(const std::string& s, std::string& out) {
  const ByteMap& bm = byte_map();
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    const uint32_t cp = next_codepoint(s, i);
    if (cp >= bm.to_byte.size() || bm.to_byte[cp] < 0) return false;
    out += char(bm.to_byte[cp]);
  }
  return true;
}

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, SvHash, std::equal_to<>>;

constexpr uint8_t kExists = 1, kAdded = 2, kSpecial = 4;
constexpr int32_t kMaxId = 1 << 24;
constexpr size_t kCacheMaxPiece = 256;    // longer pieces are not cached
constexpr size_t kCacheMaxEntries = 1 << 16;  // per thread

uint64_t next_instance_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ (w * 0xFF51AFD7ED558CCDULL)) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ (w * 0xFF51AFD7ED558CCDULL)) * 0xC4CEB9FE1A85EC53ULL;
  }
  h ^= h >> 32;
  return h;
}

// Per-thread cache of BPE results for pieces: an open-addressing table whose keys and values
// live in two arenas (no allocation per entry).
struct PieceCache {
  struct Slot {
    uint64_t hash = 0;  // 0 = empty
    uint32_t key_off = 0, ids_off = 0;
    uint16_t key_len = 0, ids_len = 0;
  };
  uint64_t owner = 0, generation = 0;
  std::vector<Slot> slots;
  std::string keys;
  std::vector<int32_t> ids;
  size_t used = 0;

  void reset() {
    slots.assign(slots.empty() ? 4096 : slots.size(), Slot{});
    keys.clear();
    ids.clear();
    used = 0;
  }
  // Returns the slot holding the piece, or the empty slot where it belongs.
  Slot& probe(const char* p, size_t n, uint64_t h) {
    const size_t mask = slots.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots[i];
      if (s.hash == 0) return s;
      if (s.hash == h && s.key_len == n && std::memcmp(keys.data() + s.key_off, p, n) == 0)
        return s;
    }
  }
  void grow() {
    std::vector<Slot> old = std::move(slots);
    slots.assign(old.size() * 2, Slot{});
    const size_t mask = slots.size() - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      size_t i = s.hash & mask;
      while (slots[i].hash != 0) i = (i + 1) & mask;
      slots[i] = s;
    }
  }
};

PieceCache& thread_cache(uint64_t owner, uint64_t generation) {
  thread_local PieceCache c;
  if (c.owner != owner || c.generation != generation || c.slots.empty()) {
    c.reset();
    c.owner = owner;
    c.generation = generation;
  }
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  detail::PreTokenizer pretok;
  detail::BpeModel bpe;

  // Per id: bytes in arena_[off[id], off[id+1]) and flags.
  std::string arena;
  std::vector<uint32_t> off;
  std::vector<uint8_t> flags;
  int32_t vocab_size = 0;

  StrMap<int32_t> added_by_content;
  StrMap<int32_t> base_by_bytes;

  // Byte trie over added-token contents (leftmost-longest cut).
  std::array<bool, 256> added_first{};
  std::unordered_map<uint64_t, int32_t> trie_edges;  // (node << 8 | byte) -> child
  std::vector<int32_t> trie_token{-1};               // node -> token id or -1

  std::optional<int32_t> bos, eos, pad;
  bool add_bos = false;

  // Piece cache: per thread (no locking), tagged with this tokenizer's instance id and a
  // generation that clear_cache() bumps.
  uint64_t instance_id = next_instance_id();
  mutable std::atomic<uint64_t> generation{0};

  std::string_view bytes(int32_t id) const { return {arena.data() + off[id], off[id + 1] - off[id]}; }

  void add_trie(const std::string& content, int32_t id) {
    int32_t node = 0;
    for (unsigned char c : content) {
      const uint64_t key = (uint64_t(node) << 8) | c;
      auto it = trie_edges.find(key);
      if (it == trie_edges.end()) {
        trie_token.push_back(-1);
        it = trie_edges.emplace(key, int32_t(trie_token.size() - 1)).first;
      }
      node = it->second;
    }
    if (trie_token[node] < 0) trie_token[node] = id;
    added_first[static_cast<unsigned char>(content[0])] = true;
  }

  // Longest added token starting at s[0]; returns its byte length (0 if none).
  size_t match_added(const char* s, size_t n, int32_t* id) const {
    int32_t node = 0;
    size_t best = 0;
    for (size_t j = 0; j < n; ++j) {
      auto it = trie_edges.find((uint64_t(node) << 8) | static_cast<unsigned char>(s[j]));
      if (it == trie_edges.end()) break;
      node = it->second;
      if (trie_token[node] >= 0) {
        best = j + 1;
        *id = trie_token[node];
      }
    }
    return best;
  }

  void encode_piece(const char* p, size_t n, std::vector<int32_t>& out) const {
    if (n == 1 || n > kCacheMaxPiece) {
      bpe.encode(p, n, out);
      return;
    }
    PieceCache& c = thread_cache(instance_id, generation.load(std::memory_order_relaxed));
    const uint64_t h = hash_bytes(p, n) | 1;  // never 0 (= empty)
    PieceCache::Slot* s = &c.probe(p, n, h);
    if (s->hash != 0) {
      out.insert(out.end(), c.ids.begin() + s->ids_off, c.ids.begin() + s->ids_off + s->ids_len);
      return;
    }
    const size_t start = out.size();
    bpe.encode(p, n, out);
    if (c.used >= kCacheMaxEntries || c.keys.size() + n > (1u << 30)) {
      c.reset();
      s = &c.probe(p, n, h);
    } else if ((c.used + 1) * 2 > c.slots.size()) {
      c.grow();
      s = &c.probe(p, n, h);
    }
    *s = PieceCache::Slot{h, uint32_t(c.keys.size()), uint32_t(c.ids.size()), uint16_t(n),
                          uint16_t(out.size() - start)};
    c.keys.append(p, n);
    c.ids.insert(c.ids.end(), out.begin() + start, out.end());
    ++c.used;
  }

  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
    pretok.split(text, [&](const char* p, size_t n) { encode_piece(p, n, out); });
  }
};

namespace {

std::string describe(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

const json& require(const json& obj, const char* key, const std::string& where) {
  check(obj.is_object(), where + " is not a JSON object");
  auto it = obj.find(key);
  check(it != obj.end(), where + " has no \"" + key + "\"");
  return *it;
}

std::string regex_escape(const std::string& s) {
  // PCRE2 literal: \Q...\E, with any "\E" inside split out.
  std::string out = "\\Q";
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'E') {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += s[i];
    }
  }
  return out + "\\E";
}

void collect_pretokenizer(const json& pt, std::vector<std::string>& patterns, const std::string& ctx) {
  if (pt.is_null()) return;
  const std::string type = require(pt, "type", ctx).get<std::string>();
  if (type == "Sequence") {
    const json& list = require(pt, "pretokenizers", ctx);
    check(list.is_array(), ctx + ".pretokenizers is not an array");
    for (size_t i = 0; i < list.size(); ++i)
      collect_pretokenizer(list[i], patterns, ctx + ".pretokenizers[" + std::to_string(i) + "]");
  } else if (type == "Split") {
    const json& pat = require(pt, "pattern", ctx);
    const std::string behavior = pt.value("behavior", std::string("Isolated"));
    check(behavior == "Isolated", ctx + ": Split behavior '" + behavior +
                                      "' is not supported (only Isolated)");
    check(!pt.value("invert", false), ctx + ": Split with invert=true is not supported");
    if (pat.contains("Regex")) {
      patterns.push_back(pat.at("Regex").get<std::string>());
    } else if (pat.contains("String")) {
      patterns.push_back(regex_escape(pat.at("String").get<std::string>()));
    } else {
      throw Error(ctx + ": Split pattern has neither Regex nor String");
    }
  } else if (type == "ByteLevel") {
    check(!pt.value("add_prefix_space", false),
          ctx + ": ByteLevel add_prefix_space=true is not supported");
    if (pt.value("use_regex", true)) {
      // The GPT-2 split the ByteLevel pre-tokenizer applies when use_regex is true.
      patterns.push_back(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
    }
  } else {
    throw Error(ctx + ": pre-tokenizer type '" + type + "' is not supported");
  }
}

std::optional<std::string> config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load_from_dir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(model_dir) / "tokenizer.json";
  std::error_code ec;
  check(fs::is_regular_file(p, ec),
        "no tokenizer.json in '" + model_dir + "' (expected " + p.string() + ")");
  return load(p.string());
}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot open tokenizer file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  check(!in.bad(), "cannot read tokenizer file '" + path + "'");

  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  const ByteMap& bm = byte_map();
  const std::string where = path + ": ";
  try {
    json root;
    try {
      root = json::parse(text);
    } catch (const json::parse_error& e) {
      throw Error(where + "not valid JSON (" + e.what() + ")");
    }
    check(root.is_object(), where + "top level is not a JSON object");

    // Normalizer: only the identity (null or an empty Sequence) is supported.
    if (auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
      const std::string type = require(*it, "type", where + "normalizer").get<std::string>();
      const bool empty_seq = type == "Sequence" && it->contains("normalizers") &&
                             (*it)["normalizers"].is_array() && (*it)["normalizers"].empty();
      check(empty_seq, where + "normalizer '" + type + "' is not supported (only identity)");
    }
    if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
      const std::string type = require(*it, "type", where + "decoder").get<std::string>();
      check(type == "ByteLevel", where + "decoder '" + type + "' is not supported (only ByteLevel)");
    }

    std::vector<std::string> patterns;
    if (auto it = root.find("pre_tokenizer"); it != root.end())
      collect_pretokenizer(*it, patterns, where + "pre_tokenizer");
    t.pretok = detail::PreTokenizer(patterns);

    // Model: byte-level BPE.
    const json& model = require(root, "model", where.substr(0, where.size() - 2));
    const std::string mtype = model.value("type", std::string("BPE"));
    check(mtype == "BPE", where + "model type '" + mtype + "' is not supported (only BPE)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (auto it = model.find(k); it != model.end() && !it->is_null())
        check(it->get<std::string>().empty(), where + "model." + k + " is not supported");
    }
    const json& vocab = require(model, "vocab", where + "model");
    check(vocab.is_object() && !vocab.empty(), where + "model.vocab is not a non-empty object");

    StrMap<int32_t> by_piece;  // byte-level vocab string -> id
    by_piece.reserve(vocab.size() * 2);
    std::vector<std::pair<int32_t, const std::string*>> entries;
    entries.reserve(vocab.size());
    int32_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      check(it.value().is_number_integer(),
            where + "model.vocab[\"" + it.key() + "\"] is not an integer id");
      const int64_t id = it.value().get<int64_t>();
      check(id >= 0 && id < kMaxId, where + "model.vocab[\"" + it.key() + "\"] has id " +
                                        std::to_string(id) + " out of range");
      auto [pos, inserted] = by_piece.emplace(it.key(), int32_t(id));
      check(inserted, where + "model.vocab has duplicate entry \"" + it.key() + "\"");
      entries.emplace_back(int32_t(id), &pos->first);
      max_id = std::max<int32_t>(max_id, int32_t(id));
    }

    // Added tokens.
    struct Added { int32_t id; std::string content; bool special; };
    std::vector<Added> added;
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      check(it->is_array(), where + "added_tokens is not an array");
      for (size_t i = 0; i < it->size(); ++i) {
        const json& a = (*it)[i];
        const std::string ctx = where + "added_tokens[" + std::to_string(i) + "]";
        const json& idj = require(a, "id", ctx);
        check(idj.is_number_integer(), ctx + ".id is not an integer");
        const int64_t id = idj.get<int64_t>();
        check(id >= 0 && id < kMaxId, ctx + ".id " + std::to_string(id) + " out of range");
        const json& cj = require(a, "content", ctx);
        check(cj.is_string() && !cj.get<std::string>().empty(),
              ctx + ".content is not a non-empty string");
        const bool special = a.value("special", false);
        added.push_back(Added{int32_t(id), cj.get<std::string>(), special});
        max_id = std::max<int32_t>(max_id, int32_t(id));
      }
    }

    t.vocab_size = max_id + 1;
    std::vector<std::string> tok_bytes(size_t(t.vocab_size));
    t.flags.assign(size_t(t.vocab_size), 0);
    std::vector<bool> seen(size_t(t.vocab_size), false);
    std::string decoded;
    for (const auto& [id, piece] : entries) {
      check(!seen[id], where + "model.vocab uses id " + std::to_string(id) + " twice");
      seen[id] = true;
      t.flags[id] |= kExists;
      // Entries outside the byte-level alphabet (e.g. the BOS/EOS strings stored in the
      // vocabulary) decode to their literal text; added tokens override below.
      tok_bytes[id] = byte_level_decode(*piece, decoded) ? decoded : *piece;
    }
    for (const Added& a : added) {
      t.flags[a.id] |= kExists | kAdded | (a.special ? kSpecial : 0);
      tok_bytes[a.id] = a.content;
      t.added_by_content.emplace(a.content, a.id);  // first record wins
      t.add_trie(a.content, a.id);
    }
    for (const auto& [id, piece] : entries) {
      if (t.flags[id] & kAdded) continue;
      auto [it2, ins] = t.base_by_bytes.emplace(tok_bytes[id], id);
      if (!ins && id < it2->second) it2->second = id;
    }

    // Arena of token bytes.
    t.off.resize(size_t(t.vocab_size) + 1);
    size_t total = 0;
    for (const auto& b : tok_bytes) total += b.size();
    t.arena.reserve(total);
    for (int32_t id = 0; id < t.vocab_size; ++id) {
      t.off[id] = uint32_t(t.arena.size());
      t.arena += tok_bytes[id];
    }
    t.off[t.vocab_size] = uint32_t(t.arena.size());

    // Byte tokens.
    for (int b = 0; b < 256; ++b) {
      std::string s;
      append_utf8(s, bm.to_cp[b]);
      auto it = by_piece.find(s);
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      check(it != by_piece.end(),
            where + "model.vocab lacks the byte-level token for byte " + hex +
                " (not a byte-level BPE vocabulary)");
      t.bpe.set_byte_token(uint8_t(b), it->second);
    }

    // Merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
    const json& merges = require(model, "merges", where + "model");
    check(merges.is_array(), where + "model.merges is not an array");
    std::string left, right, joined;
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      const std::string ctx = where + "model.merges[" + std::to_string(i) + "]";
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        check(sp != std::string::npos && sp > 0 && sp + 1 < s.size() &&
                  s.find(' ', sp + 1) == std::string::npos,
              ctx + " \"" + s + "\" is not of the form \"left right\"");
        left.assign(s, 0, sp);
        right.assign(s, sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        throw Error(ctx + " is neither \"left right\" nor [left, right]: " + describe(m));
      }
      joined = left + right;
      auto l = by_piece.find(left), r = by_piece.find(right), j = by_piece.find(joined);
      check(l != by_piece.end() && r != by_piece.end(),
            ctx + " refers to a token not in the vocabulary: \"" + left + " " + right + "\"");
      check(j != by_piece.end(),
            ctx + " produces \"" + joined + "\", which is not in the vocabulary");
      t.bpe.add_merge(l->second, r->second, j->second, uint32_t(i));
    }

    // tokenizer_config.json (optional).
    const fs::path cfg_path = fs::path(path).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (fs::is_regular_file(cfg_path, ec)) {
      std::ifstream cin(cfg_path, std::ios::binary);
      std::stringstream cs;
      cs << cin.rdbuf();
      json cfg;
      try {
        cfg = json::parse(cs.str());
      } catch (const json::parse_error& e) {
        throw Error(cfg_path.string() + ": not valid JSON (" + e.what() + ")");
      }
      check(cfg.is_object(), cfg_path.string() + ": top level is not a JSON object");
      auto resolve = [&](const char* key) -> std::optional<int32_t> {
        auto content = config_token(cfg, key);
        if (!content) return std::nullopt;
        auto it = t.added_by_content.find(*content);
        if (it != t.added_by_content.end()) return it->second;
        auto jt = by_piece.find(*content);
        if (jt != by_piece.end()) return jt->second;
        throw Error(cfg_path.string() + ": " + key + " \"" + *content +
                    "\" is not a token of " + path);
      };
      t.bos = resolve("bos_token");
      t.eos = resolve("eos_token");
      t.pad = resolve("pad_token");
      if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean())
        t.add_bos = it->get<bool>();
    }
  } catch (const json::exception& e) {
    throw Error(where + "malformed tokenizer file (" + e.what() + ")");
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, allow_special, out);
  return out;
}

void Tokenizer::encode_into(std::string_view text, bool allow_special,
                            std::vector<int32_t>& out) const {
  const size_t bad = utf8_invalid_offset(text);
  check(bad == std::string_view::npos,
        "tokenizer: input is not valid UTF-8 (first invalid byte at offset " +
            std::to_string(bad) + ")");
  const Impl& t = *impl_;
  if (!allow_special || t.trie_edges.empty()) {
    t.encode_ordinary(text, out);
    return;
  }
  const char* s = text.data();
  const size_t n = text.size();
  size_t gap = 0;
  for (size_t i = 0; i < n;) {
    if (!t.added_first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    int32_t id = -1;
    const size_t len = t.match_added(s + i, n - i, &id);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > gap) t.encode_ordinary(text.substr(gap, i - gap), out);
    out.push_back(id);
    i += len;
    gap = i;
  }
  if (gap < n) t.encode_ordinary(text.substr(gap), out);
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  const size_t bad = utf8_invalid_offset(text);
  check(bad == std::string_view::npos,
        "tokenizer: input is not valid UTF-8 (first invalid byte at offset " +
            std::to_string(bad) + ")");
  std::vector<std::string> pieces;
  impl_->pretok.split(text, [&](const char* p, size_t n) { pieces.emplace_back(p, n); });
  return pieces;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string raw;
  raw.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    check(id >= 0 && id < t.vocab_size, "tokenizer: token id " + std::to_string(id) +
                                            " out of range [0, " + std::to_string(t.vocab_size) + ")");
    if (skip_special && (t.flags[id] & kSpecial)) continue;
    raw += t.bytes(id);
  }
  if (utf8_invalid_offset(raw) == std::string_view::npos) return raw;
  std::string out;
  out.reserve(raw.size() + 8);
  append_lossy(out, raw, /*final=*/true);
  return out;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view content) const {
  if (auto it = impl_->added_by_content.find(content); it != impl_->added_by_content.end())
    return it->second;
  if (auto it = impl_->base_by_bytes.find(content); it != impl_->base_by_bytes.end())
    return it->second;
  return std::nullopt;
}

std::string Tokenizer::token_text(int32_t id) const {
  check(id >= 0 && id < impl_->vocab_size,
        "tokenizer: token id " + std::to_string(id) + " out of range");
  return std::string(impl_->bytes(id));
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & kSpecial);
}
bool Tokenizer::is_added(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & kAdded);
}
bool Tokenizer::has_token(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & kExists);
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos_token() const { return impl_->add_bos; }

void Tokenizer::clear_cache() const { impl_->generation.fetch_add(1); }

// ---------------------------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  const Tokenizer::Impl& t = *tok_->impl_;
  check(id >= 0 && id < t.vocab_size, "tokenizer: token id " + std::to_string(id) +
                                          " out of range [0, " + std::to_string(t.vocab_size) + ")");
  std::string out;
  if (skip_special_ && (t.flags[id] & kSpecial)) return out;
  pending_ += t.bytes(id);
  const size_t keep = append_lossy(out, pending_, /*final=*/false);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  append_lossy(out, pending_, /*final=*/true);
  pending_.clear();
  return out;
}

}  // namespace dsv4::tok
