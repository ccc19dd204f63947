// Kernel benchmark of the fast CPU backend (never a timed test):
//   (a) the machine's read bandwidth with the kernels' thread count (machine_probe),
//   (b) matrix-vector GB/s on native formats, each as a fraction of (a):
//       FP4 experts [2048, 4096] (many of them, far more than the L3), FP8 [4096, 4096]
//       (several copies), BF16 LM head [129280, 4096],
//   (c) peak fp32 FMA FLOP/s and the matrix-matrix (n_tok = 512) FLOP/s fraction,
//   (d) `moe`: the FP4 experts of (b) multiplied with 12 and 24 tokens each, as a routed
//       expert sees a 512-token prefill: weights cold (each expert once, from memory)
//       against warm (one expert again and again),
// for each requested SIMD target.
//
// usage: kernels_bench [--threads N] [--isa avx512|avx512-nobf16|avx2|sse4|scalar|best|all]
//                      [--only fp4|fp8|bf16|mm|moe|bw] [--reps R] [--experts E] [--expert-rows R] [--expert-cols C] [--fp8-copies C] [--fp8-shape ROWSxCOLS] [--mm-shape ROWSxCOLSxTOKENS] [--no-thp] [--misalign BYTES] [--numerics exact|fast|int8]
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/prefetch.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "core/weight.h"
#include "machine_probe.h"

using namespace dsv4;
using dsv4::bench::now_seconds;

