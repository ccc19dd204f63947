// dsv4 generate: prompt ids in, generated ids out, with prefill/decode speed.
#include <cstdio>
#include <optional>

#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "core/error.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "Prefill a prompt and generate a continuation (raw completion, no chat template).\n"
                        "With --prompt-ids prints the generated ids; with -p/--prompt (text, needs the\n"
                        "model's tokenizer.json) streams the generated text. Then prefill and decode speed.");
  args.option("model", "DIR", "checkpoint directory", std::nullopt, true)
      .option("prompt-ids", "IDS", "prompt: comma-separated ids or a .npy file")
      .option("prompt", "TEXT", "prompt text (also -p)")
      .flag("allow-special", "let special-token text in the prompt (e.g. <｜User｜>) become special tokens")
      .flag("no-bos", "do not start the text prompt with the BOS token")
      .option("max-tokens", "N", "tokens to generate", "16")
      .option("temperature", "T", "sampling temperature (0 = greedy)", "0")
      .option("top-p", "P", "nucleus sampling threshold", "1")
      .option("seed", "S", "sampling seed", "0")

      .flag("ignore-eos", "keep generating after the end-of-sequence token");
  add_model_load_options(args);
  if (!args.parse(argc, argv)) return 0;

  check(args.has("prompt-ids") != args.has("prompt"), "give exactly one of --prompt-ids and -p/--prompt");
  std::optional<tok::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (args.has("prompt")) {
    tokenizer.emplace(tok::Tokenizer::load_from_dir(args.get("model")));
    if (!args.get_flag("no-bos"))
      if (auto bos = tokenizer->bos_id()) prompt.push_back(*bos);
    tokenizer->encode_into(args.get("prompt"), args.get_flag("allow-special"), prompt);
  } else {
    prompt = parse_ids(args.get("prompt-ids"), "--prompt-ids");
  }
  runtime::GenerateOptions opt;
  opt.max_tokens = args.get_int("max-tokens");
  opt.sampler.temperature = args.get_double("temperature");
  opt.sampler.top_p = args.get_double("top-p");
  opt.sampler.seed = uint64_t(args.get_int("seed"));
  opt.stop_at_eos = !args.get_flag("ignore-eos");

  sampling::Sampler validate(opt.sampler);  // reject bad sampling options before the (slow) load
  const ModelLoadOptions load = model_load_options(args);
  std::fprintf(stderr, "loading %s ...\n", args.get("model").c_str());
  auto engine = runtime::Engine::load(args.get("model"), load.backend, load.threads, load.residency, load.numerics);
  std::optional<tok::StreamDecoder> text;
  if (tokenizer) text.emplace(*tokenizer);
  const runtime::GenerateResult r = engine->generate(prompt, opt, [&](int32_t tok) {
    if (text) {
      const std::string piece = text->push(tok);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else {
      std::printf("%d ", tok);
    }
    std::fflush(stdout);
    return true;
  });
  if (text) {
    const std::string rest = text->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::printf("\n");
  std::fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s)\n", (long long)r.n_prompt, r.prefill_seconds,
               r.prefill_tok_per_s());
  std::fprintf(stderr, "decode:  %lld tokens in %.3f s (%.1f tok/s)\n", (long long)r.tokens.size(), r.decode_seconds,
               r.decode_tok_per_s());
  return 0;
}

}  // namespace dsv4::cli
