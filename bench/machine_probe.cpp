#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "machine_probe.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "machine_probe.h"

#include "backend/cpu/bf16dot.h"
#include "backend/cpu/prefetch.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums n floats (n a multiple of 8 lanes) with eight independent accumulators so that
// the loads, not the add latency, bound the loop. prefetch: also prefetch every cache
// line kPrefetchBytes ahead, with the weight kernels' hint (with a busy neighbour on a
// shared host the hardware prefetchers alone fall short and the probe would
// under-report).
float ReadSum(const float* HWY_RESTRICT p, size_t n, bool prefetch) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  size_t i = 0;
  for (; i + 8 * L <= n; i += 8 * L) {
#if HWY_ARCH_X86
    if (prefetch)
      for (size_t b = 0; b < 8 * L * sizeof(float); b += 64)
        backend::cpu::prefetch_stream(reinterpret_cast<const char*>(p + i) + backend::cpu::kPrefetchBytes + b);
#endif
    a0 = hn::Add(a0, hn::LoadU(d, p + i));
    a1 = hn::Add(a1, hn::LoadU(d, p + i + L));
    a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * L));
    a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * L));
    a4 = hn::Add(a4, hn::LoadU(d, p + i + 4 * L));
    a5 = hn::Add(a5, hn::LoadU(d, p + i + 5 * L));
    a6 = hn::Add(a6, hn::LoadU(d, p + i + 6 * L));
    a7 = hn::Add(a7, hn::LoadU(d, p + i + 7 * L));
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += p[i];
  const auto s = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                         hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  return hn::GetLane(hn::SumOfLanes(d, s)) + tail;
}

// The burn loops keep ten independent chains, named one by one: enough to cover latency x
// throughput of the instruction on current cores (FMA 4 cycles x 2 pipes; VPMADDUBSW 3-5
// cycles x 2 pipes), and with the two constants 12 vector registers, so that no chain
// spills on AVX2's 16. (Sixteen FMA chains spilled two to the stack and the probe read
// 58.7 instead of 102.7 GFLOP/s on one Zen 3 core; an array of twelve VPMADDUBSW chains
// went through memory and read 308 instead of 411 GOP/s.)
#define DSV4_BURN_CHAINS(OP) \
  v0 = OP(v0); v1 = OP(v1); v2 = OP(v2); v3 = OP(v3); v4 = OP(v4); \
  v5 = OP(v5); v6 = OP(v6); v7 = OP(v7); v8 = OP(v8); v9 = OP(v9)
constexpr double kBurnChains = 10.0;

// iters rounds of the ten FMA chains. Returns flops done (a multiply-add counts 2).
double FmaBurn(int64_t iters, float* sink) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto m = hn::Set(d, 0.999999f), c = hn::Set(d, 1e-7f);
  auto v0 = hn::Set(d, 1.0f), v1 = hn::Set(d, 1.1f), v2 = hn::Set(d, 1.2f), v3 = hn::Set(d, 1.3f);
  auto v4 = hn::Set(d, 1.4f), v5 = hn::Set(d, 1.5f), v6 = hn::Set(d, 1.6f), v7 = hn::Set(d, 1.7f);
  auto v8 = hn::Set(d, 1.8f), v9 = hn::Set(d, 1.9f);
  const auto fma = [&](decltype(v0) v) HWY_ATTR { return hn::MulAdd(v, m, c); };
  for (int64_t i = 0; i < iters; ++i) {
    DSV4_BURN_CHAINS(fma);
  }
  const auto s = hn::Add(hn::Add(hn::Add(hn::Add(v0, v1), hn::Add(v2, v3)), hn::Add(hn::Add(v4, v5), hn::Add(v6, v7))),
                         hn::Add(v8, v9));
  *sink = hn::GetLane(hn::SumOfLanes(d, s));
  return double(iters) * kBurnChains * double(L) * 2.0;
}

// iters rounds of the ten VPMADDUBSW chains (32 byte multiply-adds each: the products of
// the int8-numerics FP4 kernel, which runs 256-bit code on the AVX2 and AVX-512 targets).
// Returns operations done, a multiply-add counting 2 as in FmaBurn; 0 on targets without
// that kernel.
double Int8Burn(int64_t iters, float* sink) {
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
  const __m256i b = _mm256_set1_epi8(3);
  __m256i v0 = _mm256_set1_epi8(1), v1 = _mm256_set1_epi8(2), v2 = _mm256_set1_epi8(3), v3 = _mm256_set1_epi8(4);
  __m256i v4 = _mm256_set1_epi8(5), v5 = _mm256_set1_epi8(6), v6 = _mm256_set1_epi8(7), v7 = _mm256_set1_epi8(8);
  __m256i v8 = _mm256_set1_epi8(9), v9 = _mm256_set1_epi8(10);
  const auto madd = [&](__m256i v) HWY_ATTR { return _mm256_maddubs_epi16(v, b); };
  for (int64_t i = 0; i < iters; ++i) {
    DSV4_BURN_CHAINS(madd);
  }
  const __m256i s = _mm256_xor_si256(
      _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3)),
                       _mm256_xor_si256(_mm256_xor_si256(v4, v5), _mm256_xor_si256(v6, v7))),
      _mm256_xor_si256(v8, v9));
  *sink = float(_mm256_extract_epi32(s, 0));
  return double(iters) * kBurnChains * 32.0 * 2.0;
