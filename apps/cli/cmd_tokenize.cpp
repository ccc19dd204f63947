// dsv4 tokenize / dsv4 detokenize: the DeepSeek-V4 tokenizer on stdin/stdout.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

namespace {

tok::Tokenizer load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return tok::Tokenizer::load_from_dir(path);
  return tok::Tokenizer::load(path);
}

std::string read_all_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void write_out(const std::string& s) {
  if (!s.empty() && std::fwrite(s.data(), 1, s.size(), stdout) != s.size())
    throw Error("cannot write to stdout");
}

void append_ids(std::string& out, const std::vector<int32_t>& ids, const char* sep) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += sep;
    out += std::to_string(ids[i]);
  }
}

// Parses ids separated by whitespace, commas or brackets ("1 2 3", "1,2,3", "[1, 2, 3]").
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') {
      ++i;
      continue;
    }
    size_t j = i;
    if (text[j] == '-') ++j;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    check(j > i && (j - i) < 12 && !(j == i + 1 && text[i] == '-'),
          "expected a token id at byte " + std::to_string(i) + " of stdin, got '" +
              text.substr(i, std::min<size_t>(16, text.find_first_of(" \t\r\n,", i) - i)) + "'");
    const long long v = std::stoll(text.substr(i, j - i));
    check(v >= INT32_MIN && v <= INT32_MAX, "token id out of range: " + text.substr(i, j - i));
    ids.push_back(int32_t(v));
    i = j;
  }
  return ids;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize",
            "Encode text from stdin with a DeepSeek-V4 tokenizer.json.\n"
            "Plain: all of stdin is one text; prints its ids separated by spaces.\n"
            "--jsonl: each input line is a JSON object with a \"text\" field; each output line is\n"
            "the JSON array of its ids. No BOS/EOS is added.");
  args.option("tokenizer", "FILE", "tokenizer.json (or a checkpoint directory holding one)",
              std::nullopt, true);
  args.flag("jsonl", "JSON lines in and out");
  args.flag("allow-special", "let added-token strings in the text (e.g. <｜User｜>) become their ids");
  if (!args.parse(argc, argv)) return 0;
  const tok::Tokenizer t = load_tokenizer(args.get("tokenizer"));
  const bool special = args.get_flag("allow-special");

  if (!args.get_flag("jsonl")) {
    std::string out;
    append_ids(out, t.encode(read_all_stdin(), special), " ");
    out += "\n";
    write_out(out);
    return 0;
  }
  std::ios::sync_with_stdio(false);
  std::string line, out;
  std::vector<int32_t> ids;
  for (size_t lineno = 1; std::getline(std::cin, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error("stdin line " + std::to_string(lineno) + " is not valid JSON (" +
                  e.what() + ")");
    }
    check(j.is_object() && j.contains("text") && j["text"].is_string(),
          "stdin line " + std::to_string(lineno) +
              " is not a JSON object with a string \"text\" field");
    ids.clear();
    t.encode_into(j["text"].get_ref<const std::string&>(), special, ids);
    out += '[';
    append_ids(out, ids, ",");
    out += "]\n";
    if (out.size() > (1 << 16)) {
      write_out(out);
      out.clear();
    }
  }
  write_out(out);
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  Args args("detokenize",
            "Decode token ids from stdin with a DeepSeek-V4 tokenizer.json.\n"
            "Plain: ids separated by spaces, commas or newlines (a JSON array works too); prints\n"
            "the text (invalid UTF-8 becomes U+FFFD).\n"
            "--jsonl: each input line is a JSON array of ids; each output line is {\"text\": ...}.");
  args.option("tokenizer", "FILE", "tokenizer.json (or a checkpoint directory holding one)",
              std::nullopt, true);
  args.flag("jsonl", "JSON lines in and out");
  args.flag("skip-special", "drop tokens marked special (BOS, EOS, ...)");
  if (!args.parse(argc, argv)) return 0;
  const tok::Tokenizer t = load_tokenizer(args.get("tokenizer"));
  const bool skip = args.get_flag("skip-special");

  if (!args.get_flag("jsonl")) {
    write_out(t.decode(parse_ids(read_all_stdin()), skip));
    return 0;
  }
  std::ios::sync_with_stdio(false);
  std::string line, out;
  for (size_t lineno = 1; std::getline(std::cin, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<int32_t> ids;
    try {
      ids = nlohmann::json::parse(line).get<std::vector<int32_t>>();
    } catch (const nlohmann::json::exception& e) {
      throw Error("stdin line " + std::to_string(lineno) +
                  " is not a JSON array of ids (" + e.what() + ")");
    }
    out += nlohmann::json{{"text", t.decode(ids, skip)}}.dump();
    out += '\n';
    if (out.size() > (1 << 16)) {
      write_out(out);
      out.clear();
    }
  }
  write_out(out);
  return 0;
}

}  // namespace dsv4::cli
