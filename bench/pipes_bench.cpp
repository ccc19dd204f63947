// Vector pipe benchmark (x86, never a timed test): the throughput and latency of the
// instructions the CPU kernels are built from, and which of them compete for the same
// execution pipes. It answers design questions before a kernel is written: on Zen 5,
// for example, VPERMW, VPERMPS, VPSHUFB, the shifts and VDPBF16PS each retire two per
// cycle, and a VDPBF16PS + VPERMW mix retires only 2.5: a decode step's dot products
// and permutes, more than its count of ops, set its speed (docs/performance-history.md,
// twenty-first round).
//
// Each measurement runs 24 independent chains of one instruction (throughput), or 12 of
// each of two instructions (sharing: two instructions on disjoint pipes retire at the sum
// of their rates), or two chains (latency). The clock comes from a chain of dependent
// integer adds (one per cycle on every x86 core), so rates are also given per cycle.
// Step mixes run a kernel step's instructions with no dependences between them (each
// writes its own register from two fixed ones): the cycles a step needs from the pipes
// alone, a bound for the kernel and a way to cost a change before writing it.
//
// usage: pipes_bench [--iters N]   (N: loop trips per measurement, default 4000000)

// GCC 12's AVX-512 headers build some intrinsics from an "undefined" vector that its own
// -Wmaybe-uninitialized then reports when they are inlined into target-attributed functions.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// Every core with AVX-512 BF16 and VBMI (Sapphire Rapids, Zen 4 and later) also has VBMI2
// and GFNI.
#define PIPES_ZMM \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,avx512vbmi2,gfni,fma")))
#define PIPES_YMM __attribute__((target("avx2,fma")))
// The same 256-bit instructions with AVX-512VL's 32 registers (EVEX encodings of the same
// operations), so that 24 chains fit.
#define PIPES_YMM32 __attribute__((target("avx2,fma,avx512f,avx512vl")))

namespace {

using Clock = std::chrono::steady_clock;
long g_iters = 4000000;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Core clock in GHz: 64 dependent adds per trip, one cycle each.
double clock_ghz() {
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    uint64_t x = 1;
    const auto t0 = Clock::now();
    for (long i = 0; i < g_iters / 4; ++i) {
#define ADD8 "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t"
      asm volatile(ADD8 ADD8 ADD8 ADD8 ADD8 ADD8 ADD8 ADD8 : "+r"(x));
#undef ADD8
    }
    best = std::min(best, seconds_since(t0));
  }
  return double(g_iters / 4) * 64 / best / 1e9;
}

// ------------------------------------------------------------------- 512-bit operations
// One instruction applied to a chain value; the other operands are fixed registers.
struct Zc {
  __m512i tab;  // a lookup table / second operand
  __m512 f;     // a float operand
};
// The operands, hidden from the compiler: with known shift counts it would turn variable
// shifts and rotates into their immediate forms, or drop them.
PIPES_ZMM inline Zc zc() {
  Zc c{_mm512_set1_epi16(0x3F80), _mm512_set1_ps(1.0f)};
  asm volatile("" : "+v"(c.tab), "+v"(c.f));
  return c;
}
#define ZOP(NAME, EXPR)                                                                \
  struct NAME {                                                                        \
    static constexpr const char* name = #NAME;                                         \
    PIPES_ZMM static inline __m512i apply(__m512i x, const Zc& c) { return EXPR; }     \
  };
