#include "model_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/prefetch.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "machine_probe.h"
#include "model/model.h"
#include "model/tiny_model.h"

namespace dsv4::bench {

namespace {

// Forwards every op and accounts for what it reads and computes: weight bytes per matmul
// (in decode each weight is streamed once per token), KV bytes per attention / indexer
// call, and multiply-adds.
class CountingOps : public backend::ForwardingOps {
 public:
  explicit CountingOps(std::unique_ptr<backend::Ops> inner) : ForwardingOps(std::move(inner)) {}

  void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    const double t0 = now_seconds();
    inner().matmul(w, x, n_tok, y);
    const double dt = now_seconds() - t0;
    weight_bytes += double(w.total_bytes());
    const double f = 2.0 * double(n_tok) * double(w.n_out) * double(w.n_in);
    flops += f;
    if (w.format == WeightFormat::FP4_BLOCK32) fp4_flops += f;
    account(w.name == "head.weight" ? "head " + format_name(w.format) : format_name(w.format), double(w.total_bytes()),
            f, dt);
    if (w.name == "head.weight") head_seconds += dt;
    matmul_seconds += dt;
  }
  void matmul_many(const MatmulJob* jobs, int64_t n_jobs) override {
    const double t0 = now_seconds();
    inner().matmul_many(jobs, n_jobs);
    const double dt = now_seconds() - t0;
    matmul_seconds += dt;
    std::string label;  // the formats of the group, e.g. "fp4+fp8" (routed + shared expert)
    double bytes = 0, group_flops = 0;
    for (int64_t i = 0; i < n_jobs; ++i) {
      const std::string f = format_name(jobs[i].w->format);
      if (label.find(f) == std::string::npos) label += (label.empty() ? "" : "+") + f;
      bytes += double(jobs[i].w->total_bytes());
      const double job_flops = 2.0 * double(jobs[i].n_tok) * double(jobs[i].w->n_out) * double(jobs[i].w->n_in);
      group_flops += job_flops;
      if (jobs[i].w->format == WeightFormat::FP4_BLOCK32) fp4_flops += job_flops;
    }
    account("group " + label, bytes, group_flops, dt);
    weight_bytes += bytes;
    flops += group_flops;
  }
  void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink, int64_t n_head,
                 int64_t head_dim, float scale, float* out) override {
    const double t0 = now_seconds();
    inner().attention(q, keys, n_keys, sink, n_head, head_dim, scale, out);
    attention_seconds += now_seconds() - t0;
    kv_bytes += double(n_keys) * double(head_dim) * 4.0;
    flops += 4.0 * double(n_head) * double(n_keys) * double(head_dim);  // scores + weighted sum
  }
  void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys, int64_t n_keys,
                    int64_t dim, float* score) override {
    const double t0 = now_seconds();
    inner().index_scores(q, head_weight, n_head, keys, n_keys, dim, score);
    index_seconds += now_seconds() - t0;
    kv_bytes += double(n_keys) * double(dim) * 4.0;
    flops += 2.0 * double(n_head) * double(n_keys) * double(dim);
  }
  void reset() {
    weight_bytes = kv_bytes = flops = fp4_flops = head_seconds = matmul_seconds = attention_seconds = index_seconds = 0;
    by_kind.clear();
  }

  // Weight products by kind: calls, bytes, FLOP and seconds (the decode and prefill profiles).
  struct Kind {
    int64_t calls = 0;
    double bytes = 0, flops = 0, seconds = 0;
  };
  std::map<std::string, Kind> by_kind;

  double weight_bytes = 0, kv_bytes = 0, flops = 0;
  double fp4_flops = 0;  // the part of flops in FP4 weight products
  double head_seconds = 0, matmul_seconds = 0, attention_seconds = 0, index_seconds = 0;

 private:
  static std::string format_name(WeightFormat f) {
    switch (f) {
      case WeightFormat::F32: return "f32";
      case WeightFormat::BF16: return "bf16";
      case WeightFormat::FP8_BLOCK128: return "fp8";
      case WeightFormat::FP4_BLOCK32: return "fp4";
    }
    return "?";
  }
  void account(const std::string& kind, double bytes, double flops, double seconds) {
    Kind& k = by_kind[kind];
    ++k.calls;
    k.bytes += bytes;
    k.flops += flops;
    k.seconds += seconds;
  }
};

