// dsv4 make-tiny: a random checkpoint in the official layout, for demos and tests.
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "core/error.h"
#include "model/tiny_model.h"

namespace dsv4::cli {

int cmd_make_tiny(int argc, char** argv) {
  std::string presets;
  for (const auto& p : model::tiny_presets()) presets += (presets.empty() ? "" : ", ") + p;
  Args args("make-tiny", "Write a random DeepSeek-V4 checkpoint in the exact official on-disk layout\n"
                         "(config.json, index, sharded safetensors, FP8/FP4 weights with E8M0 scales).");
  args.option("out", "DIR", "output directory (created if missing)", std::nullopt, true)
      .option("seed", "N", "random seed", "1")
      .option("preset", "NAME", "configuration: " + presets, "tiny")
      .option("vocab-size", "N", "override the vocabulary size (e.g. to match a tokenizer)")
      .option("shards", "N", "number of safetensors shards (the last holds the MTP block)", "2");
  if (!args.parse(argc, argv)) return 0;

  io::Config c = model::tiny_config(args.get("preset"));
  if (args.has("vocab-size")) {
    c.vocab_size = args.get_int("vocab-size");
    check(c.vocab_size >= 2 && c.vocab_size <= (1 << 22), "--vocab-size must be between 2 and 4194304");
  }
  model::TinyModelOptions opt;
  opt.seed = uint64_t(args.get_int("seed"));
  opt.n_shards = args.get_int("shards");
  const int64_t n = model::write_tiny_model(args.get("out"), c, opt);
  std::printf("wrote %lld tensors (%s preset, vocab %lld, seed %llu) to %s\n", (long long)n, args.get("preset").c_str(),
              (long long)c.vocab_size, (unsigned long long)opt.seed, args.get("out").c_str());
  return 0;
}

}  // namespace dsv4::cli