ZOP(vdpbf16ps, _mm512_castps_si512(_mm512_dpbf16_ps(_mm512_castsi512_ps(x), (__m512bh)c.tab, (__m512bh)c.tab)))
ZOP(vfmadd231ps, _mm512_castps_si512(_mm512_fmadd_ps(_mm512_castsi512_ps(x), c.f, c.f)))
ZOP(vpermw, _mm512_permutexvar_epi16(x, c.tab))
ZOP(vpermps, _mm512_castps_si512(_mm512_permutexvar_ps(x, c.f)))
ZOP(vpermi2b, _mm512_permutex2var_epi8(c.tab, x, c.tab))
ZOP(vpshufb, _mm512_shuffle_epi8(c.tab, x))
ZOP(vpsrlw, _mm512_srli_epi16(x, 4))
ZOP(vpunpcklbw, _mm512_unpacklo_epi8(x, c.tab))
ZOP(vpandd, _mm512_and_si512(x, c.tab))
ZOP(vpternlogd, _mm512_ternarylogic_epi32(x, c.tab, c.tab, 0xF8))
ZOP(vshufps, _mm512_castps_si512(_mm512_shuffle_ps(_mm512_castsi512_ps(x), c.f, 0x4E)))
ZOP(vpermilps, _mm512_castps_si512(_mm512_permute_ps(_mm512_castsi512_ps(x), 0x4E)))
ZOP(vpsubusw, _mm512_subs_epu16(x, c.tab))
ZOP(vpsllvd, _mm512_sllv_epi32(x, c.tab))
ZOP(vprolvd, _mm512_rolv_epi32(x, c.tab))
ZOP(vpmultishiftqb, _mm512_multishift_epi64_epi8(c.tab, x))
ZOP(vaddps, _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(x), c.f)))
ZOP(vpshrdw, _mm512_shrdi_epi16(x, c.tab, 4))
ZOP(vgf2p8affineqb, _mm512_gf2p8affine_epi64_epi8(x, c.tab, 0))
#undef ZOP

#define PIPES_DECL(V, T, INIT)                                                                                  \
  T V##0 = INIT(1), V##1 = INIT(2), V##2 = INIT(3), V##3 = INIT(4), V##4 = INIT(5), V##5 = INIT(6),            \
    V##6 = INIT(7), V##7 = INIT(8), V##8 = INIT(9), V##9 = INIT(10), V##10 = INIT(11), V##11 = INIT(12)
#define PIPES_STEP(V, OP, C)                                                                                    \
  V##0 = OP::apply(V##0, C); V##1 = OP::apply(V##1, C); V##2 = OP::apply(V##2, C); V##3 = OP::apply(V##3, C); \
  V##4 = OP::apply(V##4, C); V##5 = OP::apply(V##5, C); V##6 = OP::apply(V##6, C); V##7 = OP::apply(V##7, C); \
  V##8 = OP::apply(V##8, C); V##9 = OP::apply(V##9, C); V##10 = OP::apply(V##10, C); V##11 = OP::apply(V##11, C)