std::string default_dir(int64_t layers) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/dsv4-bench-flash-" + std::to_string(layers);
}

// Generates the K-layer checkpoint once; later runs reuse it.
void ensure_model(const std::string& dir, int64_t layers) {
  if (std::filesystem::exists(dir + "/model.safetensors.index.json")) return;
  std::fprintf(stderr, "generating %lld full-width V4-Flash layers in %s (once; ~%.1f GB) ...\n", (long long)layers,
               dir.c_str(), 3.4 * double(layers) + 2.1);
  model::TinyModelOptions topt;
  topt.seed = 1;
  topt.n_shards = std::max<int64_t>(2, 2 * layers);
  model::write_tiny_model(dir, model::flash_layers_config(layers), topt);
}

// Puts `ctx` tokens of history into the state the way decode leaves it: a full window
// ring, ctx/ratio compressed entries, ctx/4 indexer keys (random unit-scale rows; their
// values do not change the cost). ctx must be a multiple of every ratio so the partial
// blocks start empty, as after a real prefill of that length.
void fill_state(const io::Config& c, kv::SequenceState& st, int64_t ctx, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    for (auto& x : v) x = d(rng);
  };
  // Compressed entries go into chunked stores (kv::RowStore): appending during the timed
  // steps never copies the history, as in a real decode.
  auto fill_rows = [&](kv::RowStore& s, int64_t rows) {
    std::vector<float> row(static_cast<size_t>(s.width()));
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& x : row) x = d(rng);
      s.append(row.data());
    }
  };
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const int64_t ratio = c.compress_ratio(l);
    kv::LayerState& ls = st.layers[size_t(l)];
    fill(ls.ring, size_t(c.sliding_window * c.head_dim));
    if (ratio == 0) continue;
    check(ctx % ratio == 0, "--ctx must be a multiple of every compress ratio (" + std::to_string(ratio) + ")");
    fill_rows(ls.comp_kv, ctx / ratio);
    ls.compressor.n_entries = ctx / ratio;
    if (ratio != 4) continue;
    fill_rows(ls.index_keys, ctx / 4);
    ls.index_compressor.n_entries = ctx / 4;
  }
  st.n_past = ctx;
}

// Touches every page of every tensor once, so timed steps see the steady state of a server
// that has run a while (all experts mapped) rather than first-touch page faults of the
// memory-mapped checkpoint. Returns the bytes touched.
uint64_t prefault_weights(const model::Model& m) {
  uint64_t bytes = 0;
  volatile uint8_t sink = 0;
  for (const io::TensorInfo* t : m.weights().checkpoint->all()) {
    for (uint64_t off = 0; off < t->nbytes; off += 4096) sink = sink + t->data[off];
    bytes += t->nbytes;
  }
  return bytes;
}

// How much of the weights sits in 2 MiB pages: a mapping left in 4 KiB page-cache pages
// streams randomly chosen experts several times slower (see io::map_file).
void report_page_sizes(const io::Checkpoint& ck, uint64_t weight_bytes) {
  const std::optional<uint64_t> huge = ck.huge_page_bytes();
  if (!huge) return;
  std::printf("pages: %.2f of %.2f GB of the weights in 2 MiB pages\n", double(*huge) / 1e9, double(weight_bytes) / 1e9);
  if (ck.residency() != io::Residency::kCopy && io::Checkpoint::many_small_pages(*huge, weight_bytes))
    std::printf("note: the page cache holds over a quarter of this checkpoint in 4 KiB pages (it was read\n"
                "      before without huge-page advice, or the file system or kernel keeps no large folios).\n"
                "      Dropping its cached pages (for each shard: dd if=SHARD iflag=nocache count=0) lets the\n"
                "      next load read it into 2 MiB pages where the kernel can.\n");
}