namespace {

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
uint64_t next_u64() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

bool g_thp = true;
int64_t g_misalign = 0;  // --misalign: bytes added to every weight and scale pointer
backend::Numerics g_numerics = backend::Numerics::kExact;  // --numerics

// Page-aligned anonymous memory; transparent huge pages requested unless --no-thp (the
// model's weights are a file mapping, which usually has 4 KiB pages).
struct Buffer {
  uint8_t* p = nullptr;
  size_t n = 0;
  Buffer() = default;
  explicit Buffer(size_t bytes) : n(bytes) {
    void* m = mmap(nullptr, std::max<size_t>(n, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      std::perror("mmap");
      std::exit(1);
    }
    if (g_thp) madvise(m, n, MADV_HUGEPAGE);
    p = static_cast<uint8_t*>(m);
  }
  Buffer(Buffer&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
  Buffer& operator=(Buffer&& o) noexcept { std::swap(p, o.p); std::swap(n, o.n); return *this; }
  ~Buffer() { if (p) munmap(p, std::max<size_t>(n, 1)); }
  uint8_t* data() { return p; }
  size_t size() const { return n; }
  bool empty() const { return n == 0; }
  uint8_t* begin() { return p; }
  uint8_t* end() { return p + n; }
};

struct Matrix {
  Buffer data, scale;
  std::vector<uint64_t> fp8_normal;  // FP8: the normal-code flags, as the model loader makes them
  WeightView view;
};

// FP8 codes as a checkpoint holds them: Gaussian values quantised with the block maximum
// (about 4.5 sigma over 16384 values) at 448, so zero and subnormal codes are as rare as
// there (the AVX2 kernel decodes blocks holding one with blends). 64K draws, picked by
// 16 random bits per weight.
const std::vector<uint8_t>& fp8_codes() {
  static const std::vector<uint8_t> codes = [] {
    std::vector<uint8_t> c(65536);
    for (size_t i = 0; i < c.size(); i += 2) {  // Box-Muller: two normal draws per step
      const double u1 = (double(next_u64() >> 11) + 1.0) * 0x1p-53, u2 = double(next_u64() >> 11) * 0x1p-53;
      const double r = std::sqrt(-2.0 * std::log(u1)) * 448.0 / 4.5;
      c[i] = f32_to_e4m3(float(r * std::cos(2.0 * M_PI * u2)));
      c[i + 1] = f32_to_e4m3(float(r * std::sin(2.0 * M_PI * u2)));
    }
    return c;
  }();
  return codes;
}

// Random weights with realistic scales (E8M0 around 2^0), no NaN codes.
Matrix make_matrix(WeightFormat f, int64_t n_out, int64_t n_in) {
  Matrix m;
  m.view.format = f;
  m.view.n_out = n_out;
  m.view.n_in = n_in;
  m.view.name = "bench";
  m.data = Buffer(size_t(m.view.row_bytes() * n_out + g_misalign));
  for (size_t i = 0; i + 8 <= m.data.size(); i += 8) {
    uint64_t v = next_u64();
    if (f == WeightFormat::BF16) {
      // Realistic magnitudes: exponent 2^-7 .. 2^0 (random bit patterns would include
      // subnormals, which cost microcode assists on some CPUs and never occur in weights).
      v = (v & 0x807F807F807F807Full) | (uint64_t(0x3C00) * 0x0001000100010001ull) |
          ((v & 0x0380038003800380ull));
    }
    if (f == WeightFormat::FP8_BLOCK128) {
      const uint64_t bits[2] = {v, next_u64()};  // 8 draws of 16 bits
      for (int k = 0; k < 8; ++k) m.data.data()[i + size_t(k)] = fp8_codes()[(bits[k / 4] >> (16 * (k % 4))) & 0xFFFF];
      continue;
    }
    std::memcpy(m.data.data() + i, &v, 8);
  }
  if (f == WeightFormat::FP8_BLOCK128) m.scale = Buffer(size_t(((n_out + 127) / 128) * ((n_in + 127) / 128) + g_misalign));
  if (f == WeightFormat::FP4_BLOCK32) m.scale = Buffer(size_t(n_out * (n_in / 32) + g_misalign));
  for (auto& s : m.scale) s = uint8_t(120 + next_u64() % 10);
  m.view.data = m.data.data() + g_misalign;
  m.view.scale = m.scale.empty() ? nullptr : m.scale.data() + g_misalign;
  if (f == WeightFormat::FP8_BLOCK128) {
    m.fp8_normal = fp8_normal_blocks(m.view);
    m.view.fp8_normal = m.fp8_normal.data();
  }
  return m;
}

// Best-of-reps GB/s of y = W x over all matrices in turn (each cold when there are enough
// of them to exceed the caches): one matmul each, or with group > 0 in matmul_many groups
// of that many (as the MoE decode runs its experts' gate and up products: one parallel
// region per group).
double matvec_gbps(const std::vector<Matrix>& ms, ThreadPool& pool, int reps, size_t group = 0) {
  const int64_t n_in = ms[0].view.n_in, n_out = ms[0].view.n_out;
  std::vector<float> x(static_cast<size_t>(n_in)), y(static_cast<size_t>(n_out) * std::max<size_t>(1, group));
  for (auto& v : x) v = float(int(next_u64() % 2001) - 1000) * 1e-3f;
  double bytes = 0;
  for (const auto& m : ms) bytes += double(m.view.total_bytes());
  std::vector<backend::Ops::MatmulJob> jobs;
  auto run = [&] {
    if (group == 0) {
      for (const auto& m : ms) backend::cpu::matmul(m.view, x.data(), 1, y.data(), &pool, g_numerics);
      return;
    }
    for (size_t i = 0; i < ms.size(); i += group) {
      jobs.clear();
      for (size_t k = i; k < std::min(ms.size(), i + group); ++k)
        jobs.push_back({&ms[k].view, x.data(), 1, y.data() + (k - i) * size_t(n_out)});
      backend::cpu::matmul_many(jobs.data(), int64_t(jobs.size()), &pool, g_numerics);
    }
  };
  run();  // warm up
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    run();
    best = std::max(best, bytes / (now_seconds() - t0) * 1e-9);
  }
  return best;
}

double matmul_gflops(const Matrix& m, int64_t n_tok, ThreadPool& pool, int reps) {
  std::vector<float> x(size_t(n_tok * m.view.n_in)), y(size_t(n_tok * m.view.n_out));
  for (auto& v : x) v = float(int(next_u64() % 2001) - 1000) * 1e-3f;
  const double flops = 2.0 * double(m.view.n_out) * double(m.view.n_in) * double(n_tok);
  backend::cpu::matmul(m.view, x.data(), n_tok, y.data(), &pool, g_numerics);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    backend::cpu::matmul(m.view, x.data(), n_tok, y.data(), &pool, g_numerics);
    best = std::max(best, flops / (now_seconds() - t0) * 1e-9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 5, n_experts = 64, n_fp8 = 16, expert_rows = 2048, expert_cols = 4096;
  int64_t fp8_rows = 4096, fp8_cols = 4096;  // wq_b is [32768, 1024], wo_b [4096, 8192]
  // --mm-shape: the products of --only mm (default: each format's V4-Flash-like shape, 512 tokens).
  int64_t mm_rows = 0, mm_cols = 0, mm_tokens = 512;
  std::string isa_arg = "all", only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") threads = std::atoi(val().c_str());
    else if (a == "--isa") isa_arg = val();
    else if (a == "--only") only = val();
    else if (a == "--numerics") {
      const auto nm = backend::parse_numerics(val());
      if (!nm) {
        std::fprintf(stderr, "--numerics must be %s\n", backend::numerics_choices());
        return 2;
      }
      g_numerics = *nm;
    }
    else if (a == "--reps") reps = std::atoi(val().c_str());
    else if (a == "--expert-rows") expert_rows = std::max(1, std::atoi(val().c_str()));
    else if (a == "--expert-cols") expert_cols = std::max(32, std::atoi(val().c_str()) / 32 * 32);
    else if (a == "--fp8-copies") n_fp8 = std::max(1, std::atoi(val().c_str()));
    else if (a == "--fp8-shape") {
      const std::string v = val();
      const size_t x = v.find('x');
      fp8_rows = x == std::string::npos ? 0 : std::atoll(v.substr(0, x).c_str());
      fp8_cols = x == std::string::npos ? 0 : std::atoll(v.substr(x + 1).c_str());
      if (fp8_rows < 1 || fp8_cols < 64 || fp8_cols % 64 != 0) {
        std::fprintf(stderr, "kernels_bench: --fp8-shape wants ROWSxCOLS with COLS a multiple of 64, got '%s'\n", v.c_str());
        return 2;
      }
    }
    else if (a == "--mm-shape") {
      const std::string v = val();
      long long r = 0, c = 0, t = 0;
      if (std::sscanf(v.c_str(), "%lldx%lldx%lld", &r, &c, &t) != 3 || r < 1 || t < 1 || c < 128 || c % 128 != 0) {
        std::fprintf(stderr, "kernels_bench: --mm-shape wants ROWSxCOLSxTOKENS with COLS a multiple of 128, got '%s'\n",
                     v.c_str());
        return 2;
      }
      mm_rows = r, mm_cols = c, mm_tokens = t;
    }
    else if (a == "--no-thp") g_thp = false;
    else if (a == "--misalign") g_misalign = std::clamp<int64_t>(std::atoll(val().c_str()), 0, 63);
    else if (a == "--experts") n_experts = std::max(1, std::atoi(val().c_str()));
    else {
      std::fprintf(stderr, "usage: kernels_bench [--threads N] [--isa avx512|avx512-nobf16|avx2|sse4|scalar|best|all] [--only fp4|fp8|bf16|mm|moe|bw] [--reps R] [--experts E] [--expert-rows R] [--expert-cols C] [--fp8-copies C] [--fp8-shape ROWSxCOLS] [--mm-shape ROWSxCOLSxTOKENS] [--no-thp] [--misalign BYTES] [--numerics exact|fast|int8]\n");
      return 2;
    }
  }
  ThreadPool pool(threads);
  const int T = pool.n_threads();
  std::vector<std::string> isas;
  if (isa_arg == "all") {
    for (const auto& i : backend::available_isas())
      if (i == "avx512" || i == "avx2") isas.push_back(i);
    if (isas.empty()) isas.push_back("best");
  } else {
    isas.push_back(isa_arg);
  }
  auto want = [&](const char* what) { return only.empty() || only == what; };

  std::printf("threads %d (physical cores %d), weight prefetch %s\n", T, default_threads(),
              backend::cpu::prefetch_hint_name());
  double bw = 0;
  {
    backend::force_isa("best");
    const bench::BandwidthResult r = bench::measure_read_bandwidth(pool, size_t(1) << 30, 9);
    bw = r.gbps;
    std::printf("read bandwidth: %.1f GB/s best, %.1f median (%d threads, %.2f GiB buffer, %d passes, %s)\n",
                r.gbps, r.median_gbps, r.threads, double(r.bytes) / (1 << 30), r.passes,
                backend::current_isa().c_str());
  }

  // Weights for (b), made once. Experts: 64 x [2048, 4096] FP4 = 285 MB; FP8: 16 copies
  // of [4096, 4096] = 269 MB; BF16 head 1.06 GB.
  std::vector<Matrix> experts, fp8s, head;
  if (want("fp4") || want("moe"))
    for (int e = 0; e < n_experts; ++e) experts.push_back(make_matrix(WeightFormat::FP4_BLOCK32, expert_rows, expert_cols));
  if (want("fp8"))
    for (int e = 0; e < n_fp8; ++e) fp8s.push_back(make_matrix(WeightFormat::FP8_BLOCK128, fp8_rows, fp8_cols));
  if (want("bf16")) head.push_back(make_matrix(WeightFormat::BF16, 129280, 4096));

  for (const std::string& isa : isas) {
    if (!backend::force_isa(isa)) {
      std::printf("isa %s: not available on this CPU/binary\n", isa.c_str());
      continue;
    }
    const std::string cur = backend::current_isa();
    auto report = [&](const char* what, const std::vector<Matrix>& ms) {
      const double g = matvec_gbps(ms, pool, reps);
      // A plain read of the same bytes right after: the ratio is robust to the machine's
      // other load, which varies from second to second on shared machines.
      std::vector<const void*> bufs;
      std::vector<size_t> sizes;
      for (const auto& m : ms) {
        bufs.push_back(m.view.data);
        sizes.push_back(size_t(m.view.row_bytes() * m.view.n_out));
      }
      const double rd = bench::read_gbps(pool, bufs.data(), sizes.data(), bufs.size(), reps);
      std::printf("isa %-6s threads %d  matvec %-34s %7.1f GB/s  = %.2f of read bandwidth"
                  " (plain read of the same weights %.1f GB/s: %.2f)\n",
                  cur.c_str(), T, what, g, g / bw, rd, g / rd);
      std::fflush(stdout);
    };
    if (want("fp4")) {
      report(("fp4 experts [" + std::to_string(expert_rows) + "," + std::to_string(expert_cols) + "] x" + std::to_string(n_experts)).c_str(), experts);
      // As the MoE decode streams them: six routed experts' gate and up products per group.
      const double g = matvec_gbps(experts, pool, reps, 12);
      std::printf("isa %-6s threads %d  matvec %-34s %7.1f GB/s  = %.2f of read bandwidth\n", cur.c_str(), T,
                  "fp4 experts, groups of 12", g, g / bw);
      std::fflush(stdout);
    }
    if (want("fp8")) report(("fp8 [" + std::to_string(fp8_rows) + "," + std::to_string(fp8_cols) + "] x" + std::to_string(n_fp8)).c_str(), fp8s);
    if (want("bf16")) report("bf16 head [129280,4096]", head);
    if (want("moe")) {
      for (const int64_t n_tok : {12, 24}) {
        std::vector<float> x(size_t(n_tok * expert_cols)), y(size_t(n_tok * expert_rows));
        for (auto& v : x) v = float(int(next_u64() % 2001) - 1000) * 1e-3f;
        const double flops = 2.0 * double(expert_rows) * double(expert_cols) * double(n_tok) * double(experts.size());
        double cold = 0, warm = 0;
        for (int r = 0; r < reps; ++r) {
          double t0 = now_seconds();
          for (const Matrix& m : experts) backend::cpu::matmul(m.view, x.data(), n_tok, y.data(), &pool, g_numerics);
          cold = std::max(cold, flops / (now_seconds() - t0) * 1e-9);
          t0 = now_seconds();
          for (size_t e = 0; e < experts.size(); ++e)
            backend::cpu::matmul(experts[0].view, x.data(), n_tok, y.data(), &pool, g_numerics);
          warm = std::max(warm, flops / (now_seconds() - t0) * 1e-9);
        }
        std::printf("isa %-6s threads %d  matmul n_tok=%lld fp4 experts [%d,%d] x%zu: cold %.1f GFLOP/s, "
                    "warm (one expert) %.1f GFLOP/s\n",
                    cur.c_str(), T, (long long)n_tok, expert_rows, expert_cols, experts.size(), cold, warm);
        std::fflush(stdout);
      }
    }
    if (want("mm")) {
      const bench::FlopsResult peak = bench::measure_peak_fma(pool);
      std::printf("isa %-6s threads %d  peak fp32 FMA %.1f GFLOP/s (probe target %s)\n", cur.c_str(),
                  T, peak.gflops, peak.isa.c_str());
      // Int8 numerics runs FP4 products on byte multiply-adds: their own peak.
      const bench::FlopsResult int8 =
          g_numerics == backend::Numerics::kInt8 ? bench::measure_peak_int8(pool) : bench::FlopsResult{};
      if (int8.gflops > 0)
        std::printf("isa %-6s threads %d  peak int8 byte multiply-add %.1f GOP/s\n", cur.c_str(), T, int8.gflops);
      // Each format's default shape unless --mm-shape gave one for all.
      const auto mm_matrix = [&](WeightFormat f, int64_t rows, int64_t cols) {
        return mm_rows > 0 ? make_matrix(f, mm_rows, mm_cols) : make_matrix(f, rows, cols);
      };
      const Matrix m4 = mm_matrix(WeightFormat::FP4_BLOCK32, 2048, 4096);
      const Matrix m8 = mm_matrix(WeightFormat::FP8_BLOCK128, fp8_rows, fp8_cols);  // --fp8-shape
      const Matrix mb = mm_matrix(WeightFormat::BF16, 4096, 4096);
      for (const auto* m : {&m4, &m8, &mb}) {
        const double g = matmul_gflops(*m, mm_tokens, pool, std::max(2, reps / 2));
        const bool on_int8 = int8.gflops > 0 && m->view.format == WeightFormat::FP4_BLOCK32;
        std::printf("isa %-6s threads %d  matmul n_tok=%lld %-17s [%lld,%lld] %7.1f GFLOP/s = %.2f of peak %s\n",
                    cur.c_str(), T, (long long)mm_tokens, weight_format_name(m->view.format), (long long)m->view.n_out,
                    (long long)m->view.n_in, g, g / (on_int8 ? int8.gflops : peak.gflops),
                    on_int8 ? "byte multiply-add" : "FMA");
        std::fflush(stdout);
      }
    }
  }
  backend::force_isa("best");
  return 0;
}
