// dsv4: command-line front end. Dispatches to one subcommand; never touches tensors.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

// The subcommand table. Add new commands here (one line) and in commands.h.
const Command kCommands[] = {
    {"chat", dsv4::cli::cmd_chat, "interactive multi-turn chat (text, official chat encoding)"},
    {"serve", dsv4::cli::cmd_serve, "HTTP server: OpenAI, Anthropic and Ollama APIs, chat page"},
    {"generate", dsv4::cli::cmd_generate, "raw completion from a prompt (text or ids)"},
    {"logits", dsv4::cli::cmd_logits, "write prefill/decode logits for a prompt to .npy"},
    {"bench", dsv4::cli::cmd_bench, "decode / prefill speed of full-width layers vs measured machine limits"},
    {"inspect", dsv4::cli::cmd_inspect, "summarise a checkpoint: config, tensors, bytes, parameters"},
    {"make-tiny", dsv4::cli::cmd_make_tiny, "write a random tiny checkpoint in the official layout"},
    {"tokenize", dsv4::cli::cmd_tokenize, "encode text from stdin to token ids (tokenizer.json)"},
    {"detokenize", dsv4::cli::cmd_detokenize, "decode token ids from stdin to text"},
};

void print_usage() {
  std::printf("usage: dsv4 <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::printf("  %-12s %s\n", c.name, c.summary);
  std::printf("\nRun 'dsv4 <command> --help' for the options of a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const dsv4::Error& e) {
      std::fprintf(stderr, "dsv4 %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "dsv4 %s: error: out of memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dsv4 %s: internal error: %s\n", c.name, e.what());
      return 70;
    }
  }
  std::fprintf(stderr, "dsv4: unknown command '%s'\n\n", argv[1]);
  print_usage();
  return 2;
}