// Decode rounds: kDecodeRounds rounds of opt.steps timed steps, each between two probes
// of the read bandwidth (a probe, then the round's fresh state and warm-up step, its timed
// steps, the next probe).
constexpr int kDecodeRounds = 5;
constexpr int kProbePasses = 5;

struct DecodeResult {
  double best_gbps = 0;       // the fastest round's bytes per second
  double largest_probe = 0;   // the largest probe of the run
  double first_probe = 0, last_probe = 0;
  std::vector<double> round_fractions;  // each round against the larger probe beside it
  int fastest = 0;                      // index of the fastest round
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Runs the decode rounds and prints the report of the fastest one (profile, tokens/s,
// achieved GB/s) and a line per round with its probes.
DecodeResult run_decode(model::Model& m, CountingOps& ops, ReadProbe& probe, const ModelBenchOptions& opt) {
  const io::Config& c = m.config();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(c.vocab_size - 1));
  double best = 1e30;
  double bytes_per_token = 0, kv_per_token = 0, head_s = 0, attn_s = 0, index_s = 0, matmul_s = 0;
  std::map<std::string, CountingOps::Kind> profile;
  DecodeResult res;
  double probe_before = probe.measure(kProbePasses).gbps;
  res.first_probe = res.largest_probe = probe_before;
  std::vector<std::string> round_lines;
  for (int round = 0; round < kDecodeRounds; ++round) {
    kv::SequenceState st = m.new_state();
    fill_state(c, st, opt.ctx, 11);
    int32_t t = tok(rng);
    m.forward(st, std::span(&t, 1), model::LogitRows::kLast);  // warm-up: page in the weights
    ops.reset();
    const double t0 = now_seconds();
    for (int64_t i = 0; i < opt.steps; ++i) {
      t = tok(rng);
      m.forward(st, std::span(&t, 1), model::LogitRows::kLast);
    }
    const double per_token = (now_seconds() - t0) / double(opt.steps);
    const double round_bytes = (ops.weight_bytes + ops.kv_bytes) / double(opt.steps);
    const double probe_after = probe.measure(kProbePasses).gbps;
    const double limit = std::max(probe_before, probe_after);
    const double gbps = round_bytes / per_token / 1e9;
    res.round_fractions.push_back(limit > 0 ? gbps / limit : 0.0);
    res.largest_probe = std::max(res.largest_probe, probe_after);
    char line[160];
    std::snprintf(line, sizeof line, "  round %d: %.2f ms/token, %.1f GB/s; probes %.1f before, %.1f after: %.3f",
                  round + 1, per_token * 1e3, gbps, probe_before, probe_after, res.round_fractions.back());
    round_lines.emplace_back(line);
    probe_before = probe_after;
    if (per_token < best) {
      best = per_token;
      res.fastest = round;
      bytes_per_token = round_bytes;
      kv_per_token = ops.kv_bytes / double(opt.steps);
      head_s = ops.head_seconds / double(opt.steps);
      attn_s = ops.attention_seconds / double(opt.steps);
      index_s = ops.index_seconds / double(opt.steps);
      matmul_s = ops.matmul_seconds / double(opt.steps);
      profile = ops.by_kind;
    }
  }
  res.last_probe = probe_before;
  res.best_gbps = bytes_per_token / best / 1e9;
  // Projection to the full model: 43 layers at this per-layer time plus one head.
  const double per_layer = (best - head_s) / double(c.n_layer);
  const double full_token = 43.0 * per_layer + head_s;
  std::printf("decode: %lld layers + head, ctx %lld, %lld steps x %d rounds (report: the fastest)\n",
              (long long)c.n_layer, (long long)opt.ctx, (long long)opt.steps, kDecodeRounds);
  std::printf("bytes read per token: %.1f MB (weights %.1f MB, KV %.2f MB)\n", bytes_per_token / 1e6,
              (bytes_per_token - kv_per_token) / 1e6, kv_per_token / 1e6);
  std::printf("time per token: %.2f ms (head %.2f ms, attention %.2f ms, indexer %.2f ms)\n", best * 1e3, head_s * 1e3,
              attn_s * 1e3, index_s * 1e3);
  std::printf("profile per token (weight products by kind; the rest is norms, mHC, RoPE, routing, glue):\n");
  for (const auto& [kind, k] : profile)
    std::printf("  %-14s %5.1f calls %8.1f MB %7.2f ms %6.1f GB/s\n", kind.c_str(), double(k.calls) / double(opt.steps),
                k.bytes / double(opt.steps) / 1e6, k.seconds / double(opt.steps) * 1e3, k.bytes / k.seconds / 1e9);
  std::printf("  %-14s %5s %8s %7.2f ms\n", "other", "", "", (best - matmul_s - attn_s - index_s) * 1e3);
  std::printf("tokens/s: %.2f measured; projected to 43 layers + head: %.2f\n", 1.0 / best, 1.0 / full_token);
  std::printf("rounds (read probe of %d passes before and after each; fraction against the larger):\n", kProbePasses);
  for (const std::string& l : round_lines) std::printf("%s\n", l.c_str());
  std::printf("achieved %.1f GB/s\n", res.best_gbps);
  return res;
}

struct PrefillResult {
  double seconds = 0, flops = 0, fp4_flops = 0;
};

// The best of two 512-token prefills, with its profile printed.
PrefillResult run_prefill(model::Model& m, CountingOps& ops, const ModelBenchOptions& opt) {
  const io::Config& c = m.config();
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(c.vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(opt.prompt));
  for (auto& t : prompt) t = tok(rng);
  double best = 1e30, flops = 0, fp4_flops = 0, matmul_s = 0, attn_s = 0, index_s = 0;
  std::map<std::string, CountingOps::Kind> profile;
  for (int round = 0; round < 2; ++round) {
    kv::SequenceState st = m.new_state();
    ops.reset();
    const double t0 = now_seconds();
    m.forward(st, prompt, model::LogitRows::kLast);
    const double dt = now_seconds() - t0;
    // The first round also pays for the process's first touch of its scratch buffers.
    std::printf("round %d: %.2f s%s\n", round + 1, dt, round == 0 ? " (first forward: scratch buffers cold)" : "");
    if (dt < best) {
      best = dt, flops = ops.flops, fp4_flops = ops.fp4_flops;
      matmul_s = ops.matmul_seconds, attn_s = ops.attention_seconds, index_s = ops.index_seconds;
      profile = ops.by_kind;
    }
  }
  const double achieved = flops / best / 1e9;
  std::printf("prefill: %lld tokens through %lld layers + head in %.2f s: %.1f tok/s\n", (long long)opt.prompt,
              (long long)c.n_layer, best, double(opt.prompt) / best);
  std::printf("time: weight products %.2f s, attention %.2f s, indexer %.2f s, other %.2f s\n", matmul_s, attn_s,
              index_s, best - matmul_s - attn_s - index_s);
  std::printf("profile (weight products by kind):\n");
  for (const auto& [kind, k] : profile)
    std::printf("  %-14s %5lld calls %8.1f GFLOP %7.3f s %6.1f GFLOP/s\n", kind.c_str(), (long long)k.calls,
                k.flops / 1e9, k.seconds, k.flops / k.seconds / 1e9);
  std::printf("flops: %.1f GFLOP (FP4 products %.1f), achieved %.1f GFLOP/s\n", flops / 1e9, fp4_flops / 1e9,
              achieved);
  return {best, flops, fp4_flops};
}

}  // namespace