#else
  *sink = 0.0f;
  (void)iters;
  return 0.0;
#endif
}
#undef DSV4_BURN_CHAINS

const char* ProbeTarget() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::bench {

HWY_EXPORT(ReadSum);
HWY_EXPORT(FmaBurn);
HWY_EXPORT(Int8Burn);
HWY_EXPORT(ProbeTarget);

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ReadProbe::ReadProbe(ThreadPool& pool, size_t bytes) : pool_(pool) {
  const size_t n = bytes / sizeof(float);
  void* mem = mmap(nullptr, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  if (!std::getenv("DSV4_PROBE_NO_THP")) madvise(mem, n * sizeof(float), MADV_HUGEPAGE);
  buf_ = static_cast<float*>(mem);
  n_ = n;
  const int T = pool_.n_threads();
  // Touch every page from the thread that will read it (first-touch placement).
  pool_.parallel_ranges(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const size_t lo = n * size_t(t) / size_t(T), hi = n * size_t(t + 1) / size_t(T);
      for (size_t i = lo; i < hi; ++i) buf_[i] = float(i & 1023) * 1e-3f;
    }
  });
}

ReadProbe::~ReadProbe() {
  if (buf_ != nullptr) munmap(buf_, n_ * sizeof(float));
}

BandwidthResult ReadProbe::measure(int passes) {
  BandwidthResult r;
  if (buf_ == nullptr || passes < 1) return r;
  const int T = pool_.n_threads();
  const size_t n = n_;
  std::vector<float> sink(static_cast<size_t>(T));
  std::vector<double> rates;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_seconds();
    pool_.parallel_ranges(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const size_t lo = (n * size_t(t) / size_t(T)) & ~size_t(63);
        const size_t hi = t + 1 == T ? n : (n * size_t(t + 1) / size_t(T)) & ~size_t(63);
        sink[size_t(t)] += HWY_DYNAMIC_DISPATCH(ReadSum)(buf_ + lo, hi - lo, p % 2 == 1);
      }
    });
    rates.push_back(double(n * sizeof(float)) / (now_seconds() - t0) * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  r.gbps = rates.back();
  r.median_gbps = rates[rates.size() / 2];
  r.bytes = n * sizeof(float);
  r.passes = passes;
  r.threads = T;
  return r;
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  ReadProbe probe(pool, bytes);
  return probe.measure(passes);
}

double read_gbps(ThreadPool& pool, const void* const* bufs, const size_t* bytes, size_t n_bufs,
                 int passes) {
  const int T = pool.n_threads();
  std::vector<float> sink(static_cast<size_t>(T));
  double total = 0;
  for (size_t b = 0; b < n_bufs; ++b) total += double(bytes[b]);
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_seconds();
    for (size_t b = 0; b < n_bufs; ++b) {
      const float* f = static_cast<const float*>(bufs[b]);
      const size_t n = bytes[b] / sizeof(float);
      pool.parallel_ranges(T, [&](int64_t lo_t, int64_t hi_t, int) {
        for (int64_t t = lo_t; t < hi_t; ++t) {
          const size_t lo = n * size_t(t) / size_t(T), hi = n * size_t(t + 1) / size_t(T);
          sink[size_t(t)] += HWY_DYNAMIC_DISPATCH(ReadSum)(f + lo, hi - lo, true);
        }
      });
    }
    best = std::max(best, total / (now_seconds() - t0) * 1e-9);
  }
  return best;
}

namespace {

// Best-of-passes rate, in 1e9 operations per second, of burn(&sink) (which returns the
// operations it did) run once on every thread of the pool at the same time.
template <class Burn>
double best_burn_rate(ThreadPool& pool, int passes, Burn burn) {
  const int T = pool.n_threads();
  std::vector<float> sink(static_cast<size_t>(T));
  std::vector<double> ops(static_cast<size_t>(T));
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_seconds();
    pool.parallel_ranges(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) ops[size_t(t)] = burn(&sink[size_t(t)]);
    });
    const double dt = now_seconds() - t0;
    double total = 0;
    for (double o : ops) total += o;
    best = std::max(best, total / dt * 1e-9);
  }
  return best;
}

}  // namespace

FlopsResult measure_peak_bf16dot(ThreadPool& pool, int passes) {
  FlopsResult r;
  r.threads = pool.n_threads();
  r.isa = "avx512_bf16";
  if (!backend::cpu::bf16dot::available()) return r;
  r.gflops = best_burn_rate(pool, passes, [](float* sink) { return backend::cpu::bf16dot::burn(10'000'000, sink); });
  return r;
}

FlopsResult measure_peak_fma(ThreadPool& pool, int passes) {
  FlopsResult r;
  r.threads = pool.n_threads();
  r.isa = HWY_DYNAMIC_DISPATCH(ProbeTarget)();
  r.gflops = best_burn_rate(pool, passes, [](float* sink) { return HWY_DYNAMIC_DISPATCH(FmaBurn)(20'000'000, sink); });
  return r;
}

FlopsResult measure_peak_int8(ThreadPool& pool, int passes) {
  FlopsResult r;
  r.threads = pool.n_threads();
  r.isa = HWY_DYNAMIC_DISPATCH(ProbeTarget)();
  r.gflops = best_burn_rate(pool, passes, [](float* sink) { return HWY_DYNAMIC_DISPATCH(Int8Burn)(20'000'000, sink); });
  return r;
}

}  // namespace dsv4::bench
#endif  // HWY_ONCE
