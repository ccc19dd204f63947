// dsv4 make-tiny: a random checkpoint in the official layout, for demos and tests.
#include <cstdio>
#include <filesystem>

#include <optional>

#include "cli_args.h"
#include "commands.h"
#include "core/error.h"
#include "model/tiny_model.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

int cmd_make_tiny(int argc, char** argv) {
  std::string presets;
  for (const auto& p : model::tiny_presets()) presets += (presets.empty() ? "" : ", ") + p;
  Args args("make-tiny", "Write a random DeepSeek-V4 checkpoint in the exact official on-disk layout\n"
                         "(config.json, index, sharded safetensors, FP8/FP4 weights with E8M0 scales).");
  args.option("out", "DIR", "output directory (created if missing)", std::nullopt, true)
      .option("seed", "N", "random seed", "1")
      .option("preset", "NAME", "configuration: " + presets + ", or flash-<K> (K full-width V4-Flash layers, ~3.4 GB each)", "tiny")
      .option("vocab-size", "N", "override the vocabulary size")
      .option("tokenizer", "FILE", "tokenizer.json to ship with the model; the vocabulary is sized to it")
      .option("shards", "N", "number of safetensors shards (the last holds the MTP block)", "2");
  if (!args.parse(argc, argv)) return 0;

  io::Config c = model::tiny_config(args.get("preset"));
  if (args.has("vocab-size")) {
    c.vocab_size = args.get_int("vocab-size");
    check(c.vocab_size >= 2 && c.vocab_size <= (1 << 22), "--vocab-size must be between 2 and 4194304");
  }
  std::optional<tok::Tokenizer> tokenizer;
  if (args.has("tokenizer")) {
    tokenizer.emplace(tok::Tokenizer::load(args.get("tokenizer")));
    c.vocab_size = tokenizer->vocab_size();
    if (auto id = tokenizer->bos_id()) c.bos_token_id = *id;
    if (auto id = tokenizer->eos_id()) c.eos_token_id = *id;
  }
  model::TinyModelOptions opt;
  opt.seed = uint64_t(args.get_int("seed"));
  opt.n_shards = args.get_int("shards");
  const int64_t n = model::write_tiny_model(args.get("out"), c, opt);
  if (tokenizer) {  // ship tokenizer.json (and its tokenizer_config.json) like a release checkpoint
    namespace fs = std::filesystem;
    const fs::path src = args.get("tokenizer"), dst = args.get("out");
    fs::copy_file(src, dst / "tokenizer.json", fs::copy_options::overwrite_existing);
    const fs::path cfg = src.parent_path() / "tokenizer_config.json";
    if (fs::exists(cfg)) fs::copy_file(cfg, dst / "tokenizer_config.json", fs::copy_options::overwrite_existing);
  }
  std::printf("wrote %lld tensors (%s preset, vocab %lld, seed %llu) to %s\n", (long long)n, args.get("preset").c_str(),
              (long long)c.vocab_size, (unsigned long long)opt.seed, args.get("out").c_str());
  return 0;
}

}  // namespace dsv4::cli
