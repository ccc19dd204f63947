// dsv4 logits: logits for every prompt position (one prefill) and for each teacher-forced
// continuation token (incremental decode), written as float32 .npy.
#include <cstdio>
#include <filesystem>

#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "core/error.h"
#include "io/npy.h"
#include "runtime/engine.h"

namespace dsv4::cli {

int cmd_logits(int argc, char** argv) {
  Args args("logits", "Write float32 logits [len(P)+len(C), vocab]: one row per prompt position from a\n"
                      "single prefill, then one row per continuation token fed one at a time.");
  args.option("model", "DIR", "checkpoint directory", std::nullopt, true)
      .option("prompt", "P", "prompt ids: .npy file or comma-separated list", std::nullopt, true)
      .option("continue", "C", "continuation ids fed by incremental decode (.npy or list)")
      .option("out", "OUT.npy", "output file", std::nullopt, true)
      .option("mtp-out", "M.npy", "also write the MTP block's logits [len(P), vocab] (inputs: prompt[1:] + greedy token)")
      .option("dump-dir", "DIR", "write each block's output streams of the prompt prefill as hidden_layer{l}.npy [S, hc, hidden]");
  add_model_load_options(args);
  if (!args.parse(argc, argv)) return 0;

  const std::vector<int32_t> prompt = parse_ids(args.get("prompt"), "--prompt");
  const std::vector<int32_t> cont = args.has("continue") ? parse_ids(args.get("continue"), "--continue") : std::vector<int32_t>{};
  const ModelLoadOptions load = model_load_options(args);
  auto m = model::Model::load(args.get("model"), load.backend, load.threads, load.residency, load.numerics);
  const io::Config& c = m->config();
  const bool dump = args.has("dump-dir");
  runtime::LogitsResult r = runtime::compute_logits(*m, prompt, cont, args.has("mtp-out"), dump);

  const int64_t rows = int64_t(prompt.size() + cont.size());
  io::write_npy_f32(args.get("out"), {rows, r.vocab}, r.logits.data());
  std::printf("wrote %s [%lld, %lld]\n", args.get("out").c_str(), (long long)rows, (long long)r.vocab);
  if (args.has("mtp-out")) {
    io::write_npy_f32(args.get("mtp-out"), {int64_t(prompt.size()), r.vocab}, r.mtp_logits.data());
    std::printf("wrote %s [%lld, %lld]\n", args.get("mtp-out").c_str(), (long long)prompt.size(), (long long)r.vocab);
  }
  if (dump) {
    const std::string dir = args.get("dump-dir");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    check(!ec, dir + ": cannot create directory: " + ec.message());
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const std::string path = dir + "/hidden_layer" + std::to_string(l) + ".npy";
      io::write_npy_f32(path, {int64_t(prompt.size()), c.hc_mult, c.n_embd}, r.trace.hidden[size_t(l)].data());
    }
    std::printf("wrote %lld layer dumps to %s\n", (long long)c.n_layer, dir.c_str());
  }
  return 0;
}

}  // namespace dsv4::cli
