// dsv4 generate: prompt ids in, generated ids out, with prefill/decode speed.
#include <cstdio>

#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "runtime/engine.h"

namespace dsv4::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "Prefill a prompt of token ids and generate a continuation.\n"
                        "Prints the generated ids, then prefill and decode speed.");
  args.option("model", "DIR", "checkpoint directory", std::nullopt, true)
      .option("prompt-ids", "IDS", "prompt: comma-separated ids or a .npy file", std::nullopt, true)
      .option("max-tokens", "N", "tokens to generate", "16")
      .option("temperature", "T", "sampling temperature (0 = greedy)", "0")
      .option("top-p", "P", "nucleus sampling threshold", "1")
      .option("seed", "S", "sampling seed", "0")
      .option("backend", "NAME", "ref (scalar oracle) or cpu", "cpu")
      .flag("ignore-eos", "keep generating after the end-of-sequence token");
  if (!args.parse(argc, argv)) return 0;

  const std::vector<int32_t> prompt = parse_ids(args.get("prompt-ids"), "--prompt-ids");
  runtime::GenerateOptions opt;
  opt.max_tokens = args.get_int("max-tokens");
  opt.sampler.temperature = args.get_double("temperature");
  opt.sampler.top_p = args.get_double("top-p");
  opt.sampler.seed = uint64_t(args.get_int("seed"));
  opt.stop_at_eos = !args.get_flag("ignore-eos");

  sampling::Sampler validate(opt.sampler);  // reject bad sampling options before the (slow) load
  std::fprintf(stderr, "loading %s ...\n", args.get("model").c_str());
  auto engine = runtime::Engine::load(args.get("model"), args.get("backend"));
  const runtime::GenerateResult r = engine->generate(prompt, opt, [](int32_t tok) {
    std::printf("%d ", tok);
    std::fflush(stdout);
    return true;
  });
  std::printf("\n");
  std::fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s)\n", (long long)r.n_prompt, r.prefill_seconds,
               r.prefill_tok_per_s());
  std::fprintf(stderr, "decode:  %lld tokens in %.3f s (%.1f tok/s)\n", (long long)r.tokens.size(), r.decode_seconds,
               r.decode_tok_per_s());
  return 0;
}

}  // namespace dsv4::cli
