// The DeepSeek-V4 tokenizer (spec Part B): a byte-level BPE loaded from a checkpoint's
// Hugging Face `tokenizer.json` (and `tokenizer_config.json` next to it when present).
//
//  * encode: added tokens are cut out first (leftmost-longest, only when allow_special is
//    true), the rest goes through the pre-tokenizer regex steps (PCRE2) and byte-level BPE.
//    No normalization, no BOS/EOS insertion. Input must be valid UTF-8: invalid UTF-8 throws
//    dsv4::Error naming the byte offset (see docs/tokenizer.md).
//  * decode: token bytes through the inverse byte map (added tokens -> their content),
//    concatenated, then invalid UTF-8 replaced by U+FFFD (maximal subparts, like HF).
//  * StreamDecoder: the same, token by token, holding back incomplete UTF-8 sequences.
//
// Special tokens are always resolved by content from the file (token_id), never by fixed ids.
// A loaded Tokenizer is immutable apart from a per-thread piece cache (no locks): all const
// methods may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4::tok {

class Tokenizer {
 public:
  // Loads a Hugging Face tokenizer.json (byte-level BPE). Reads tokenizer_config.json from
  // the same directory when it exists (bos/eos/pad contents). Throws dsv4::Error with a clear
  // message for a missing, unreadable, malformed or unsupported file.
  static Tokenizer load(const std::string& tokenizer_json_path);
  // Finds tokenizer.json in a checkpoint directory.
  static Tokenizer load_from_dir(const std::string& model_dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // allow_special: whether added-token strings in `text` become their ids (true for text the
  // engine itself writes, e.g. chat templates; false for text from an API client, where
  // "<｜User｜>" is encoded as plain characters). Throws dsv4::Error on invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;
  // Same, appending to `out` (no reallocation churn for repeated calls).
  void encode_into(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;

  // The pieces the pre-tokenizer cuts plain text into (no added-token cut, no BPE); for
  // tests and debugging. Throws dsv4::Error on invalid UTF-8.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  // Concatenated token texts, invalid UTF-8 replaced by U+FFFD. skip_special drops tokens whose
  // added-token `special` flag is true. Ids outside [0, vocab_size()) throw dsv4::Error; ids
  // inside that range that name no token (gaps) decode to nothing.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // Id of an added token with exactly this content, else of the base-vocabulary token whose
  // decoded bytes are exactly `content`; nullopt when there is none.
  std::optional<int32_t> token_id(std::string_view content) const;
  // The raw bytes a token decodes to (an added token's content; a base token's bytes, which
  // may be an incomplete UTF-8 fragment). Throws dsv4::Error for an id out of range.
  std::string token_text(int32_t id) const;
  // One past the largest id (base vocabulary and added tokens together).
  int32_t vocab_size() const;
  // True for added tokens whose `special` flag is set in tokenizer.json.
  bool is_special(int32_t id) const;
  // True for any added token (special or not).
  bool is_added(int32_t id) const;
  // True when the id names a token (false for gaps in the id space and out-of-range ids).
  bool has_token(int32_t id) const;

  // From tokenizer_config.json (bos_token / eos_token / pad_token resolved by content), when
  // present; nullopt otherwise.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // tokenizer_config.json `add_bos_token` (false when absent). encode() never adds BOS itself.
  bool add_bos_token() const;

  // Invalidates cached BPE results in every thread (benchmarks use it to measure cold-cache
  // throughput).
  void clear_cache() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class StreamDecoder;
};

// Incremental detokenizer for streaming generation: push() returns only complete UTF-8 text;
// bytes of a character split across tokens are held back until it completes. Bytes that can
// never form a valid character become U+FFFD. Concatenating every push() and the final flush()
// gives exactly Tokenizer::decode of the same ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string push(int32_t id);
  // Returns whatever is held back (an incomplete sequence becomes U+FFFD) and resets.
  std::string flush();
  // Bytes currently held back (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace dsv4::tok
