// dsv4 inspect: what a checkpoint holds, after binding and checking every tensor.
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "model/summary.h"
#include "model/weights.h"

namespace dsv4::cli {

namespace {
std::string human(double v, const char* unit) {
  const char* prefixes[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (v >= 1000 && i < 4) v /= 1000, ++i;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", v, prefixes[i], unit);
  return buf;
}
const char* attention_kind(int64_t ratio) { return ratio == 0 ? "window" : ratio == 4 ? "CSA" : "HCA"; }
}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args("inspect", "Load a DeepSeek-V4 checkpoint directory, check every tensor against config.json and\n"
                       "print a summary: configuration, layer schedule, tensor count, bytes by dtype, parameters.");
  args.option("model", "DIR", "checkpoint directory (config.json + safetensors)", std::nullopt, true);
  if (!args.parse(argc, argv)) return 0;

  auto w = model::load_weights(args.get("model"));
  const io::Config& c = w->config;
  const model::ModelSummary s = model::summarize(*w);
  std::printf("model            %s (%s)\n", args.get("model").c_str(), c.model_type.c_str());
  std::printf("hidden           %lld, %lld layers + %lld MTP, vocab %lld\n", (long long)c.n_embd, (long long)c.n_layer,
              (long long)c.n_mtp, (long long)c.vocab_size);
  std::printf("attention        %lld heads x %lld (rope %lld), q_lora %lld, o_groups %lld x %lld, window %lld\n",
              (long long)c.n_head, (long long)c.head_dim, (long long)c.rope_dim, (long long)c.q_lora_rank,
              (long long)c.o_groups, (long long)c.o_lora_rank, (long long)c.sliding_window);
  std::printf("indexer          %lld heads x %lld, top-k %lld\n", (long long)c.index_n_head, (long long)c.index_head_dim,
              (long long)c.index_topk);
  std::printf("moe              %lld experts, %lld active, %lld shared, width %lld, %lld hash layers, scale %.3g\n",
              (long long)c.n_expert, (long long)c.n_expert_used, (long long)c.n_shared_expert, (long long)c.n_ff_expert,
              (long long)c.n_hash_layer, c.routed_scaling_factor);
  std::printf("layers          ");
  for (int64_t l = 0; l < c.n_layer + c.n_mtp; ++l)
    std::printf(" %s%s", l == c.n_layer ? "| mtp " : "", attention_kind(c.compress_ratio(l))),
        c.compress_ratio(l) > 4 ? (void)std::printf("(%lld)", (long long)c.compress_ratio(l)) : (void)0;
  std::printf("\ntensors          %lld, %s\n", (long long)s.n_tensors, human(double(s.total_bytes), "B").c_str());
  for (const auto& [dt, b] : s.bytes_by_dtype) std::printf("  %-8s       %s\n", dt.c_str(), human(double(b), "B").c_str());
  std::printf("parameters       %s total (main %s, MTP %s)\n", human(double(s.params_total), "").c_str(),
              human(double(s.params_main), "").c_str(), human(double(s.params_mtp), "").c_str());
  std::printf("  routed experts %s\n", human(double(s.params_routed_experts), "").c_str());
  std::printf("  embed / head   %s / %s\n", human(double(s.params_embed), "").c_str(), human(double(s.params_head), "").c_str());
  std::printf("  active/token   %s\n", human(double(s.params_active), "").c_str());
  return 0;
}

}  // namespace dsv4::cli
