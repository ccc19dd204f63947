// dsv4 bench decode|prefill: model speed against the machine's measured limits.
#include "cli_args.h"
#include "cli_ids.h"
#include "commands.h"
#include "core/error.h"
#include "model_bench.h"

namespace dsv4::cli {

int cmd_bench(int argc, char** argv) {
  Args args("bench", "Benchmark K full-width V4-Flash layers (exact shapes, native FP4/FP8/BF16 formats, random\n"
                     "weights, 256 experts top-6 + shared, LM head) against this machine's limits measured in\n"
                     "the same run. Usage: dsv4 bench decode|prefill [options]. The checkpoint is generated\n"
                     "once (~3.4 GB per layer + 2.1 GB) and reused.");
  args.option("layers", "K", "full-width layers", "2")
      .option("ctx", "N", "decode: context length held in the KV state", "1024")
      .option("steps", "N", "decode: timed decode steps per round", "8")
      .option("prompt", "N", "prefill: prompt tokens", "512")
      .option("isa", "NAME", "force a SIMD target: best, avx512, avx512-nobf16 (avx512 without the BF16 dot product), avx2, sse4, scalar", "best")
      .option("model-dir", "DIR", "where to keep the generated checkpoint (default $TMPDIR/dsv4-bench-flash-K)");
  const ModelLoadFlags load_flags{.backend = false, .kernel_threads = true};  // always the cpu backend
  add_model_load_options(args, load_flags);
  if (!args.parse(argc, argv)) return 0;
  check(args.positional().size() == 1, "bench: say what to measure: dsv4 bench decode|prefill");
  bench::ModelBenchOptions opt;
  opt.mode = args.positional()[0];
  opt.layers = args.get_int("layers");
  opt.ctx = args.get_int("ctx");
  opt.steps = args.get_int("steps");
  opt.prompt = args.get_int("prompt");
  const ModelLoadOptions load = model_load_options(args, load_flags);  // before the (slow) generation
  opt.threads = load.threads;
  opt.residency = load.residency;
  opt.numerics = load.numerics;
  opt.isa = args.get("isa");
  if (args.has("model-dir")) opt.model_dir = args.get("model-dir");
  return bench::run_model_bench(opt);
}

}  // namespace dsv4::cli