int run_model_bench(const ModelBenchOptions& opt) {
  check(opt.mode == "decode" || opt.mode == "prefill", "bench mode must be decode or prefill");
  check(opt.layers >= 1 && opt.layers <= 43, "--layers must be between 1 and 43");
  check(opt.steps >= 1 && opt.ctx >= 0 && opt.prompt >= 1, "--steps, --ctx and --prompt must be positive");
  check(backend::force_isa(opt.isa), "--isa " + opt.isa + " is not available on this CPU/binary");
  const std::string dir = opt.model_dir.empty() ? default_dir(opt.layers) : opt.model_dir;
  ensure_model(dir, opt.layers);

  auto inner = backend::make_ops("cpu", opt.numerics, opt.threads);
  const int threads = inner->threads();
  auto counting = std::make_unique<CountingOps>(std::move(inner));
  CountingOps& ops = *counting;
  model::Model m(model::load_weights(dir, opt.residency), std::move(counting));
  std::printf("machine: %u logical CPUs, %d threads, isa %s, numerics %s, weight prefetch %s\n",
              std::thread::hardware_concurrency(), threads, backend::current_isa().c_str(),
              backend::numerics_name(opt.numerics), backend::cpu::prefetch_hint_name());
  ThreadPool pool(threads);
  const double t_fault = now_seconds();
  const uint64_t mapped = prefault_weights(m);
  const io::Checkpoint& ck = *m.weights().checkpoint;
  std::printf("weights: %.2f GB (%s), touched once in %.1f s (steady state: no first-touch faults)\n",
              double(mapped) / 1e9, io::residency_name(ck.residency()), now_seconds() - t_fault);
  report_page_sizes(ck, mapped);
  if (opt.mode == "decode") {
    // The bandwidth is probed between the decode rounds: on a shared machine a neighbour
    // can halve it for seconds, so each round is set against the larger of the probes
    // just before and after it. The fraction is the fastest round's; the median over the
    // rounds and the fastest round against the largest probe of the whole run (lower
    // when the bandwidth moved during the run) are printed above it.
    ReadProbe probe(pool);
    check(probe.ok(), "the read-bandwidth probe could not allocate its 1 GiB buffer");
    const DecodeResult r = run_decode(m, ops, probe, opt);
    std::printf("measured read bandwidth: %.1f GB/s (largest probe of the run; first %.1f, last %.1f)\n",
                r.largest_probe, r.first_probe, r.last_probe);
    std::printf("fastest round against the largest probe: %.3f; median of the rounds: %.3f\n",
                r.best_gbps / r.largest_probe, median(r.round_fractions));
    std::printf("roofline_fraction=%.3f\n", r.round_fractions[size_t(r.fastest)]);
  } else {
    // Fast numerics on the avx512 target of a CPU with AVX512_BF16 runs its products on
    // the BF16 dot product (two multiply-adds per fp32 lane per instruction): its peak is
    // the honest limit there; elsewhere the products are fp32 FMAs.
    // Int8 numerics runs the FP4 products on byte multiply-adds (VPMADDUBSW) and the
    // rest on fp32 FMAs: its limit is the time both parts would take at their peaks.
    const FlopsResult fma = measure_peak_fma(pool);
    const FlopsResult dot = measure_peak_bf16dot(pool);
    const FlopsResult int8 = opt.numerics == backend::Numerics::kInt8 ? measure_peak_int8(pool) : FlopsResult{};
    const bool on_dot = opt.numerics == backend::Numerics::kFast && dot.gflops > 0 && backend::current_isa() == "avx512";
    std::printf("peak fp32 FMA %.1f GFLOP/s\n", fma.gflops);
    if (dot.gflops > 0) std::printf("peak bf16 dot product %.1f GFLOP/s\n", dot.gflops);
    if (int8.gflops > 0) std::printf("peak int8 byte multiply-add %.1f GOP/s (a multiply-add counts 2)\n", int8.gflops);
    const PrefillResult r = run_prefill(m, ops, opt);
    double at_peak = r.flops / ((on_dot ? dot.gflops : fma.gflops) * 1e9);  // seconds at the limit
    if (int8.gflops > 0) {
      at_peak = r.fp4_flops / (int8.gflops * 1e9) + (r.flops - r.fp4_flops) / (fma.gflops * 1e9);
      std::printf("limit: FP4 products at the byte multiply-add peak, the rest at the fp32 FMA peak: %.2f s\n",
                  at_peak);
    } else {
      std::printf("limit: every product at the %s peak: %.2f s\n", on_dot ? "bf16 dot product" : "fp32 FMA", at_peak);
    }
    std::printf("flops_fraction=%.3f\n", at_peak / r.seconds);
  }
  return 0;
}

}  // namespace dsv4::bench
