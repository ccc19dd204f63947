// dsv4 chat: interactive multi-turn chat on a checkpoint, with the official V4 / V4.1
// conversation encoding, optional thinking, streamed output and Ctrl+C to stop an answer.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "core/error.h"
#include "runtime/engine.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/parse_output.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

namespace {

// A plain-text message of one role.
chat::Message text_message(chat::Role role, std::string text) {
  chat::Message m;
  m.role = role;
  m.content = std::move(text);
  return m;
}

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted = true; }

// SIGINT without SA_RESTART: a blocking read returns early, so Ctrl+C is seen at once.
void install_sigint_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
}

// Terminal styling only when writing to a terminal.
struct Style {
  bool tty = isatty(STDOUT_FILENO);
  const char* dim() const { return tty ? "\033[2m" : ""; }
  const char* reset() const { return tty ? "\033[0m" : ""; }
};

void write(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// Prints parser output as it arrives: reasoning dimmed and marked, content plain.
class AnswerPrinter {
 public:
  explicit AnswerPrinter(const Style& style) : style_(style) {}
  void print(const chat::ParseDelta& d, chat::ParsedMessage& message) {
    message.append(d);
    if (!d.reasoning.empty()) {
      if (!in_reasoning_) write(std::string(style_.dim()) + "[thinking] "), in_reasoning_ = true;
      write(d.reasoning);
    }
    if ((d.reasoning_ended || !d.content.empty()) && in_reasoning_) write(std::string(style_.reset()) + "\n"), in_reasoning_ = false;
    write(d.content);
    for (const auto& call : d.tool_calls) write("\n[tool call] " + call.name + " " + call.arguments + "\n");
  }
  void end() {
    if (in_reasoning_) write(style_.reset());
    in_reasoning_ = false;
  }

 private:
  const Style& style_;
  bool in_reasoning_ = false;
};

}  // namespace

int cmd_chat(int argc, char** argv) {
  Args args("chat", "Interactive multi-turn chat with the model's chat encoding. Type a message and press\n"
                    "Enter; Ctrl+C stops the current answer; /reset clears the history; /exit or Ctrl+D quits.");
  args.option("model", "DIR", "checkpoint directory (with tokenizer.json)", std::nullopt, true)
      .flag("think", "thinking mode: the model reasons before answering (shown dimmed)")
      .flag("no-think", "chat mode without reasoning (the default)")
      .option("system", "TEXT", "system prompt")
      .option("variant", "NAME", "chat encoding: v4 or v4.1 (default: detected from the checkpoint)")
      .option("max-tokens", "N", "tokens per answer", "512")
      .option("temperature", "T", "sampling temperature (0 = greedy)", "1.0")
      .option("top-p", "P", "nucleus sampling threshold", "1.0")
      .option("seed", "S", "sampling seed", "0");
  add_model_load_options(args);
  if (!args.parse(argc, argv)) return 0;
  check(!(args.get_flag("think") && args.get_flag("no-think")), "--think and --no-think are exclusive");

  chat::ChatOptions chat_opt;
  chat_opt.thinking = args.get_flag("think");
  chat_opt.variant = args.has("variant") ? chat::parse_variant(args.get("variant")) : chat::detect_variant(args.get("model"));
  runtime::GenerateOptions gen;
  gen.max_tokens = args.get_int("max-tokens");
  gen.sampler.temperature = args.get_double("temperature");
  gen.sampler.top_p = args.get_double("top-p");
  gen.sampler.seed = uint64_t(args.get_int("seed"));
  sampling::Sampler validate(gen.sampler);
  const ModelLoadOptions load = model_load_options(args);

  const tok::Tokenizer tokenizer = tok::Tokenizer::load_from_dir(args.get("model"));
  std::fprintf(stderr, "loading %s ...\n", args.get("model").c_str());
  auto engine = runtime::Engine::load(args.get("model"), load.backend, load.threads, load.residency, load.numerics);
  check(tokenizer.vocab_size() <= engine->config().vocab_size,
        "tokenizer.json has " + std::to_string(tokenizer.vocab_size()) + " tokens but the model only " +
            std::to_string(engine->config().vocab_size));
  install_sigint_handler();
  const Style style;

  std::vector<chat::Message> history;
  if (args.has("system")) history.push_back(text_message(chat::Role::System, args.get("system")));
  kv::SequenceState state = engine->model().new_state();
  std::vector<int32_t> in_state;  // tokens whose effect `state` holds (reused across turns)

  std::fprintf(stderr, "dsv4 chat (%s, thinking %s). /exit to quit.\n", std::string(chat::variant_name(chat_opt.variant)).c_str(),
               chat_opt.thinking ? "on" : "off");
  for (;;) {
    write(std::string(style.tty ? "\n> " : ""));
    g_interrupted = false;
    std::string line;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted) { std::cin.clear(); write("\n"); }
      break;  // EOF (Ctrl+D) or Ctrl+C at the prompt
    }
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.erase(std::remove_if(history.begin(), history.end(), [](const chat::Message& m) { return m.role != chat::Role::System; }), history.end());
      state = engine->model().new_state();
      in_state.clear();
      write("(history cleared)\n");
      continue;
    }
    history.push_back(text_message(chat::Role::User, line));
    const std::string prompt_text = chat::render_chat(history, {}, chat_opt);
    const std::vector<int32_t> prompt = tokenizer.encode(prompt_text, /*allow_special=*/true);

    // Reuse the state when the new prompt extends what it already holds (the usual case);
    // otherwise (e.g. earlier reasoning dropped from the rendering) start over.
    const bool extends = in_state.size() < prompt.size() && std::equal(in_state.begin(), in_state.end(), prompt.begin());
    if (!extends) {
      state = engine->model().new_state();
      in_state.clear();
    }
    const std::vector<int32_t> suffix(prompt.begin() + int64_t(in_state.size()), prompt.end());

    chat::ParseOptions parse_opt;
    parse_opt.variant = chat_opt.variant;
    parse_opt.thinking = chat_opt.thinking;
    chat::OutputParser parser(parse_opt);
    tok::StreamDecoder decoder(tokenizer);
    chat::ParsedMessage answer;
    AnswerPrinter printer(style);
    g_interrupted = false;
    const runtime::GenerateResult r = engine->generate(state, suffix, gen, [&](int32_t tok) {
      if (g_interrupted) return false;
      printer.print(parser.push(decoder.push(tok)), answer);
      return true;
    });
    printer.print(parser.push(decoder.flush()), answer);
    printer.print(parser.finish(), answer);
    printer.end();
    if (g_interrupted) write("\n[stopped]");
    write("\n");
    std::fprintf(stderr, "%s[%lld prompt tokens (%lld new) at %.1f tok/s, %lld generated at %.1f tok/s]%s\n", style.dim(),
                 (long long)prompt.size(), (long long)suffix.size(), r.prefill_tok_per_s(), (long long)r.tokens.size(),
                 r.decode_tok_per_s(), style.reset());

    in_state = prompt;
    in_state.insert(in_state.end(), r.tokens.begin(), r.tokens.end() - (r.last_token_pending ? 1 : 0));
    chat::Message reply = text_message(chat::Role::Assistant, answer.content);
    if (chat_opt.thinking) reply.reasoning_content = answer.reasoning_content;
    reply.tool_calls = answer.tool_calls;
    history.push_back(std::move(reply));
  }
  return 0;
}

}  // namespace dsv4::cli