// Keeps every chain live and in its register (the compiler may not merge or drop them).
#define PIPES_KEEP(V)                                                                                           \
  asm volatile("" : "+v"(V##0), "+v"(V##1), "+v"(V##2), "+v"(V##3), "+v"(V##4), "+v"(V##5));                  \
  asm volatile("" : "+v"(V##6), "+v"(V##7), "+v"(V##8), "+v"(V##9), "+v"(V##10), "+v"(V##11))

PIPES_ZMM inline __m512i zinit(int k) { return _mm512_set1_epi32(k); }

// The timed loop of a rate: 12 chains of A and 12 of B (A == B: 24 chains of one) of
// vector type T, started by INIT, with operands C; leaves instructions per second in R.
#define PIPES_RATE(R, T, INIT, C)                  \
  do {                                             \
    double best = 1e9;                             \
    for (int rep = 0; rep < 5; ++rep) {            \
      PIPES_DECL(a, T, INIT);                      \
      PIPES_DECL(b, T, INIT);                      \
      const auto t0 = Clock::now();                \
      for (long i = 0; i < g_iters; ++i) {         \
        PIPES_STEP(a, A, C);                       \
        PIPES_STEP(b, B, C);                       \
        PIPES_KEEP(a);                             \
        PIPES_KEEP(b);                             \
      }                                            \
      best = std::min(best, seconds_since(t0));    \
    }                                              \
    R = double(g_iters) * 24 / best;               \
  } while (0)

// Instructions per second of A and B mixed.
template <class A, class B>
PIPES_ZMM __attribute__((noinline)) double zmm_rate() {
  const Zc c = zc();
  double rate = 0;
  PIPES_RATE(rate, __m512i, zinit, c);
  return rate;
}

// Cycles from one instruction's input to its output: two dependent chains.
template <class A>
PIPES_ZMM __attribute__((noinline)) double zmm_latency(double ghz) {
  const Zc c = zc();
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    __m512i a = zinit(1), b = zinit(2);
    const auto t0 = Clock::now();
    for (long i = 0; i < g_iters; ++i) {
      a = A::apply(a, c);
      b = A::apply(b, c);
      a = A::apply(a, c);
      b = A::apply(b, c);
      asm volatile("" : "+v"(a), "+v"(b));
    }
    best = std::min(best, seconds_since(t0));
  }
  return best * ghz * 1e9 / (double(g_iters) * 2);
}

template <class A>
void zmm_row(double ghz) {
  const double r = zmm_rate<A, A>();
  std::printf("  %-12s %5.2f per cycle  latency %4.1f cycles\n", A::name, r / (ghz * 1e9), zmm_latency<A>(ghz));
}

// One line of a pair table from the rates (instructions per second) of A alone, B alone
// and the mix. Disjoint pipes: the mix retires at the sum of the two rates; one shared
// set: at either rate.
void print_pair(const char* a_name, const char* b_name, double a, double b, double ab, double ghz) {
  const double hz = ghz * 1e9;
  std::printf("  %-16s + %-16s %5.2f per cycle (alone %4.2f and %4.2f; disjoint pipes would give %4.2f)\n", a_name,
              b_name, ab / hz, a / hz, b / hz, (a + b) / hz);
}

template <class A, class B>
void zmm_pair(double ghz) {
  print_pair(A::name, B::name, zmm_rate<A, A>(), zmm_rate<B, B>(), zmm_rate<A, B>(), ghz);
}

// ------------------------------------------------------------------- step mixes
// One instruction of a step, writing zmm register D from the fixed operands %0 and %1.
// Dot products and FMAs zero D first (a zeroing idiom takes no pipe), so that no
// instruction waits for another and a step's time is what its pipes need.
#define MIX_REG(D) "%%zmm" #D
#define MIX_SRL(D) "vpsrlw $4, %0, " MIX_REG(D) "\n\t"
#define MIX_PERMW(D) "vpermw %0, %1, " MIX_REG(D) "\n\t"
#define MIX_PERMPS(D) "vpermps %0, %1, " MIX_REG(D) "\n\t"
#define MIX_ZERO(D) "vpxord " MIX_REG(D) ", " MIX_REG(D) ", " MIX_REG(D) "\n\t"
#define MIX_DP(D) MIX_ZERO(D) "vdpbf16ps %0, %1, " MIX_REG(D) "\n\t"
#define MIX_FMA(D) MIX_ZERO(D) "vfmadd231ps %0, %1, " MIX_REG(D) "\n\t"
#define MIX_ADDPS(D) "vaddps %0, %1, " MIX_REG(D) "\n\t"
#define MIX_SUBUSW(D) "vpsubusw %0, %1, " MIX_REG(D) "\n\t"
#define MIX_TESTW(K) "vptestmw %0, %1, %%k" #K "\n\t"
#define MIX_MASKED_ADDW(D, K) "vpaddw %0, %1, " MIX_REG(D) "%{%%k" #K "%}\n\t"
#define MIX_DP4 MIX_DP(8) MIX_DP(9) MIX_DP(10) MIX_DP(11)

// The fast FP4 kernel's decode of one row's 64-byte chunk (fp4_rows in
// backend/cpu/bf16dot.cpp): three shifts and four VPERMW give the bf16 weights, a VPERMPS
// the chunk's block scales.
#define STEP_FP4_DECODE \
  MIX_SRL(0) MIX_SRL(1) MIX_SRL(2) MIX_PERMW(3) MIX_PERMW(4) MIX_PERMW(5) MIX_PERMW(6) MIX_PERMPS(7)
// Decode: one token, four dot products and the FMA that applies the scales.
#define STEP_FP4_ONE_TOKEN STEP_FP4_DECODE MIX_DP4 MIX_FMA(12)
// A prefill tile's step, four tokens sharing the decode.
#define STEP_FP4_FOUR_TOKENS \
  STEP_FP4_DECODE MIX_DP4 MIX_DP4 MIX_DP4 MIX_DP4 MIX_FMA(12) MIX_FMA(13) MIX_FMA(14) MIX_FMA(15)
// The same with the scales taken into the decoded weights (an exponent add on the
// nonzero words, as the FP8 prefill panels do), so that each token's scaled sum joins its
// total with an add: a word test and a masked add per weight vector (each add waits on
// its test only).
#define STEP_FP4_FOUR_TOKENS_PRESCALED                                                            \
  STEP_FP4_DECODE MIX_TESTW(1) MIX_TESTW(2) MIX_TESTW(3) MIX_TESTW(4) MIX_MASKED_ADDW(3, 1)       \
  MIX_MASKED_ADDW(4, 2) MIX_MASKED_ADDW(5, 3) MIX_MASKED_ADDW(6, 4) MIX_DP4 MIX_DP4 MIX_DP4 MIX_DP4 \
  MIX_ADDPS(12) MIX_ADDPS(13) MIX_ADDPS(14) MIX_ADDPS(15)
// The same with the scales as saturating subtracts of exponents (zero words stay zero, so
// no test; every scale of a row then has to be applied relative to the row's largest).
#define STEP_FP4_FOUR_TOKENS_SUBTRACTED                                                                \
  STEP_FP4_DECODE MIX_SUBUSW(3) MIX_SUBUSW(4) MIX_SUBUSW(5) MIX_SUBUSW(6) MIX_DP4 MIX_DP4 MIX_DP4 MIX_DP4 \
  MIX_ADDPS(12) MIX_ADDPS(13) MIX_ADDPS(14) MIX_ADDPS(15)

#define MIX_CLOBBERS                                                                                          \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
    "xmm13", "xmm14", "xmm15", "k1", "k2", "k3", "k4"

// Cycles per step of STEP, four steps per loop trip; FN##_text keeps the step's text for
// the counts in print_mix.
#define PIPES_MIX_FN(FN, STEP)                                                         \
  constexpr const char FN##_text[] = STEP;                                             \
  PIPES_ZMM __attribute__((noinline)) double FN(double ghz) {                          \
    const Zc c = zc();                                                                 \
    const long trips = std::max(1L, g_iters / 16);                                     \
    double best = 1e9;                                                                 \
    for (int rep = 0; rep < 11; ++rep) { /* more than the rates: a VM's neighbours */  \
      const auto t0 = Clock::now();                                                    \
      for (long i = 0; i < trips; ++i)                                                 \
        asm volatile(STEP STEP STEP STEP : : "v"(c.tab), "v"(c.f) : MIX_CLOBBERS);     \
      best = std::min(best, seconds_since(t0));                                        \
    }                                                                                  \
    return best * ghz * 1e9 / double(trips * 4);                                       \
  }
PIPES_MIX_FN(mix_fp4_one_token, STEP_FP4_ONE_TOKEN)
PIPES_MIX_FN(mix_fp4_four_tokens, STEP_FP4_FOUR_TOKENS)
PIPES_MIX_FN(mix_fp4_four_tokens_prescaled, STEP_FP4_FOUR_TOKENS_PRESCALED)
PIPES_MIX_FN(mix_fp4_four_tokens_subtracted, STEP_FP4_FOUR_TOKENS_SUBTRACTED)

// Occurrences of `word` in an instruction text.
int count_in(const char* text, const char* word) {
  int n = 0;
  for (const char* p = std::strstr(text, word); p != nullptr; p = std::strstr(p + 1, word)) ++n;
  return n;
}

// One line of the mix table: cycles per step, and the dot products' share of their two
// pipes (at two per cycle). The counts come from the step's text: one instruction per
// line, the zeroing idioms (no pipe) left out.
void print_mix(const char* name, const char* step_text, double cycles) {
  const int n_ops = count_in(step_text, "\n") - count_in(step_text, "vpxord");
  const int n_dot = count_in(step_text, "vdpbf16ps");
  std::printf("  %-58s %5.2f cycles (%2d ops, %4.2f per cycle; dot products at %3.0f%% of their peak)\n", name,
              cycles, n_ops, n_ops / cycles, 100.0 * n_dot / (2.0 * cycles));
}

// ------------------------------------------------------------------- 256-bit operations
struct Yc {
  __m256i tab;
  __m256 f;
};
#define YOP(NAME, EXPR)                                                                \
  struct NAME {                                                                        \
    static constexpr const char* name = #NAME;                                         \
    PIPES_YMM static inline __m256i apply(__m256i x, const Yc& c) { return EXPR; }     \
  };
YOP(ymm_vfmadd231ps, _mm256_castps_si256(_mm256_fmadd_ps(_mm256_castsi256_ps(x), c.f, c.f)))
YOP(ymm_vpshufb, _mm256_shuffle_epi8(c.tab, x))
YOP(ymm_vpslld, _mm256_slli_epi32(x, 16))
YOP(ymm_vpmulhuw, _mm256_mulhi_epu16(x, c.tab))
YOP(ymm_vpunpcklbw, _mm256_unpacklo_epi8(x, c.tab))
YOP(ymm_vpand, _mm256_and_si256(x, c.tab))
#undef YOP

PIPES_YMM32 inline __m256i yinit32(int k) { return _mm256_set1_epi32(k); }
PIPES_YMM inline __m256i yinit(int k) { return _mm256_set1_epi32(k); }

// 12 chains of A and 12 of B, in 32 registers.
template <class A, class B>
PIPES_YMM32 __attribute__((noinline)) double ymm_rate32() {
  const Yc c{_mm256_set1_epi16(0x0301), _mm256_set1_ps(1.0f)};
  double rate = 0;
  PIPES_RATE(rate, __m256i, yinit32, c);
  return rate;
}

// 6 chains of A and 6 of B, in AVX2's 16 registers: too few to hide a 4-cycle latency at
// two per cycle, so rates of the slow instructions read low.
template <class A, class B>
PIPES_YMM __attribute__((noinline)) double ymm_rate16() {
  const Yc c{_mm256_set1_epi16(0x0301), _mm256_set1_ps(1.0f)};
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    __m256i a0 = yinit(1), a1 = yinit(2), a2 = yinit(3), a3 = yinit(4), a4 = yinit(5), a5 = yinit(6);
    __m256i b0 = yinit(7), b1 = yinit(8), b2 = yinit(9), b3 = yinit(10), b4 = yinit(11), b5 = yinit(12);
    const auto t0 = Clock::now();
    for (long i = 0; i < g_iters; ++i) {
      a0 = A::apply(a0, c); a1 = A::apply(a1, c); a2 = A::apply(a2, c);
      a3 = A::apply(a3, c); a4 = A::apply(a4, c); a5 = A::apply(a5, c);
      b0 = B::apply(b0, c); b1 = B::apply(b1, c); b2 = B::apply(b2, c);
      b3 = B::apply(b3, c); b4 = B::apply(b4, c); b5 = B::apply(b5, c);
      asm volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
      asm volatile("" : "+v"(b0), "+v"(b1), "+v"(b2), "+v"(b3), "+v"(b4), "+v"(b5));
    }
    best = std::min(best, seconds_since(t0));
  }
  return double(g_iters) * 12 / best;
}

template <class A, class B>
void ymm_pair(double ghz, bool regs32) {
  const auto rate = [&](auto a, auto b) {
    using X = decltype(a);
    using Y = decltype(b);
    return regs32 ? ymm_rate32<X, Y>() : ymm_rate16<X, Y>();
  };
  print_pair(A::name, B::name, rate(A{}, A{}), rate(B{}, B{}), rate(A{}, B{}), ghz);
}

bool has_zmm_set() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bf16") &&
         __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("gfni");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      g_iters = std::atol(argv[++i]);
      if (g_iters < 1000) {
        std::fprintf(stderr, "pipes_bench: --iters must be at least 1000\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: pipes_bench [--iters N]\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "pipes_bench: this CPU has no AVX2 + FMA; nothing to measure\n");
    return 1;
  }
  const double ghz = clock_ghz();
  std::printf("core clock %.2f GHz (dependent integer adds); run it pinned, e.g. taskset -c 0\n", ghz);
  if (has_zmm_set()) {
    std::printf("512-bit instructions alone (24 chains) and their latency:\n");
    zmm_row<vdpbf16ps>(ghz);
    zmm_row<vfmadd231ps>(ghz);
    zmm_row<vpermw>(ghz);
    zmm_row<vpermps>(ghz);
    zmm_row<vpermi2b>(ghz);
    zmm_row<vpshufb>(ghz);
    zmm_row<vpsrlw>(ghz);
    zmm_row<vpunpcklbw>(ghz);
    zmm_row<vpandd>(ghz);
    zmm_row<vpternlogd>(ghz);
    zmm_row<vshufps>(ghz);
    zmm_row<vpermilps>(ghz);
    zmm_row<vpsubusw>(ghz);
    zmm_row<vpsllvd>(ghz);
    zmm_row<vprolvd>(ghz);
    zmm_row<vpmultishiftqb>(ghz);
    zmm_row<vpshrdw>(ghz);
    zmm_row<vgf2p8affineqb>(ghz);
    zmm_row<vaddps>(ghz);
    std::printf("512-bit pairs (12 chains each): which share pipes\n");
    zmm_pair<vdpbf16ps, vfmadd231ps>(ghz);
    zmm_pair<vdpbf16ps, vpermw>(ghz);
    zmm_pair<vdpbf16ps, vpsrlw>(ghz);
    zmm_pair<vdpbf16ps, vpandd>(ghz);
    zmm_pair<vpermw, vpermps>(ghz);
    zmm_pair<vpermw, vpsrlw>(ghz);
    zmm_pair<vpermw, vpunpcklbw>(ghz);
    zmm_pair<vpermw, vpermilps>(ghz);
    zmm_pair<vpsrlw, vaddps>(ghz);
    zmm_pair<vpsrlw, vpsllvd>(ghz);
    zmm_pair<vpsubusw, vdpbf16ps>(ghz);
    zmm_pair<vpsubusw, vpermw>(ghz);
    zmm_pair<vpsubusw, vpsrlw>(ghz);
    zmm_pair<vpmultishiftqb, vdpbf16ps>(ghz);
    zmm_pair<vpshrdw, vdpbf16ps>(ghz);
    zmm_pair<vprolvd, vdpbf16ps>(ghz);
    zmm_pair<vgf2p8affineqb, vpermw>(ghz);
    std::printf("512-bit step mixes (no dependences: the pipes' bound per step):\n");
    print_mix("fast FP4 decode step (1 token: 3 shifts, 5 permutes, 4 DP, FMA)", mix_fp4_one_token_text,
              mix_fp4_one_token(ghz));
    print_mix("fast FP4 prefill step, 4 tokens (16 DP, 4 FMA)", mix_fp4_four_tokens_text, mix_fp4_four_tokens(ghz));
    print_mix("  scales in the weights: + 4 word tests, 4 masked adds; FMA->add", mix_fp4_four_tokens_prescaled_text,
              mix_fp4_four_tokens_prescaled(ghz));
    print_mix("  scales as saturating subtracts: + 4 VPSUBUSW; FMA->add", mix_fp4_four_tokens_subtracted_text,
              mix_fp4_four_tokens_subtracted(ghz));
  } else {
    std::printf("(no AVX-512 with BF16, VBMI, VBMI2 and GFNI here: the 512-bit tables are skipped)\n");
  }
  const bool regs32 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  std::printf("256-bit pairs (the AVX2 kernels' instructions; %s):\n",
              regs32 ? "12 + 12 chains in AVX-512VL's 32 registers" : "6 + 6 chains in AVX2's 16 registers");
  ymm_pair<ymm_vfmadd231ps, ymm_vpshufb>(ghz, regs32);
  ymm_pair<ymm_vfmadd231ps, ymm_vpslld>(ghz, regs32);
  ymm_pair<ymm_vfmadd231ps, ymm_vpmulhuw>(ghz, regs32);
  ymm_pair<ymm_vfmadd231ps, ymm_vpunpcklbw>(ghz, regs32);
  ymm_pair<ymm_vpshufb, ymm_vpslld>(ghz, regs32);
  ymm_pair<ymm_vpand, ymm_vpunpcklbw>(ghz, regs32);
  return 0;
}
