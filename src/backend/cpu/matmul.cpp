// Matrix products on native weight formats, exact numerics (fp32 activations, fp32
// accumulation, every weight dequantised exactly in registers; no fp32 copy of a weight
// matrix is ever made). Compiled once per Highway target (foreach_target) and dispatched
// at run time.
//
// Layout tricks, per format (L = fp32 lanes of the target's vector):
//  * FP4 E2M1 (AVX2/AVX-512): one vector of L u32 lanes holds 4 packed bytes = 8 nibbles
//    per lane, i.e. a chunk of 8L columns (128 on AVX-512: four 32-column scale blocks).
//    Nibble k of every lane is selected by a shift; a lane permute (vpermps uses only the
//    low index bits, so no masking) looks it up in the 16-entry E2M1 table (AVX2: an
//    8-entry magnitude table plus the sign bit moved into bit 31). The activations are
//    re-ordered once per call so that vector k of a chunk holds columns 8j+k. Lane j of a
//    chunk belongs to scale block j/4: the E8M0 bytes are spread across lanes with one
//    byte shuffle and shifted into the fp32 exponent field, and applied once per chunk to
//    the partial dot product (an exact power-of-two scaling).
//  * FP8 E4M3: the sign-extended byte shifted left by 7 and masked is an IEEE half whose
//    value is exactly the E4M3 value times 2^-8 (E4M3 subnormals land on half subnormals,
//    which the half->float conversion handles exactly). The 2^8 joins the block scale.
//    AVX2 instead looks up bf16 words with byte shuffles (see its RowFp8).
//  * BF16: a u32 lane holds columns 2j (low half) and 2j+1 (high half); << 16 and
//    & 0xffff0000 give both as fp32. Activations are re-ordered to [even | odd] per 2L.
// Rows whose scales are 0 (2^-127, an fp32 subnormal), 0xFF (NaN) or so large that a
// dequantised weight overflows fp32, and FP8 rows holding the NaN codes (but on AVX2,
// whose lookups decode them), take the exact scalar path (dequant_row + fp32 dot), which
// is also the path of the targets without a fast FP4 decode (SSE4, emulated).
//
// Matrix-matrix products decode each chunk of a weight row once and use it for up to
// kTokTile tokens; rows are walked in blocks that stay in cache while token tiles pass.
// Int8 numerics (FP4 weights only) has its own kernel and activation layout: see
// "FP4, int8" below.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/matmul.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/bf16dot.h"
#include "backend/cpu/exact_row.h"
#include "backend/cpu/prefetch.h"
#include "backend/cpu/kernels.h"
#include "core/aligned_scratch.h"
#include "core/dtype.h"

#ifndef DSV4_CPU_MATMUL_SHARED
#define DSV4_CPU_MATMUL_SHARED
namespace dsv4::backend::cpu::detail {

constexpr int kTokTile = 4;  // tokens sharing one decode of a weight chunk

// Largest E8M0 byte the fast paths take: beyond it some dequantised weights overflow
// fp32 (|E2M1| <= 6 < 2^3, |E4M3| <= 448 < 2^9), which the exact path reproduces.
constexpr uint8_t kFp4MaxScale = 127 + 124;
constexpr uint8_t kFp8MaxScale = 127 + 118;

// Software prefetch: kPrefetchBytes, prefetch_distance and the FP4 scale stream's
// kPrefetchScaleRows (prefetch.h).
constexpr int64_t kPrefetchL1Bytes = 0;  // optional second prefetch into L1 (off: no gain measured)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Set by force_isa("avx512-nobf16"): the avx512 target keeps fast numerics off the BF16
// dot product, as on an AVX-512 CPU without AVX512_BF16 (Skylake-SP, Ice Lake), so
// machines that have it test and measure that path too.
inline std::atomic<bool>& bf16dot_forced_off() {
  static std::atomic<bool> off{false};
  return off;
}

// Scratch of the calling thread (activations re-ordered for the kernels).
inline ScratchBuffer<float>& scratch_x() {
  thread_local ScratchBuffer<float> v;
  return v;
}


// True when every E8M0 byte in [p, p+n) lies in [lo, hi].
inline bool scales_in_range(const uint8_t* p, int64_t n, uint8_t lo, uint8_t hi) {
  uint8_t mn = 255, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, p[i]);
    mx = std::max(mx, p[i]);
  }
  return mn >= lo && mx <= hi;
}

// Whether every scale of FP4 rows [r0, r1) is in the fast kernels' range: checked once per
// piece of rows rather than per row (the exact AVX2 FP4 kernel, [512, 4096] in L2: 23.3 ->
// 22.8 cycles per 128 weights).
inline bool Fp4ScalesOk(const WeightView& w, int64_t r0, int64_t r1) {
  return r1 > r0 && scales_in_range(w.scale + r0 * (w.n_in / 32), (r1 - r0) * (w.n_in / 32), 1, kFp4MaxScale);
}

// True when no byte of an E4M3 row is a NaN code (0x7F / 0xFF).
inline bool e4m3_row_finite(const uint8_t* p, int64_t n) {
  uint8_t mx = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max<uint8_t>(mx, p[i] & 0x7F);
  return mx != 0x7F;
}

}  // namespace dsv4::backend::cpu::detail
#endif  // DSV4_CPU_MATMUL_SHARED

HWY_BEFORE_NAMESPACE();
namespace dsv4::backend::cpu {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using namespace detail;

#undef DSV4_FP4_AVX3
#undef DSV4_FP4_AVX2
#undef DSV4_HAVE_ROW2_FP4
#undef DSV4_HAVE_FP4_PANELS
#undef DSV4_HAVE_FP8_PANELS
#undef DSV4_HAVE_ROWS_FP8
#undef DSV4_HAVE_ROW2_FP8_AVX2
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
#define DSV4_FP4_AVX3 1
#else
#define DSV4_FP4_AVX3 0
#endif
#if HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
#define DSV4_FP4_AVX2 1
#else
#define DSV4_FP4_AVX2 0
#endif

using DF = hn::ScalableTag<float>;

// Everything a row kernel needs.
struct Job {
  const WeightView* w;
  const float* x;   // original activations [n_tok, n_in]
  const float* xp;  // re-ordered activations [n_tok, ldx] (== x when no re-ordering)
  int64_t ldx;
  int64_t n_tok;
  float* y;         // [n_tok, n_out]
  // Fast numerics on the BF16 dot product (bf16dot.h): activations in bf16dot's layout
  // [n_tok, ldxb]; null when the exact kernels run (x is then already bf16-rounded in
  // fast numerics).
  const uint16_t* xb = nullptr;
  int64_t ldxb = 0;
  // Int8 numerics on an FP4 weight (RowsInt8): activations in PrepInt8's layout [n_tok,
  // ldxq bytes], or null on targets without the vector kernel (the scalar rows quantise x).
  bool int8 = false;
  const uint8_t* xq = nullptr;
  int64_t ldxq = 0;
  // FP8: every scale of the rows being walked lies in [1, kFp8MaxScale], checked once per
  // piece of rows (Rows) rather than per row: 128 rows share a scale row, and the per-row
  // check cost ~9% of a 1024-wide row's decode (L1, one Zen 3 core).
  bool fp8_scales_ok = false;
  // FP4: every scale of the rows being walked lies in [1, kFp4MaxScale], checked once per
  // piece (Fp4ScalesOk) for the same reason.
  bool fp4_scales_ok = false;
  // Fast FP8 prefill: every activation lies in the range for which the bf16 panels may
  // store the weights times their block scales (NotePrescalable), checked once per product.
  bool x_prescalable = false;
};

template <class D, class V>
HWY_INLINE float Sum(D d, V v) {
  return hn::GetLane(hn::SumOfLanes(d, v));
}

// ------------------------------------------------------------------------------- F32
// R rows x T tokens of an F32 product (the mHC projections: 24 rows of 16384): one
// accumulator chain per (row, token), in the same order for every R and T (batch
// invariance); a weight vector serves T tokens and an activation vector R rows. One row at
// a time, the 64 KiB activation rows came from L2 for every row and the one chain per row
// waited on the FMA latency.
#if HWY_TARGET == HWY_AVX3
constexpr int kF32Rows = 4;  // 16 accumulators + 4 activations: 32 zmm registers
#else
constexpr int kF32Rows = 2;  // 16 vector registers
#endif
template <int R, int T>
HWY_INLINE void RowsF32(const Job& j, int64_t r, int64_t t0) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d)), n = j.w->n_in;
  // Weights as bytes: a mapped tensor may start at any byte (LoadU takes any address;
  // the scalar tail reads with load_f32).
  const uint8_t* wr[R];
  for (int k = 0; k < R; ++k) wr[k] = j.w->data + (r + k) * n * 4;
  decltype(hn::Zero(d)) acc[R][T];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = hn::Zero(d);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    decltype(hn::Zero(d)) xv[T];
    for (int t = 0; t < T; ++t) xv[t] = hn::LoadU(d, j.xp + (t0 + t) * j.ldx + i);
    for (int k = 0; k < R; ++k) {
      const auto wv = hn::LoadU(d, reinterpret_cast<const float*>(wr[k] + 4 * i));
      for (int t = 0; t < T; ++t) acc[k][t] = hn::MulAdd(wv, xv[t], acc[k][t]);
    }
  }
  float out[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) out[k][t] = Sum(d, acc[k][t]);
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) {
      const float* xt = j.xp + (t0 + t) * j.ldx;
      for (int64_t c = i; c < n; ++c) out[k][t] = std::fma(load_f32(wr[k] + 4 * c), xt[c], out[k][t]);
      j.y[(t0 + t) * j.w->n_out + r + k] = out[k][t];
    }
}

// ------------------------------------------------------------------------------ BF16
// xp: per chunk of 2L columns, [x[2j] for j < L | x[2j+1] for j < L]; the tail is plain.
HWY_INLINE int64_t Bf16Chunk() { return 2 * int64_t(hn::Lanes(DF())); }

void PrepBf16(const float* x, int64_t n, float* xp) {
  const int64_t C = Bf16Chunk(), L = C / 2;
  int64_t c = 0;
  for (; c + C <= n; c += C)
    for (int64_t jj = 0; jj < L; ++jj) {
      xp[c + jj] = x[c + 2 * jj];
      xp[c + L + jj] = x[c + 2 * jj + 1];
    }
  for (; c < n; ++c) xp[c] = x[c];
}

// R rows x T tokens: rows r + k * rs for k < R. Each activation vector loaded once serves
// all R rows: one row per step makes a multi-token tile load-bound (2T activation loads
// for 2T FMAs). Decode (T = 1, e.g. the LM head) takes two rows half a piece apart
// (for_row_pairs_apart): two independent FMA chains, two weight streams. Per (row,
// token) the order is the same for every R, T and rs (one row: RowsBf16<1, T>), so the
// results are batch invariant.
template <int R, int T>
HWY_INLINE void RowsBf16(const Job& j, int64_t r, int64_t t0, int64_t rs = 1) {
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const int64_t L = int64_t(hn::Lanes(d)), C = 2 * L;
  const int64_t n = j.w->n_in, row_step = 2 * n * rs;  // bytes from one of the R rows to the next
  const uint8_t* wr = j.w->data + r * 2 * n;
  const int64_t pf = prefetch_distance(R, 2 * n, rs);
  const auto hi_mask = hn::Set(du, 0xFFFF0000u);
  decltype(hn::Zero(d)) acc[R][T], acc2[R][T];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = acc2[k][t] = hn::Zero(d);
  int64_t c = 0;
  if constexpr (T == 1) {
    // Decode: 128 bytes of a row per step (an adjacent-line pair; U chunks), as bf16dot's
    // kernel reads them; the same order per row. On AVX-512 one 64-byte chunk per step
    // read the LM head at 52-56 GB/s, 128 bytes at 57-64, 256 or 512 at 53-54
    // (kernels_bench --only bf16 --numerics exact, 2 threads, alternating runs).
    constexpr int U = int(HWY_MIN(8, HWY_MAX(1, 32 / int(hn::MaxLanes(DF())))));
    const float* xt = j.xp + t0 * j.ldx;
    for (; c + U * C <= n; c += U * C) {
      decltype(hn::Zero(d)) xe[U], xo[U];
      for (int u = 0; u < U; ++u) {
        xe[u] = hn::LoadU(d, xt + c + u * C);
        xo[u] = hn::LoadU(d, xt + c + u * C + L);
      }
      for (int k = 0; k < R; ++k) {
#if HWY_ARCH_X86
        for (int64_t o = 0; o < U * C * 2; o += 64)
          prefetch_stream(wr + k * row_step + c * 2 + o + pf);
#endif
        for (int u = 0; u < U; ++u) {
          const auto v = hn::LoadU(du, reinterpret_cast<const uint32_t*>(wr + k * row_step + (c + u * C) * 2));
          acc[k][0] = hn::MulAdd(hn::BitCast(d, hn::ShiftLeft<16>(v)), xe[u], acc[k][0]);
          acc2[k][0] = hn::MulAdd(hn::BitCast(d, hn::And(v, hi_mask)), xo[u], acc2[k][0]);
        }
      }
    }
  }
  for (; c + C <= n; c += C) {
    decltype(hn::Zero(d)) we[R], wo[R];
    for (int k = 0; k < R; ++k) {
#if HWY_ARCH_X86
      if (T == 1 && (c * 2) % 64 == 0)  // decode streams from memory; a tile's rows are in cache
        prefetch_stream(wr + k * row_step + c * 2 + pf);
#endif
      const auto v = hn::LoadU(du, reinterpret_cast<const uint32_t*>(wr + k * row_step + c * 2));
      we[k] = hn::BitCast(d, hn::ShiftLeft<16>(v));
      wo[k] = hn::BitCast(d, hn::And(v, hi_mask));
    }
    for (int t = 0; t < T; ++t) {
      const float* xc = j.xp + (t0 + t) * j.ldx + c;
      const auto xe = hn::LoadU(d, xc), xo = hn::LoadU(d, xc + L);
      for (int k = 0; k < R; ++k) {
        acc[k][t] = hn::MulAdd(we[k], xe, acc[k][t]);
        acc2[k][t] = hn::MulAdd(wo[k], xo, acc2[k][t]);
      }
    }
  }
  for (int k = 0; k < R; ++k) {
    const uint8_t* wk = wr + k * row_step;
    for (int t = 0; t < T; ++t) {
      const float* xt = j.xp + (t0 + t) * j.ldx;
      float s = Sum(d, hn::Add(acc[k][t], acc2[k][t]));
      for (int64_t i = c; i < n; ++i) {
        s = std::fma(bf16_to_f32(load_u16(wk + 2 * i)), xt[i], s);
      }
      j.y[(t0 + t) * j.w->n_out + r + k * rs] = s;
    }
  }
}

// ------------------------------------------------------------------------------- FP8
// True when no byte of an E4M3 row is a NaN code (0x7F / 0xFF): full-width byte vectors,
// max of (b & 0x7F). Also pulls the row into L1 ahead of the decode loop.
HWY_INLINE bool E4m3RowFinite(const uint8_t* p, int64_t n) {
  const hn::ScalableTag<uint8_t> d8;
  const int64_t N = int64_t(hn::Lanes(d8));
  const auto m7 = hn::Set(d8, uint8_t(0x7F));
  auto mx = hn::Zero(d8);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    mx = hn::Max(mx, hn::Max(hn::And(hn::LoadU(d8, p + i), m7), hn::And(hn::LoadU(d8, p + i + N), m7)));
  }
  for (; i + N <= n; i += N) mx = hn::Max(mx, hn::And(hn::LoadU(d8, p + i), m7));
  if (!hn::AllFalse(d8, hn::Eq(mx, m7))) return false;
  for (; i < n; ++i)
    if ((p[i] & 0x7F) == 0x7F) return false;
  return true;
}

#if DSV4_FP4_AVX3
// E4M3 on AVX-512, shared by RowFp8, RowsFp8 and the prefill panels (their results must
// agree bit for bit): the 32 bytes at p as two fp32 vectors of E4M3 x 2^-8 (each byte
// sign-extended, << 7 and & 0xBF80 is the half with the same value x 2^-8; one shift and
// one mask for both halves). nan_acc keeps the max of the halves' exponent bits, which
// is 0x3F80 only where a code is NaN (Fp8AnyNaN).
HWY_INLINE void Fp8Decode32(const uint8_t* p, __m512& w0, __m512& w1, __m512i& nan_acc) {
  const __m512i hw = _mm512_and_si512(
      _mm512_slli_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 7),
      _mm512_set1_epi16(int16_t(0xBF80)));
  nan_acc = _mm512_max_epu16(nan_acc, _mm512_and_si512(hw, _mm512_set1_epi16(0x3F80)));
  w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(hw));
  w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(hw, 1));
}
HWY_INLINE bool Fp8AnyNaN(__m512i nan_acc) {
  return _mm512_cmpeq_epi16_mask(nan_acc, _mm512_set1_epi16(0x3F80)) != 0;
}
// The 16 bytes at p, every one a normal E4M3 code (exponent field 1-15, not NaN: a block
// the loader's fp8_normal flags vouch for), as fp32 E4M3 x 2^-8, the values Fp8Decode32
// gives: each byte sign-extended to 32 bits, << 20 puts the exponent field in fp32
// exponent bits 26-23 and the mantissa in bits 22-20; (& 0x87F00000) | 0x38000000 keeps
// the sign and makes the exponent 112 + e (2^(e - 15) = 2^(e - 7) x 2^-8). Three vector
// ops per 16 weights where the half-precision route takes about five (decode was bound
// by them: one Zen 5 core, [128, 4096] from L2, 22-25 GB/s).
HWY_INLINE __m512 Fp8DecodeNormal16(const uint8_t* p) {
  const __m512i d = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_slli_epi32(d, 20), _mm512_set1_epi32(int32_t(0x87F00000u)),
                                                       _mm512_set1_epi32(0x38000000), 0xEA));  // (A & B) | C
}
#endif

#if DSV4_FP4_AVX2 || DSV4_FP4_AVX3
// The tiles of a prefill panel (FP8 and FP4 below), at most MaxR rows x MaxT tokens,
// covering nr panel rows x every token: step(rows, tokens, a, xt, acc) with rows and
// tokens std::integral_constant<int, R or T> (smaller where the rows and tokens run out),
// xt[u] token u's activation row and acc[u] its accumulators of the panel's rows from a
// (accs: [n_tok][stride] vectors, row a of the panel at column a).
// Per weight-vector position a tile loads R weight and T activation vectors for R x T
// multiply-adds. V: the accumulator vector type (AVX2 __m256, AVX-512 __m512).
template <int R, int T, int MaxT, class V, class Step>
HWY_INLINE void PanelTileOf(const Job& j, int64_t nr_left, int64_t nt_left, int64_t a, int64_t t, int64_t stride,
                            V* accs, const Step& step) {
  if (nr_left == R && nt_left == T) {
    const float* xt[T];
    V* acc[T];
    for (int u = 0; u < T; ++u) {
      xt[u] = j.xp + (t + u) * j.ldx;
      acc[u] = accs + (t + u) * stride + a;
    }
    step(std::integral_constant<int, R>{}, std::integral_constant<int, T>{}, a, xt, acc);
  } else if constexpr (T > 1) {
    PanelTileOf<R, T - 1, MaxT>(j, nr_left, nt_left, a, t, stride, accs, step);
  } else if constexpr (R > 1) {
    PanelTileOf<R - 1, MaxT, MaxT>(j, nr_left, nt_left, a, t, stride, accs, step);
  }
}
template <int MaxR, int MaxT, class V, class Step>
HWY_INLINE void PanelTilesOf(const Job& j, int64_t nr, int64_t stride, V* accs, const Step& step) {
  for (int64_t t = 0; t < j.n_tok; t += MaxT)
    for (int64_t a = 0; a < nr; a += MaxR)
      PanelTileOf<MaxR, MaxT, MaxT>(j, std::min<int64_t>(MaxR, nr - a), std::min<int64_t>(MaxT, j.n_tok - t), a, t,
                                    stride, accs, step);
}
#endif

#if DSV4_FP4_AVX2
// AVX2: E4M3 bytes become bf16 words with one byte shuffle, not VCVTPH2PS (on Zen 3 one
// ymm VCVTPH2PS per two cycles held the half-based decode at ~9 cycles per 32 weights;
// this one takes ~6, L1-resident). For a code with exponent field e != 0 the value is
// 2^(e-7) (1 + m/8), whose bf16 word is
//   high byte: sign | (e + 120) >> 1 = sign | 60 + (e >> 1)  (a lookup of the byte's high
//              nibble: sign, e3, e2, e1),
//   low byte:  (e & 1) << 7 | m << 4                         (the byte's low nibble << 4),
// and a bf16 word in the top half of an fp32 lane is that fp32, exactly. Zero, the
// subnormals (e == 0) and the NaN codes do not follow the rule: a 128-column block that
// holds one is decoded again with two more lookups and blends (Fp8Avx2BytesExact).
// Quantised checkpoint blocks hold such codes rarely: a Gaussian 128x128 block has about
// two among its 16384, so about one 128-column row block in 60 takes the second pass.
struct Fp8Avx2Tables {
  __m256i hi, sub_hi, sub_lo, low4, shr4, two, bad_below, exp4, sign, nan;
  HWY_INLINE Fp8Avx2Tables()
      : hi(_mm256_setr_epi8(60, 61, 62, 63, 64, 65, 66, 67, char(188), char(189), char(190), char(191), char(192),
                            char(193), char(194), char(195), 60, 61, 62, 63, 64, 65, 66, 67, char(188), char(189),
                            char(190), char(191), char(192), char(193), char(194), char(195))),
        // e == 0: m 2^-9 for mantissa m = 0..7, as bf16 bytes (without the sign).
        sub_hi(_mm256_setr_epi8(0, 59, 59, 59, 60, 60, 60, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 59, 59, 60, 60, 60, 60,
                                0, 0, 0, 0, 0, 0, 0, 0)),
        sub_lo(_mm256_setr_epi8(0, 0, char(0x80), char(0xC0), 0, 0x20, 0x40, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                char(0x80), char(0xC0), 0, 0x20, 0x40, 0x60, 0, 0, 0, 0, 0, 0, 0, 0)),
        low4(_mm256_set1_epi8(0x0F)),
        shr4(_mm256_set1_epi16(0x1000)),
        two(_mm256_set1_epi8(2)),
        bad_below(_mm256_set1_epi8(17)),
        exp4(_mm256_set1_epi8(0x78)),
        sign(_mm256_set1_epi8(char(0x80))),
        nan(_mm256_set1_epi8(0x7F)) {}
};

// Low and high bytes of the bf16 words of 32 codes (right for every code with e != 0 and
// no NaN).
HWY_INLINE void Fp8Avx2Bytes(const Fp8Avx2Tables& tb, __m256i v, __m256i& lo, __m256i& hi) {
  lo = _mm256_slli_epi16(_mm256_and_si256(v, tb.low4), 4);
  // (v & 0xF0F0) * 2^12 >> 16 per word: both high nibbles moved down (on the multiplier,
  // which leaves the shift/shuffle pipes to the unpacks).
  hi = _mm256_shuffle_epi8(tb.hi, _mm256_mulhi_epu16(_mm256_andnot_si256(tb.low4, v), tb.shr4));
}
// bad: running unsigned minimum of 2b + 2 (mod 256), which is below 18 exactly for e == 0
// (2..16) and the NaN codes (0); all ones before the first group.
HWY_INLINE void Fp8Avx2NoteBad(const Fp8Avx2Tables& tb, __m256i v, __m256i& bad) {
  bad = _mm256_min_epu8(bad, _mm256_add_epi8(_mm256_add_epi8(v, v), tb.two));
}
HWY_INLINE bool Fp8Avx2AnyBad(const Fp8Avx2Tables& tb, __m256i bad) {
  return _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(bad, tb.bad_below), bad)) != 0;
}
// The same bytes for every code: e == 0 lanes take their bytes from the subnormal tables
// (indexed by the mantissa, the low nibble there), NaN codes get an all-ones exponent
// (s | 0x7F, low byte 0xF0: a bf16 NaN).
HWY_INLINE void Fp8Avx2BytesExact(const Fp8Avx2Tables& tb, __m256i v, __m256i& lo, __m256i& hi) {
  Fp8Avx2Bytes(tb, v, lo, hi);
  const __m256i m = _mm256_and_si256(v, tb.low4);
  const __m256i sub = _mm256_cmpeq_epi8(_mm256_and_si256(v, tb.exp4), _mm256_setzero_si256());
  const __m256i sub_hi = _mm256_or_si256(_mm256_shuffle_epi8(tb.sub_hi, m), _mm256_and_si256(v, tb.sign));
  hi = _mm256_blendv_epi8(hi, sub_hi, sub);
  lo = _mm256_blendv_epi8(lo, _mm256_shuffle_epi8(tb.sub_lo, m), sub);
  const __m256i is_nan = _mm256_cmpeq_epi8(_mm256_or_si256(v, tb.sign), _mm256_set1_epi8(-1));
  hi = _mm256_or_si256(hi, _mm256_and_si256(is_nan, tb.nan));
}

// The four fp32 weight vectors of a group (A, B, C, D) from its bf16 bytes lo, hi.
HWY_INLINE void Fp8Avx2Weights(__m256i lo, __m256i hi, __m256 wv[4]) {
  const __m256i top16 = _mm256_set1_epi32(int32_t(0xFFFF0000u));
  const __m256i w1 = _mm256_unpacklo_epi8(lo, hi), w2 = _mm256_unpackhi_epi8(lo, hi);
  wv[0] = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
  wv[1] = _mm256_castsi256_ps(_mm256_and_si256(w1, top16));
  wv[2] = _mm256_castsi256_ps(_mm256_slli_epi32(w2, 16));
  wv[3] = _mm256_castsi256_ps(_mm256_and_si256(w2, top16));
}
// The four activation vectors of a group (its 32 columns in PrepFp8's order).
HWY_INLINE void Fp8Avx2LoadX(const float* xc, __m256 x[4]) {
  for (int i = 0; i < 4; ++i) x[i] = _mm256_load_ps(xc + 8 * i);
}
// One token's chains over a group: A and C into p, B and D into q.
HWY_INLINE void Fp8Avx2Fma(const __m256 wv[4], const __m256 x[4], __m256& p, __m256& q) {
  p = _mm256_fmadd_ps(wv[0], x[0], p);
  q = _mm256_fmadd_ps(wv[1], x[1], q);
  p = _mm256_fmadd_ps(wv[2], x[2], p);
  q = _mm256_fmadd_ps(wv[3], x[3], q);
}

// Which blocks need the second, exact decode: a weight's fp8_normal flags tell (the model
// loader makes them); for a weight without flags (kCheck) the first pass notes special
// codes as it goes, three more vector ops per 32 weights (one Zen 3 core, L1-resident,
// two rows per step: 28.1 cycles per 128 weights with the check, 23.4 with the flags).
// Both give the same bits. The kernels come in both forms, chosen once per row: one
// function deciding per block kept each block's sums in memory.

// The group at p: its bf16 bytes by lookups, and with kCheck its special codes noted in bad.
template <bool kCheck>
HWY_INLINE void Fp8Avx2Group(const Fp8Avx2Tables& tb, const uint8_t* p, __m256i& lo, __m256i& hi, __m256i& bad) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  Fp8Avx2Bytes(tb, v, lo, hi);
  if constexpr (kCheck) Fp8Avx2NoteBad(tb, v, bad);
}
// The group at p decoded right for every code.
HWY_INLINE void Fp8Avx2GroupExact(const Fp8Avx2Tables& tb, const uint8_t* p, __m256i& lo, __m256i& hi) {
  Fp8Avx2BytesExact(tb, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), lo, hi);
}
// Whether block b of a row holds a special code: its fp8_normal bit (row_bit: the row's
// bit of block 0), or with kCheck the codes its pass noted in bad.
template <bool kCheck>
HWY_INLINE bool Fp8Avx2Special(const Fp8Avx2Tables& tb, const WeightView& w, uint64_t row_bit, int64_t b,
                               __m256i bad) {
  if constexpr (kCheck) return Fp8Avx2AnyBad(tb, bad);
  return !fp8_normal_test(w.fp8_normal, row_bit + uint64_t(b));
}

// xp for FP8 rows on AVX2: per group of 32 columns, four vectors [A, B, C, D] in the order
// the byte unpacks produce the words: A = columns {0,2,4,6,16,18,20,22}, B = A + 1,
// C = A + 8, D = A + 9. The columns past the last whole group are plain.
void PrepFp8(const float* x, int64_t n, float* xp) {
  int64_t c = 0;
  for (; c + 32 <= n; c += 32)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t i = 0; i < 8; ++i) xp[c + 8 * k + i] = x[c + 16 * (i / 4) + 8 * (k / 2) + 2 * (i % 4) + k % 2];
  for (; c < n; ++c) xp[c] = x[c];
}

// Columns [c0, c1) of an FP8 row (the last block's columns past its whole groups) times
// activations xt, scale es, summed in order from zero.
HWY_INLINE float Fp8Tail(const uint8_t* wr, float es, int64_t c0, int64_t c1, const float* xt) {
  float tail = 0.0f;
  for (int64_t c = c0; c < c1; ++c) tail = std::fma(e4m3_to_f32(wr[c]) * es, xt[c], tail);
  return tail;
}

// Per (row, token) and block two chains from zero over the block's groups (A and C words
// into p, B and D into q), scaled into acc one after the other (where the block has a
// whole group); the columns past the last whole group in a scalar tail: the same order
// for every T. (Scaling p + q once took one operation less, but the prefill panels then
// need both chains of every (row, token) in registers at once.)
template <int T, bool kCheck>
HWY_INLINE void RowFp8Impl(const Job& j, int64_t r, int64_t t0) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const int64_t nb = ceil_div(n, 128);
  const uint8_t* wr = w.data + r * n;
  const uint8_t* sr = w.scale + ((r + w.row_offset) / 128) * nb;
  if (!j.fp8_scales_ok && !scales_in_range(sr, nb, 1, kFp8MaxScale)) {
    exact_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
  const Fp8Avx2Tables tb;
  const uint64_t row_bit = fp8_normal_bit(w, r + w.row_offset, 0);
  __m256 acc[T], p[T], q[T];
  float tail[T];
  for (int t = 0; t < T; ++t) {
    acc[t] = _mm256_setzero_ps();
    tail[t] = 0.0f;
  }
  // The four weight vectors of a group (its bf16 bytes lo, hi) into every token's chains.
  const auto multiply = [&](__m256i lo, __m256i hi, int64_t c) HWY_ATTR {
    __m256 wv[4];
    Fp8Avx2Weights(lo, hi, wv);
    for (int t = 0; t < T; ++t) {
      __m256 x[4];
      Fp8Avx2LoadX(j.xp + (t0 + t) * j.ldx + c, x);
      Fp8Avx2Fma(wv, x, p[t], q[t]);
    }
  };
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * 128, c1 = std::min(n, c0 + 128);
    const int64_t cg = c0 + (c1 - c0) / 32 * 32;  // end of the whole groups
    for (int t = 0; t < T; ++t) p[t] = q[t] = _mm256_setzero_ps();
    __m256i bad = _mm256_set1_epi8(-1);
    for (int64_t c = c0; c < cg; c += 32) {
      if constexpr (kPrefetchBytes > 0)
        if ((c & 63) == 0) prefetch_stream(wr + c + kPrefetchBytes);
      __m256i lo, hi;
      Fp8Avx2Group<kCheck>(tb, wr + c, lo, hi, bad);
      multiply(lo, hi, c);
    }
    if (cg > c0 && Fp8Avx2Special<kCheck>(tb, w, row_bit, b, bad)) {  // again, right for every code
      for (int t = 0; t < T; ++t) p[t] = q[t] = _mm256_setzero_ps();
      for (int64_t c = c0; c < cg; c += 32) {
        __m256i lo, hi;
        Fp8Avx2GroupExact(tb, wr + c, lo, hi);
        multiply(lo, hi, c);
      }
    }
    // 2^(e-127), exact for e in [1, kFp8MaxScale].
    const __m256 s = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(uint32_t(sr[b]) << 23)));
    if (cg > c0)
      for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(q[t], s, _mm256_fmadd_ps(p[t], s, acc[t]));
    if (cg < c1)  // fewer than 32 columns left in the last block
      for (int t = 0; t < T; ++t) tail[t] = Fp8Tail(wr, e8m0_to_f32(sr[b]), cg, c1, j.xp + (t0 + t) * j.ldx);
  }
  const DF d;
  for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r] = Sum(d, hn::Vec<DF>{acc[t]}) + tail[t];
}
template <int T>
HWY_INLINE void RowFp8(const Job& j, int64_t r, int64_t t0) {
  if (j.w->fp8_normal != nullptr) RowFp8Impl<T, false>(j, r, t0);
  else RowFp8Impl<T, true>(j, r, t0);
}

// Two rows r and r2, one token (decode): each group's activation vectors, loaded once,
// serve both rows (the loads, four per 32 weights, otherwise compete with the weight
// stream and the decode). Per row the arithmetic is RowFp8<1>'s in the same order, block
// by block, so the results are bit-identical to it. Returns false (nothing written) when
// a scale of either row needs the exact path.
#define DSV4_HAVE_ROW2_FP8_AVX2 1
template <bool kCheck>
HWY_INLINE bool Row2Fp8Impl(const Job& j, int64_t r, int64_t r2, int64_t t0) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const int64_t nb = ceil_div(n, 128);
  const uint8_t* wr[2] = {w.data + r * n, w.data + r2 * n};
  const uint8_t* sr[2] = {w.scale + ((r + w.row_offset) / 128) * nb, w.scale + ((r2 + w.row_offset) / 128) * nb};
  if (!j.fp8_scales_ok)
    for (int k = 0; k < 2; ++k)
      if (!scales_in_range(sr[k], nb, 1, kFp8MaxScale)) return false;
  const Fp8Avx2Tables tb;
  const uint64_t row_bit[2] = {fp8_normal_bit(w, r + w.row_offset, 0), fp8_normal_bit(w, r2 + w.row_offset, 0)};
  const float* xt = j.xp + t0 * j.ldx;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  float tail[2] = {0.0f, 0.0f};
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * 128, c1 = std::min(n, c0 + 128);
    const int64_t cg = c0 + (c1 - c0) / 32 * 32;  // end of the whole groups
    __m256 p[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, q[2] = {p[0], p[0]};
    __m256i bad[2] = {_mm256_set1_epi8(-1), _mm256_set1_epi8(-1)};
    for (int64_t c = c0; c < cg; c += 32) {
      if constexpr (kPrefetchBytes > 0)
        if ((c & 63) == 0)
          for (int k = 0; k < 2; ++k)
            prefetch_stream(wr[k] + c + kPrefetchBytes);
      __m256 x[4];
      Fp8Avx2LoadX(xt + c, x);
      for (int k = 0; k < 2; ++k) {
        __m256i lo, hi;
        Fp8Avx2Group<kCheck>(tb, wr[k] + c, lo, hi, bad[k]);
        __m256 wv[4];
        Fp8Avx2Weights(lo, hi, wv);
        Fp8Avx2Fma(wv, x, p[k], q[k]);
      }
    }
    // (Unrolled: as a loop over k, p and q went through memory.)
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k) {
      if (cg > c0 && Fp8Avx2Special<kCheck>(tb, w, row_bit[k], b, bad[k])) {  // this row's block again, exactly
        p[k] = q[k] = _mm256_setzero_ps();
        for (int64_t c = c0; c < cg; c += 32) {
          __m256i lo, hi;
          Fp8Avx2GroupExact(tb, wr[k] + c, lo, hi);
          __m256 x[4];
          Fp8Avx2LoadX(xt + c, x);
          __m256 wv[4];
          Fp8Avx2Weights(lo, hi, wv);
          Fp8Avx2Fma(wv, x, p[k], q[k]);
        }
      }
      const __m256 s = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(uint32_t(sr[k][b]) << 23)));
      if (cg > c0) acc[k] = _mm256_fmadd_ps(q[k], s, _mm256_fmadd_ps(p[k], s, acc[k]));
      if (cg < c1) tail[k] = Fp8Tail(wr[k], e8m0_to_f32(sr[k][b]), cg, c1, xt);  // the last block's last columns
    }
  }
  const DF d;
  j.y[t0 * w.n_out + r] = Sum(d, hn::Vec<DF>{acc[0]}) + tail[0];
  j.y[t0 * w.n_out + r2] = Sum(d, hn::Vec<DF>{acc[1]}) + tail[1];
  return true;
}
HWY_INLINE bool Row2Fp8(const Job& j, int64_t r, int64_t r2, int64_t t0) {
  return j.w->fp8_normal != nullptr ? Row2Fp8Impl<false>(j, r, r2, t0) : Row2Fp8Impl<true>(j, r, r2, t0);
}

// Decode (one token) of FP8 rows [r0, r1), two per step, half the piece apart
// (for_row_pairs_apart). Adjacent short rows share a 4 KiB page, and two streams
// interleaved within a page read slower from DRAM, though not from cache (one Zen 3
// core, 1024-wide rows: 12.5 -> 13.8 GB/s apart; two: 23.8 -> 27.1, `kernels_bench
// --only fp8 --fp8-shape 40960x1024`; 2048-wide +2%). Rows of 4 KiB and more were paired
// with their neighbour until Zen 5 measured apart faster for them too (2 threads,
// alternating: [4096, 4096] 25.9-31.2 -> 30.4-35.0 GB/s, [4096, 8192] 26.1-27.1 ->
// 31.0-32.0) where Zen 3 had measured it 3-5% slower. The same arithmetic per row in any
// pairing, so the same bits.
void RowsFp8Decode(const Job& j, int64_t r0, int64_t r1) {
  for_row_pairs_apart(
      r0, r1, [&](int64_t ra, int64_t rb) { return Row2Fp8(j, ra, rb, 0); }, [&](int64_t r) { RowFp8<1>(j, r, 0); });
}

// An empty asm that claims to change v: v must be in a register and cannot be re-read
// from memory later. Without it GCC turns the prefill panels' loads into memory operands
// of every multiply-add and reloads them (~52 loads per 32 multiply-adds instead of 32):
// one Zen 3 core, L1-resident FP4 2x2 step, 54 -> 83 GFLOP/s of a 103 peak.
HWY_INLINE void KeepInRegister(__m256& v) { asm("" : "+x"(v)); }

// ------------------------------------------------------------------ FP8 prefill panels
// Tiles of at most 3 rows x 3 tokens, one chain each: 15 of AVX2's 16 vector registers.
constexpr int kPanelTileRows = 3, kPanelTileTokens = 3;

// Prefill of FP8 rows on AVX2 (kFp8PanelMinTokens tokens or more), as the FP4 panels
// below: the weight vectors of kFp8PanelRows rows x kFp8PanelBlocks 128-column blocks
// are decoded once (blocks holding a zero, subnormal or NaN code exactly, as
// RowFp8Impl's second pass does) and every token triple passes over them in tiles of
// three rows x three tokens (PanelTilesOf). RowFp8Impl's arithmetic in its order (per
// block the chain of the A and C vectors from zero, then that of the B and D vectors,
// each scaled into acc; the scalar tail last), so results are bit-identical to decode.
// 96 rows x 4 blocks (a 192 KiB panel in L2: the activations of a 512-column slice, 1 MiB
// for 512 tokens, are read once per 96 rows), measured best of 24-144 rows x 1-8 blocks.
// One Zen 3 thread, 512 tokens, against the 2 x 2 tiles of two chains per block before
// (`kernels_bench --only mm --fp8-shape ...`): [4096, 4096] 51-58 -> 60-64 GFLOP/s,
// [4096, 8192] 54 -> 60, [2048, 4096] 53 -> 60, [4096, 2048] 57 -> 64. Against
// RowFp8Impl (`--mm-shape`): [8192, 1024] x 512 tokens 37 -> 64, x 16 52 vs 38, x 6 43
// vs 33, x 4 34 vs 37; [4096, 128] x 64 40 vs 28; hence from 6 tokens and 128 columns.
constexpr int64_t kFp8PanelRows = 96;
constexpr int64_t kFp8PanelBlocks = 4;
constexpr int64_t kFp8PanelMinTokens = 6;
constexpr int64_t kFp8PanelMinCols = 128;
constexpr int64_t kFp8PanelColStep = 1;  // any width: a block's last groups and a scalar tail

struct Fp8Panel {
  __m256 w[kFp8PanelRows][kFp8PanelBlocks][16];  // the Fp8Avx2Weights of each group of the block
  __m256 s[kFp8PanelRows][kFp8PanelBlocks];      // the block's scale, broadcast
};

// Rows [r, r + nr) of the panel, blocks [b0, b0 + nbk) of the weight.
template <bool kCheck>
HWY_INLINE void DecodeFp8Panel(const Job& j, const Fp8Avx2Tables& tb, int64_t r, int64_t nr, int64_t b0,
                               int64_t nbk, Fp8Panel& panel) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in, nb = ceil_div(n, 128);
  for (int64_t a = 0; a < nr; ++a) {
    const uint8_t* wr = w.data + (r + a) * n;
    const uint8_t* sr = w.scale + ((r + a + w.row_offset) / 128) * nb;
    const uint64_t row_bit = fp8_normal_bit(w, r + a + w.row_offset, 0);
    // The row's next slice, or the same row of the next panel, while the tiles work.
    if (b0 + nbk < nb) prefetch_lines(wr + (b0 + nbk) * 128, std::min(n, (b0 + 2 * nbk) * 128) - (b0 + nbk) * 128);
    else if (r + a + kFp8PanelRows < w.n_out) prefetch_lines(wr + kFp8PanelRows * n, std::min(n, kFp8PanelBlocks * 128));
    for (int64_t k = 0; k < nbk; ++k) {
      const int64_t b = b0 + k, c0 = b * 128, cg = c0 + (std::min(n, c0 + 128) - c0) / 32 * 32;
      __m256i bad = _mm256_set1_epi8(-1);
      for (int64_t c = c0; c < cg; c += 32) {
        __m256i lo, hi;
        Fp8Avx2Group<kCheck>(tb, wr + c, lo, hi, bad);
        Fp8Avx2Weights(lo, hi, panel.w[a][k] + (c - c0) / 8);
      }
      if (cg > c0 && Fp8Avx2Special<kCheck>(tb, w, row_bit, b, bad))
        for (int64_t c = c0; c < cg; c += 32) {
          __m256i lo, hi;
          Fp8Avx2GroupExact(tb, wr + c, lo, hi);
          Fp8Avx2Weights(lo, hi, panel.w[a][k] + (c - c0) / 8);
        }
      panel.s[a][k] = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(uint32_t(sr[b]) << 23)));
    }
  }
}

// R panel rows from a x T tokens (activation rows xt), block k of the panel (its first
// column c0, its NG whole groups): RowFp8Impl's per-block arithmetic (the chain of the A
// and C vectors, then the chain of the B and D vectors); acc[u] points at token u's
// accumulator of panel row a. NG is a template argument so that the group loops unroll
// and the chains stay in registers.
template <int R, int T, int NG>
HWY_INLINE void Fp8PanelBlock(const Fp8Panel& panel, int64_t a, const float* const xt[T], int64_t k, int64_t c0,
                              __m256* const acc[T]) {
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // h = 0: vectors A and C of every group; h = 1: B and D
    __m256 p[R][T];
    for (int b = 0; b < R; ++b)
      for (int t = 0; t < T; ++t) p[b][t] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int v = 0; v < 2 * NG; ++v) {
      const int i = 4 * (v / 2) + 2 * (v % 2) + h;  // weight vector i of the block
      __m256 wv[R], xv[T];
      for (int b = 0; b < R; ++b) {
        wv[b] = panel.w[a + b][k][i];
        KeepInRegister(wv[b]);
      }
      for (int t = 0; t < T; ++t) {
        xv[t] = _mm256_load_ps(xt[t] + c0 + 8 * i);
        KeepInRegister(xv[t]);
      }
      for (int b = 0; b < R; ++b)
        for (int t = 0; t < T; ++t) p[b][t] = _mm256_fmadd_ps(wv[b], xv[t], p[b][t]);
    }
    for (int b = 0; b < R; ++b)
      for (int t = 0; t < T; ++t) acc[t][b] = _mm256_fmadd_ps(p[b][t], panel.s[a + b][k], acc[t][b]);
  }
}

// The same over blocks [b0, b0 + nbk) of the weight.
template <int R, int T>
HWY_INLINE void Fp8PanelStep(const Fp8Panel& panel, int64_t a, const float* const xt[T], int64_t n, int64_t b0,
                             int64_t nbk, __m256* const acc[T]) {
  for (int64_t k = 0; k < nbk; ++k) {
    const int64_t c0 = (b0 + k) * 128;
    switch ((std::min(n, c0 + 128) - c0) / 32) {
      case 4: Fp8PanelBlock<R, T, 4>(panel, a, xt, k, c0, acc); break;
      case 3: Fp8PanelBlock<R, T, 3>(panel, a, xt, k, c0, acc); break;
      case 2: Fp8PanelBlock<R, T, 2>(panel, a, xt, k, c0, acc); break;
      case 1: Fp8PanelBlock<R, T, 1>(panel, a, xt, k, c0, acc); break;
      default: break;  // no whole group: the scalar tail only
    }
  }
}

// Rows [r0, r1) of an FP8 product for every token; every scale of the piece is in range.
template <bool kCheck>
void RowsFp8PanelsImpl(const Job& j, int64_t r0, int64_t r1) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in, nb = ceil_div(n, 128), cg_end = n / 32 * 32;
  thread_local ScratchBuffer<Fp8Panel> panel_buf;
  thread_local ScratchBuffer<__m256> acc_buf;
  Fp8Panel& panel = *panel_buf.get(1);
  __m256* accs = acc_buf.get(j.n_tok * kFp8PanelRows);  // [n_tok][kFp8PanelRows]
  const Fp8Avx2Tables tb;
  const DF d;
  for (int64_t rb = r0; rb < r1; rb += kFp8PanelRows) {
    const int64_t nr = std::min(kFp8PanelRows, r1 - rb);
    for (int64_t i = 0; i < j.n_tok * kFp8PanelRows; ++i) accs[i] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += kFp8PanelBlocks) {
      const int64_t nbk = std::min(kFp8PanelBlocks, nb - b0);
      DecodeFp8Panel<kCheck>(j, tb, rb, nr, b0, nbk, panel);
      PanelTilesOf<kPanelTileRows, kPanelTileTokens>(
          j, nr, kFp8PanelRows, accs, [&](auto rows, auto tokens, int64_t a, const float* const* xt, __m256* const* acc)
                                          HWY_ATTR {
            Fp8PanelStep<decltype(rows)::value, decltype(tokens)::value>(panel, a, xt, n, b0, nbk, acc);
          });
    }
    for (int64_t t = 0; t < j.n_tok; ++t)  // token-major: a token's rows share lines of y
      for (int64_t a = 0; a < nr; ++a) {
        const float tail = cg_end < n ? Fp8Tail(w.data + (rb + a) * n,
                                                e8m0_to_f32(w.scale[((rb + a + w.row_offset) / 128) * nb + nb - 1]),
                                                cg_end, n, j.xp + t * j.ldx)
                                      : 0.0f;
        j.y[t * w.n_out + rb + a] = Sum(d, hn::Vec<DF>{accs[t * kFp8PanelRows + a]}) + tail;
      }
  }
}
void RowsFp8Panels(const Job& j, int64_t r0, int64_t r1) {
  if (j.w->fp8_normal != nullptr) RowsFp8PanelsImpl<false>(j, r0, r1);
  else RowsFp8PanelsImpl<true>(j, r0, r1);
}
#define DSV4_HAVE_FP8_PANELS 1

#else
// E4M3 byte -> half bits: (sign-extended byte << 7) & 0xBF80; value = E4M3 * 2^-8.
template <int T>
HWY_INLINE void RowFp8(const Job& j, int64_t r, int64_t t0) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int16_t, DF> d16;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t L = int64_t(hn::Lanes(d));
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const int64_t nb = ceil_div(n, 128);
  const uint8_t* wr = w.data + r * n;
  const uint8_t* sr = w.scale + ((r + w.row_offset) / 128) * nb;
  // NaN codes: on AVX-512 checked inside the decode loop (a separate pass over the row
  // would serialise its DRAM latency with the decode), elsewhere by a pass over the row.
  constexpr bool kInLoopNaN = DSV4_FP4_AVX3 != 0;
  if ((!j.fp8_scales_ok && !scales_in_range(sr, nb, 1, kFp8MaxScale)) ||
      ((!kInLoopNaN || n % 32 != 0) && !E4m3RowFinite(wr, n))) {
    exact_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
#if DSV4_FP4_AVX3
  __m512i nan_acc = _mm512_setzero_si512();  // max of (half bits & 0x3F80); 0x3F80 = NaN code
#endif
  const auto mask = hn::Set(d16, int16_t(0xBF80));
  decltype(hn::Zero(d)) acc[T];
  for (int t = 0; t < T; ++t) acc[t] = hn::Zero(d);
  float tail[T];
  for (int t = 0; t < T; ++t) tail[t] = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * 128, c1 = std::min(n, c0 + 128);
    // 2^(e-127) * 2^8, exact for e in [1, kFp8MaxScale].
    const float sf = std::bit_cast<float>(uint32_t(sr[b] + 8) << 23);
    const auto s = hn::Set(d, sf);
    decltype(hn::Zero(d)) p[T], q[T];
    for (int t = 0; t < T; ++t) p[t] = q[t] = hn::Zero(d);
    int64_t c = c0;
    for (; c + 2 * L <= c1; c += 2 * L) {
#if DSV4_FP4_AVX3
      if constexpr (kPrefetchBytes > 0)
        if ((c & 63) == 0) prefetch_stream(wr + c + kPrefetchBytes);
      __m512 w0v, w1v;
      Fp8Decode32(wr + c, w0v, w1v, nan_acc);
      const hn::Vec<DF> w0{w0v}, w1{w1v};
#else
      const auto h0 = hn::And(hn::ShiftLeft<7>(hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(wr + c)))), mask);
      const auto h1 = hn::And(hn::ShiftLeft<7>(hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(wr + c + L)))), mask);
      const auto w0 = hn::PromoteTo(d, hn::BitCast(dh, h0));
      const auto w1 = hn::PromoteTo(d, hn::BitCast(dh, h1));
#endif
      for (int t = 0; t < T; ++t) {
        const float* xc = j.xp + (t0 + t) * j.ldx + c;
#if DSV4_FP4_AVX3
        // One chain per block on AVX-512 (see RowsFp8): the prefill panels' 4 x 4 tiles.
        p[t] = hn::MulAdd(w1, hn::LoadU(d, xc + L), hn::MulAdd(w0, hn::LoadU(d, xc), p[t]));
#else
        p[t] = hn::MulAdd(w0, hn::LoadU(d, xc), p[t]);
        q[t] = hn::MulAdd(w1, hn::LoadU(d, xc + L), q[t]);
#endif
      }
    }
    for (; c + L <= c1; c += L) {
      const auto h0 = hn::And(hn::ShiftLeft<7>(hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(wr + c)))), mask);
      const auto w0 = hn::PromoteTo(d, hn::BitCast(dh, h0));
      for (int t = 0; t < T; ++t) p[t] = hn::MulAdd(w0, hn::LoadU(d, j.xp + (t0 + t) * j.ldx + c), p[t]);
    }
#if DSV4_FP4_AVX3
    for (int t = 0; t < T; ++t) acc[t] = hn::MulAdd(p[t], s, acc[t]);
#else
    for (int t = 0; t < T; ++t) acc[t] = hn::MulAdd(hn::Add(p[t], q[t]), s, acc[t]);
#endif
    if (c < c1) {  // fewer than L columns left in the last block
      const float es = e8m0_to_f32(sr[b]);
      for (; c < c1; ++c) {
        const float wv = e4m3_to_f32(wr[c]) * es;
        for (int t = 0; t < T; ++t) tail[t] = std::fma(wv, j.xp[(t0 + t) * j.ldx + c], tail[t]);
      }
    }
  }
#if DSV4_FP4_AVX3
  if (Fp8AnyNaN(nan_acc)) {
    exact_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
#endif
  for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r] = Sum(d, acc[t]) + tail[t];
}
#endif  // DSV4_FP4_AVX2

#if DSV4_FP4_AVX3
// Whether blocks b and b + 1 of all R rows are flagged all-normal.
template <int R>
HWY_INLINE bool Fp8BlocksNormal(const uint64_t* normal, const uint64_t row_bit[R], int64_t b) {
  bool all = true;
  for (int k = 0; k < R; ++k)
    all &= fp8_normal_test(normal, row_bit[k] + uint64_t(b)) && fp8_normal_test(normal, row_bit[k] + uint64_t(b) + 1);
  return all;
}

// Decode of blocks b and b + 1 of R all-normal rows: RowsFp8's arithmetic (per row and
// block one chain of eight multiply-adds from zero, then acc += chain x scale, blocks in
// order), with the 2R chains interleaved. A chain is eight dependent FMAs (about 32
// cycles) per 128 weights; one block at a time, the decode waited on them. kernels_bench
// --only fp8 --numerics exact, one Zen 5 core, [128, 4096] from L2: 26 GB/s before
// Fp8DecodeNormal16, 32 with it, 40 with the pairs. Two threads streaming from memory
// measured the same within the host's noise (FP8 groups of decode 32-44 GB/s either way):
// there the memory, not the core, sets the pace on this machine.
template <int R>
HWY_INLINE void Fp8NormalBlockPair(const uint8_t* const wr[R], const float* xt, const uint8_t* const sr[R], int64_t b,
                                   int64_t pf, __m512 acc[R][1]) {
  __m512 p[2][R];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < R; ++k) {
      p[h][k] = _mm512_setzero_ps();
      prefetch_stream(wr[k] + (b + h) * 128 + pf);
      prefetch_stream(wr[k] + (b + h) * 128 + 64 + pf);
    }
  for (int i = 0; i < 4; ++i)
    for (int h = 0; h < 2; ++h) {
      const int64_t c = (b + h) * 128 + 32 * i;
      const __m512 x0 = _mm512_load_ps(xt + c), x1 = _mm512_load_ps(xt + c + 16);
      for (int k = 0; k < R; ++k) {
        const __m512 w0 = Fp8DecodeNormal16(wr[k] + c), w1 = Fp8DecodeNormal16(wr[k] + c + 16);
        p[h][k] = _mm512_fmadd_ps(w1, x1, _mm512_fmadd_ps(w0, x0, p[h][k]));
      }
    }
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < R; ++k)
      acc[k][0] = _mm512_fmadd_ps(p[h][k], _mm512_set1_ps(std::bit_cast<float>(uint32_t(sr[k][b + h] + 8) << 23)),
                                  acc[k][0]);
}

// R rows x T tokens, AVX-512. Decode (T = 1, two rows apart): R weight streams in flight
// and each activation vector loaded once for all R rows. Prefill (two rows x up to four
// tokens): each decoded weight vector serves T tokens and each activation vector two
// rows, where one row at a time was bound by its activation loads (kernels_bench exact
// FP8, 512 tokens: 132 -> 156-222 GFLOP/s). Per (row, token) and 128-column block one
// multiply-add chain over the block's eight weight vectors, from zero, then acc += chain x
// scale: one register per (row, token) lets the prefill panels run 4 x 4 tiles (two
// chains per block, even and odd vectors, allowed only 2 x 4: 0.72 of the FMA peak in L1
// against 0.88 for 4 x 4, one Zen 5 core; decode, whose blocks' chains overlap, read
// 0-5% slower). Per (row, token) the arithmetic is RowFp8<T>'s in the same order, so
// results are bit-identical to it. Returns false (nothing written) where a row
// needs RowFp8's other paths: a scale outside the fast range, a NaN code, or a width
// that is not whole 128-column blocks.
template <int R, int T>
HWY_INLINE bool RowsFp8(const Job& j, int64_t r, int64_t t0, int64_t rs = 1) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  if (n % 128 != 0) return false;
  const int64_t nb = n / 128;
  const uint8_t* wr[R];
  const uint8_t* sr[R];
  for (int k = 0; k < R; ++k) {
    wr[k] = w.data + (r + k * rs) * n;
    sr[k] = w.scale + ((r + k * rs + w.row_offset) / 128) * nb;
    if (!j.fp8_scales_ok && !scales_in_range(sr[k], nb, 1, kFp8MaxScale)) return false;
  }
  const float* xt = j.xp + t0 * j.ldx;
  const int64_t pf = prefetch_distance(R, n, rs);
  // Decode: pairs of blocks the loader flagged all-normal in every row take
  // Fp8NormalBlockPair; the rest (a block with a zero, subnormal or NaN code, an odd last
  // block, no flags) the decode below.
  const uint64_t* normal = T == 1 ? w.fp8_normal : nullptr;
  uint64_t row_bit[R] = {};
  if (normal != nullptr)
    for (int k = 0; k < R; ++k) row_bit[k] = fp8_normal_bit(w, r + k * rs + w.row_offset, 0);
  __m512i nan_acc = _mm512_setzero_si512();
  __m512 acc[R][T];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (T == 1) {
      if (normal != nullptr && b + 1 < nb && Fp8BlocksNormal<R>(normal, row_bit, b)) {
        Fp8NormalBlockPair<R>(wr, xt, sr, b, pf, acc);
        ++b;
        continue;
      }
    }
    __m512 p[R][T];  // one chain per (row, token) and block
    for (int k = 0; k < R; ++k)
      for (int t = 0; t < T; ++t) p[k][t] = _mm512_setzero_ps();
    if constexpr (T == 1) {
      // Decode: a row's whole 128-byte block (two adjacent lines) before the next row, as
      // RowsBf16 reads the LM head; the same order per row. 32 bytes of each row per
      // step streamed 41-43 GB/s, 128 bytes 46-48 (kernels_bench --only fp8 --numerics
      // exact, 2 threads, alternating runs).
      __m512 xv[8];
      for (int i = 0; i < 8; ++i) xv[i] = _mm512_load_ps(xt + b * 128 + 16 * i);
      for (int k = 0; k < R; ++k) {
        prefetch_stream(wr[k] + b * 128 + pf);
        prefetch_stream(wr[k] + b * 128 + 64 + pf);
        for (int i = 0; i < 4; ++i) {
          __m512 w0, w1;
          Fp8Decode32(wr[k] + b * 128 + 32 * i, w0, w1, nan_acc);
          p[k][0] = _mm512_fmadd_ps(w1, xv[2 * i + 1], _mm512_fmadd_ps(w0, xv[2 * i], p[k][0]));
        }
      }
    } else {
      // Prefill: each decoded weight vector serves T tokens.
      for (int64_t c = b * 128; c < b * 128 + 128; c += 32) {
        __m512 w0[R], w1[R];
        for (int k = 0; k < R; ++k) Fp8Decode32(wr[k] + c, w0[k], w1[k], nan_acc);
        for (int t = 0; t < T; ++t) {
          const __m512 x0 = _mm512_load_ps(xt + t * j.ldx + c), x1 = _mm512_load_ps(xt + t * j.ldx + c + 16);
          for (int k = 0; k < R; ++k) p[k][t] = _mm512_fmadd_ps(w1[k], x1, _mm512_fmadd_ps(w0[k], x0, p[k][t]));
        }
      }
    }
    for (int k = 0; k < R; ++k) {
      const __m512 s = _mm512_set1_ps(std::bit_cast<float>(uint32_t(sr[k][b] + 8) << 23));
      for (int t = 0; t < T; ++t) acc[k][t] = _mm512_fmadd_ps(p[k][t], s, acc[k][t]);
    }
  }
  if (Fp8AnyNaN(nan_acc)) return false;
  const DF d;
  // "+ 0.0f" is RowFp8's empty tail: it keeps -0 sums identical too.
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r + k * rs] = Sum(d, hn::Vec<DF>{acc[k][t]}) + 0.0f;
  return true;
}
#define DSV4_HAVE_ROWS_FP8 1
constexpr int kFp8Rows = 4;  // rows per decode step of RowsFp8

// ------------------------------------------------------- FP8 prefill panels, AVX-512
// Exact FP8 prefill (kFp8PanelMinTokens tokens or more, whole 128-column blocks, every
// scale of the piece in range): the weight vectors of kFp8PanelRows rows x
// kFp8PanelBlocks blocks are decoded once into a panel, and every group of four tokens
// passes over them in tiles of four rows x four tokens (PanelTilesOf): per weight-vector
// position 8 loads for 16 multiply-adds, where RowsFp8<2, 4> took 6 loads and 2 x 8
// decode ops for 8. Per (row, token) the arithmetic is RowsFp8's in its order (per block
// one chain from zero, acc += chain x scale; Sum(acc) + 0 last), so results are
// bit-identical to decode. A row holding a NaN code takes the exact scalar path for
// every token, as RowFp8 does. kernels_bench --only mm, 512 tokens: one Zen 5 thread
// [4096, 4096] 102-110 -> 108-139 GFLOP/s, [4096, 8192] 69-96 -> 123-139; two threads
// [4096, 4096] 186-188 -> 205-206. Below 64 tokens the panels were slower (8 tokens:
// 130-147 against 196-204 GFLOP/s; 32: 156-182 against 197) and RowsFp8 runs.
// 64 rows x 4 blocks (a 128 KiB panel), tokens in groups of 64 (their accumulators, 256
// KiB, stay in L2 with it; all 512 at once: 2 MiB, 5-10% slower); measured no better:
// 32 x 2, 64 x 1, 16 x 8, 128 x 2 (32 tokens), 32 x 4 (128 tokens), 64 x 8, 128 x 4.
constexpr int64_t kFp8PanelRows = 64;
constexpr int64_t kFp8PanelBlocks = 4;
constexpr int64_t kFp8PanelMinTokens = 64;
constexpr int64_t kFp8PanelMinCols = 128;
constexpr int64_t kFp8PanelColStep = 128;  // whole blocks (other widths: RowFp8)
constexpr int64_t kFp8PanelTokens = 64;
constexpr int kFp8PanelTileRows = 4, kFp8PanelTileTokens = 4;

struct Fp8Panel {
  __m512 w[kFp8PanelRows][kFp8PanelBlocks][8];  // a block's 128 weights x 2^-8, 16 columns a vector
  float s[kFp8PanelRows][kFp8PanelBlocks];      // its scale x 2^8: 2^(e-127+8)
  bool nan[kFp8PanelRows];                      // a NaN code in the row
};

// Rows [r, r + nr) of the panel, blocks [b0, b0 + nbk) of the weight; the rows' nan
// flags accumulate over the blocks.
HWY_INLINE void DecodeFp8Panel(const Job& j, int64_t r, int64_t nr, int64_t b0, int64_t nbk, Fp8Panel& panel) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in, nb = n / 128;
  for (int64_t a = 0; a < nr; ++a) {
    const uint8_t* wr = w.data + (r + a) * n;
    const uint8_t* sr = w.scale + ((r + a + w.row_offset) / 128) * nb;
    // The row's next slice, or the same row of the next panel, while the tiles work.
    if (b0 + nbk < nb) prefetch_lines(wr + (b0 + nbk) * 128, (std::min(nb, b0 + 2 * nbk) - b0 - nbk) * 128);
    else if (r + a + kFp8PanelRows < w.n_out) prefetch_lines(wr + kFp8PanelRows * n, std::min(nb, kFp8PanelBlocks) * 128);
    __m512i nan_acc = _mm512_setzero_si512();
    for (int64_t k = 0; k < nbk; ++k) {
      for (int i = 0; i < 4; ++i)
        Fp8Decode32(wr + (b0 + k) * 128 + 32 * i, panel.w[a][k][2 * i], panel.w[a][k][2 * i + 1], nan_acc);
      panel.s[a][k] = std::bit_cast<float>(uint32_t(sr[b0 + k] + 8) << 23);
    }
    if (Fp8AnyNaN(nan_acc)) panel.nan[a] = true;
  }
}

// R panel rows from a x T tokens (activation rows xt) over the panel's nbk blocks, the
// first at column c0; acc[u] points at token u's accumulator of panel row a. The R x T
// chains take 16 registers at 4 x 4; the accumulators pass through L1 once per block.
template <int R, int T>
HWY_INLINE void Fp8PanelTile(const Fp8Panel& panel, int64_t a, const float* const xt[T], int64_t c0, int64_t nbk,
                             __m512* const acc[T]) {
  for (int64_t k = 0; k < nbk; ++k) {
    const int64_t c = c0 + 128 * k;
    __m512 p[R][T];
    for (int b = 0; b < R; ++b)
      for (int t = 0; t < T; ++t) p[b][t] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int v = 0; v < 8; ++v) {
      __m512 wv[R];
      for (int b = 0; b < R; ++b) wv[b] = panel.w[a + b][k][v];
      for (int t = 0; t < T; ++t) {
        const __m512 xv = _mm512_load_ps(xt[t] + c + 16 * v);
        for (int b = 0; b < R; ++b) p[b][t] = _mm512_fmadd_ps(wv[b], xv, p[b][t]);
      }
    }
    for (int b = 0; b < R; ++b) {
      const __m512 s = _mm512_set1_ps(panel.s[a + b][k]);
      for (int t = 0; t < T; ++t) acc[t][b] = _mm512_fmadd_ps(p[b][t], s, acc[t][b]);
    }
  }
}

// Rows [r0, r1) of an FP8 product for every token; every scale of the piece is in range
// and the rows are whole 128-column blocks. Tokens pass in groups of kFp8PanelTokens, each
// decoding the panels again, so that a group's accumulators stay in L2.
void RowsFp8Panels(const Job& j, int64_t r0, int64_t r1) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in, nb = n / 128;
  thread_local ScratchBuffer<Fp8Panel> panel_buf;
  thread_local ScratchBuffer<__m512> acc_buf;
  Fp8Panel& panel = *panel_buf.get(1);
  __m512* accs = acc_buf.get(kFp8PanelTokens * kFp8PanelRows);  // [tokens][kFp8PanelRows]
  const DF d;
  for (int64_t rb = r0; rb < r1; rb += kFp8PanelRows) {
    const int64_t nr = std::min(kFp8PanelRows, r1 - rb);
    for (int64_t a = 0; a < nr; ++a) panel.nan[a] = false;
    for (int64_t tg = 0; tg < j.n_tok; tg += kFp8PanelTokens) {
      Job jt = j;  // the group's tokens
      jt.n_tok = std::min(kFp8PanelTokens, j.n_tok - tg);
      jt.xp = j.xp + tg * j.ldx;
      for (int64_t i = 0; i < jt.n_tok * kFp8PanelRows; ++i) accs[i] = _mm512_setzero_ps();
      for (int64_t b0 = 0; b0 < nb; b0 += kFp8PanelBlocks) {
        const int64_t nbk = std::min(kFp8PanelBlocks, nb - b0);
        DecodeFp8Panel(j, rb, nr, b0, nbk, panel);
        PanelTilesOf<kFp8PanelTileRows, kFp8PanelTileTokens>(
            jt, nr, kFp8PanelRows, accs,
            [&](auto rows, auto tokens, int64_t a, const float* const* xt, __m512* const* acc) HWY_ATTR {
              Fp8PanelTile<decltype(rows)::value, decltype(tokens)::value>(panel, a, xt, b0 * 128, nbk, acc);
            });
      }
      for (int64_t t = 0; t < jt.n_tok; ++t)  // token-major: a token's rows share lines of y
        for (int64_t a = 0; a < nr; ++a)
          if (!panel.nan[a]) j.y[(tg + t) * w.n_out + rb + a] = Sum(d, hn::Vec<DF>{accs[t * kFp8PanelRows + a]}) + 0.0f;
    }
    for (int64_t a = 0; a < nr; ++a)
      if (panel.nan[a]) exact_scalar_row(w, rb + a, j.x, 0, j.n_tok, j.y);
  }
}
#define DSV4_HAVE_FP8_PANELS 1
#endif

// ------------------------------------------------------------------------------- FP4
#if DSV4_FP4_AVX3
constexpr int64_t kFp4Chunk = 128;  // 16 u32 lanes x 8 nibbles
#elif DSV4_FP4_AVX2
constexpr int64_t kFp4Chunk = 64;   // 8 u32 lanes x 8 nibbles
#else
constexpr int64_t kFp4Chunk = 0;    // no vector FP4 decode on this target: exact rows
#endif

// xp, AVX-512: per chunk of 128 columns, vector k (k < 8) holds columns 8j+k.
// xp, AVX2: per chunk of 64 columns, eight vectors [E0, O0, E1, O1, E2, O2, E3, O3]:
// Ep holds even columns, Op the odd column after each, in the order in which RowFp4's
// byte lookups come out (below). The tail is plain.
void PrepFp4(const float* x, int64_t n, float* xp) {
  int64_t c = 0;
  if constexpr (DSV4_FP4_AVX2 != 0) {
    // Vector i (0..7) of a chunk, lane l: byte b = 16 (l / 4) + 8 (i / 4) + 2 (l % 4) +
    // (i / 2) % 2 of the chunk, its low nibble (column 2b) for even i, its high nibble
    // (2b + 1) for odd i.
    for (; c + kFp4Chunk <= n; c += kFp4Chunk)
      for (int64_t i = 0; i < 8; ++i)
        for (int64_t l = 0; l < 8; ++l)
          xp[c + 8 * i + l] = x[c + 2 * (16 * (l / 4) + 8 * (i / 4) + 2 * (l % 4) + (i / 2) % 2) + i % 2];
  } else if constexpr (kFp4Chunk > 0) {
    constexpr int64_t L = kFp4Chunk / 8;
    for (; c + kFp4Chunk <= n; c += kFp4Chunk)
      for (int64_t k = 0; k < 8; ++k)
        for (int64_t jj = 0; jj < L; ++jj) xp[c + k * L + jj] = x[c + 8 * jj + k];
  }
  for (; c < n; ++c) xp[c] = x[c];
}

// Columns [c, n) of an FP4 row (whole 32-column blocks), scalar, plain activations.
template <int T>
HWY_INLINE void Fp4Tail(const Job& j, const uint8_t* wr, const uint8_t* sr, int64_t c,
                        int64_t t0, float* out) {
  const int64_t n = j.w->n_in;
  for (; c < n; c += 2) {
    const float s = e8m0_to_f32(sr[c / 32]);
    const float w0 = kE2M1Values[wr[c / 2] & 0xF] * s, w1 = kE2M1Values[wr[c / 2] >> 4] * s;
    for (int t = 0; t < T; ++t) {
      const float* xt = j.xp + (t0 + t) * j.ldx;
      out[t] = std::fma(w1, xt[c + 1], std::fma(w0, xt[c], out[t]));
    }
  }
}

#if DSV4_FP4_AVX3
// Scale vectors of an FP4 row: 16 E8M0 bytes (four chunks) are widened to dwords and
// shifted into the fp32 exponent once, and each chunk picks its four block scales (lane
// j <- block j/4) with one lane permute. The range check (bytes outside [1, max] need
// the exact path) is two masked compares per four chunks.
struct Fp4Scales {
  const uint8_t* sr;
  int64_t nc;
  __m512 g = _mm512_setzero_ps();
  __mmask16 bad = 0;

  HWY_INLINE __m512 get(int64_t c) {
    alignas(64) static constexpr int32_t kIdx[4][16] = {
        {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
        {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
        {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
        {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};
    if ((c & 3) == 0) {
      const int64_t nbytes = std::min<int64_t>(16, (nc - c) * 4);
      const __mmask16 valid = __mmask16((1u << nbytes) - 1u);
      const __m128i b = nbytes == 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(sr + c * 4))
                                     : _mm_maskz_loadu_epi8(valid, sr + c * 4);
      const __m512i d = _mm512_cvtepu8_epi32(b);
      bad |= __mmask16(_mm512_mask_cmp_epu32_mask(valid, d, _mm512_set1_epi32(1), _MM_CMPINT_LT) |
                       _mm512_mask_cmp_epu32_mask(valid, d, _mm512_set1_epi32(kFp4MaxScale), _MM_CMPINT_NLE));
      g = _mm512_castsi512_ps(_mm512_slli_epi32(d, 23));
    }
    return _mm512_permutexvar_ps(_mm512_load_si512(kIdx[c & 3]), g);
  }
};
#endif

#if DSV4_FP4_AVX2 || DSV4_FP4_AVX3
// Codes and scales of FP4 row r, and whether every scale suits the fast kernels (bytes
// outside [1, kFp4MaxScale] send the row to a scalar path): known for the whole piece
// when Rows found its scales in range, else checked for the row.
struct Fp4RowPtrs {
  const uint8_t* wr;
  const uint8_t* sr;
  bool fast;
};
HWY_INLINE Fp4RowPtrs Fp4Row(const Job& j, int64_t r) {
  const WeightView& w = *j.w;
  const uint8_t* sr = w.scale + r * (w.n_in / 32);
  return {w.data + r * (w.n_in / 2), sr, j.fp4_scales_ok || scales_in_range(sr, w.n_in / 32, 1, kFp4MaxScale)};
}

// Scale vectors of an FP4 row for the 256-bit kernels (chunks of 64 columns, two scale
// blocks each): eight E8M0 bytes (four chunks) are widened to dwords and shifted into the
// fp32 exponent once, and each chunk picks its two block scales (lanes 0-3 <- block A,
// 4-7 <- block B) with one lane permute. Bytes outside [1, kFp4MaxScale] must have sent
// the row to a scalar path before.
struct Fp4Avx2Scales {
  const uint8_t* sr;
  int64_t nc;                       // chunks in the row
  __m256 g = _mm256_setzero_ps();  // 2^(e-127) of four chunks' eight scale bytes

  // Call for c = 0, 1, 2, ... in order.
  HWY_INLINE __m256 get(int64_t c) {
    if ((c & 3) == 0) {
      uint64_t b8 = 0;
      if (nc - c >= 4)
        std::memcpy(&b8, sr + 2 * c, 8);
      else
        for (int64_t i = 0; i < 2 * (nc - c); ++i) b8 |= uint64_t(sr[2 * c + i]) << (8 * i);
      g = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(b8))), 23));
    }
    alignas(32) static constexpr int32_t kPick[4][8] = {{0, 0, 0, 0, 1, 1, 1, 1}, {2, 2, 2, 2, 3, 3, 3, 3},
                                                        {4, 4, 4, 4, 5, 5, 5, 5}, {6, 6, 6, 6, 7, 7, 7, 7}};
    return _mm256_permutevar8x32_ps(g, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPick[c & 3])));
  }
};
#endif

#if DSV4_FP4_AVX3
// One nibble position k of a chunk: 16 weights (columns 8j+k), unscaled.
#define DSV4_NIB(k) _mm512_permutexvar_ps((k) == 0 ? v : _mm512_srli_epi32(v, 4 * (k)), lut)

template <int T>
HWY_INLINE void RowFp4(const Job& j, int64_t r, int64_t t0) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const uint8_t* wr = w.data + r * (n / 2);
  const uint8_t* sr = w.scale + r * (n / 32);
  const __m512 lut = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f,
                                    -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f);
  const int64_t nc = n / 128;
  Fp4Scales sc{sr, nc};
  __m512 acc[T], acc2[T];
  for (int t = 0; t < T; ++t) acc[t] = acc2[t] = _mm512_setzero_ps();
  // Hardware prefetchers stop at 4 KiB pages; stream the weights ahead explicitly (the
  // next rows follow this one contiguously, so running past the row end is useful).
  prefetch_lines(sr + kPrefetchScaleRows * (n / 32), n / 32);
  for (int64_t c = 0; c < nc; ++c) {
    if constexpr (kPrefetchBytes > 0) prefetch_stream(wr + c * 64 + kPrefetchBytes);
    if constexpr (kPrefetchL1Bytes > 0) _mm_prefetch(reinterpret_cast<const char*>(wr + c * 64 + kPrefetchL1Bytes), _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(wr + c * 64);
    const __m512 s = sc.get(c);
    const float* xc = j.xp + t0 * j.ldx + c * 128;
    if constexpr (T == 1) {
      // One chain per chunk: the FMA pipes are the bottleneck (8 product FMAs + 1 scale
      // FMA per 128 weights); a second accumulator chain measured ~50% slower on Zen 5.
      __m512 pa = _mm512_mul_ps(DSV4_NIB(0), _mm512_loadu_ps(xc));
      pa = _mm512_fmadd_ps(DSV4_NIB(1), _mm512_loadu_ps(xc + 16), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(2), _mm512_loadu_ps(xc + 32), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(3), _mm512_loadu_ps(xc + 48), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(4), _mm512_loadu_ps(xc + 64), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(5), _mm512_loadu_ps(xc + 80), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(6), _mm512_loadu_ps(xc + 96), pa);
      pa = _mm512_fmadd_ps(DSV4_NIB(7), _mm512_loadu_ps(xc + 112), pa);
      acc[0] = _mm512_fmadd_ps(pa, s, acc[0]);
    } else {
      __m512 p[T];
      {
        const __m512 wk = DSV4_NIB(0);
        for (int t = 0; t < T; ++t) p[t] = _mm512_mul_ps(wk, _mm512_loadu_ps(xc + t * j.ldx));
      }
#define DSV4_STEP(k)                                                                   \
  {                                                                                    \
    const __m512 wk = DSV4_NIB(k);                                                     \
    for (int t = 0; t < T; ++t)                                                        \
      p[t] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(xc + t * j.ldx + 16 * (k)), p[t]);    \
  }
      DSV4_STEP(1) DSV4_STEP(2) DSV4_STEP(3) DSV4_STEP(4) DSV4_STEP(5) DSV4_STEP(6) DSV4_STEP(7)
#undef DSV4_STEP
      for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(p[t], s, acc[t]);
    }
  }
  if (sc.bad != 0 || !scales_in_range(sr + nc * 4, n / 32 - nc * 4, 1, kFp4MaxScale)) {
    exact_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
  float out[T];
  for (int t = 0; t < T; ++t) out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], acc2[t]));
  if (nc * 128 < n) Fp4Tail<T>(j, wr, sr, nc * 128, t0, out);
  for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r] = out[t];
}
#undef DSV4_NIB

// Two rows, one token: every activation vector loaded from L1 serves both rows (the x
// loads, 8 per 64 weight bytes, otherwise compete with the weight stream). Returns false
// (nothing written) when a scale of either row needs the exact path.
template <int T>
HWY_INLINE bool Row2Fp4(const Job& j, int64_t r, int64_t t0, int64_t rs = 1) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const uint8_t* wr = w.data + r * (n / 2);
  const uint8_t* wr2 = wr + rs * (n / 2);
  const uint8_t* sr = w.scale + r * (n / 32);
  const uint8_t* sr2 = sr + rs * (n / 32);
  const __m512 lut = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f,
                                    -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f);
  const int64_t nc = n / 128;
  Fp4Scales sc{sr, nc}, sc2{sr2, nc};
  const int64_t pf = prefetch_distance(2, n / 2, rs);
  __m512 acc[T], acc2[T];
  for (int t = 0; t < T; ++t) acc[t] = acc2[t] = _mm512_setzero_ps();
  if (T == 1) {
    prefetch_lines(sr + kPrefetchScaleRows * (n / 32), n / 32);
    prefetch_lines(sr2 + kPrefetchScaleRows * (n / 32), n / 32);
  }
  for (int64_t c = 0; c < nc; ++c) {
    if (T == 1) {  // decode streams from memory; a prefill tile's rows are in cache
      prefetch_stream(wr + c * 64 + pf);
      prefetch_stream(wr2 + c * 64 + pf);
    }
    const __m512i v = _mm512_loadu_si512(wr + c * 64);
    const __m512i v2 = _mm512_loadu_si512(wr2 + c * 64);
    const __m512 s = sc.get(c), s2 = sc2.get(c);
    const float* xc = j.xp + t0 * j.ldx + c * 128;
    __m512 pa[T], pb[T];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512 wa = _mm512_permutexvar_ps(k == 0 ? v : _mm512_srli_epi32(v, 4 * k), lut);
      const __m512 wb = _mm512_permutexvar_ps(k == 0 ? v2 : _mm512_srli_epi32(v2, 4 * k), lut);
      for (int t = 0; t < T; ++t) {
        const __m512 xk = _mm512_load_ps(xc + t * j.ldx + 16 * k);
        pa[t] = k == 0 ? _mm512_mul_ps(wa, xk) : _mm512_fmadd_ps(wa, xk, pa[t]);
        pb[t] = k == 0 ? _mm512_mul_ps(wb, xk) : _mm512_fmadd_ps(wb, xk, pb[t]);
      }
    }
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm512_fmadd_ps(pa[t], s, acc[t]);
      acc2[t] = _mm512_fmadd_ps(pb[t], s2, acc2[t]);
    }
  }
  if ((sc.bad | sc2.bad) != 0 || !scales_in_range(sr + nc * 4, n / 32 - nc * 4, 1, kFp4MaxScale) ||
      !scales_in_range(sr2 + nc * 4, n / 32 - nc * 4, 1, kFp4MaxScale))
    return false;
  // RowFp4<T>'s reduction (its second accumulator is always zero), in unrolled loops.
  float out[T], out2[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], _mm512_setzero_ps()));
    out2[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc2[t], _mm512_setzero_ps()));
  }
  if (nc * 128 < n) {
    Fp4Tail<T>(j, wr, sr, nc * 128, t0, out);
    Fp4Tail<T>(j, wr2, sr2, nc * 128, t0, out2);
  }
  for (int t = 0; t < T; ++t) {
    j.y[(t0 + t) * w.n_out + r] = out[t];
    j.y[(t0 + t) * w.n_out + r + rs] = out2[t];
  }
  return true;
}
#define DSV4_HAVE_ROW2_FP4 1

#elif DSV4_FP4_AVX2
// AVX2: one 32-byte load holds a chunk of 64 columns, the two scale blocks of the chunk in
// its two 128-bit halves. The low and high nibbles of every byte look up the high and low
// bytes of their bf16 weight (exact) with four byte shuffles; byte unpacks make the bf16
// words, and a word in the top half of a float lane is the weight as an fp32: << 16 puts
// the even words there, & 0xFFFF0000 keeps the odd ones (the mask runs on any vector
// pipe, where word unpacks with zero took the two shuffle pipes of Zen 3 that the
// lookups and byte unpacks already load). Every step stays within a 128-bit half, so
// each of the eight weight vectors holds block A in lanes 0-3 and block B in lanes 4-7
// (see PrepFp4), and one FMA with [2^(a-127) x4, 2^(b-127) x4] scales the chunk.
struct Fp4Avx2Tables {
  __m256i hi, lo, low4;
  HWY_INLINE Fp4Avx2Tables()
      : hi(_mm256_setr_epi8(0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, char(0x80), char(0xBF), char(0xBF),
                            char(0xBF), char(0xC0), char(0xC0), char(0xC0), char(0xC0), 0x00, 0x3F, 0x3F, 0x3F, 0x40,
                            0x40, 0x40, 0x40, char(0x80), char(0xBF), char(0xBF), char(0xBF), char(0xC0), char(0xC0),
                            char(0xC0), char(0xC0))),
        lo(_mm256_setr_epi8(0x00, 0x00, char(0x80), char(0xC0), 0x00, 0x40, char(0x80), char(0xC0), 0x00, 0x00,
                            char(0x80), char(0xC0), 0x00, 0x40, char(0x80), char(0xC0), 0x00, 0x00, char(0x80),
                            char(0xC0), 0x00, 0x40, char(0x80), char(0xC0), 0x00, 0x00, char(0x80), char(0xC0), 0x00,
                            0x40, char(0x80), char(0xC0))),
        low4(_mm256_set1_epi8(0x0F)) {}
};

// The eight fp32 weight vectors of one chunk, in PrepFp4's order.
HWY_INLINE void Fp4Avx2Weights(const Fp4Avx2Tables& tb, __m256i v, __m256 wv[8]) {
  // High nibbles moved down per word as (v & 0xF0F0) * 2^12 >> 16, on the multiplier.
  const __m256i lo = _mm256_and_si256(v, tb.low4),
                hi = _mm256_mulhi_epu16(_mm256_andnot_si256(tb.low4, v), _mm256_set1_epi16(0x1000));
  const __m256i le = _mm256_shuffle_epi8(tb.lo, lo), he = _mm256_shuffle_epi8(tb.hi, lo);  // even columns
  const __m256i lo_ = _mm256_shuffle_epi8(tb.lo, hi), ho = _mm256_shuffle_epi8(tb.hi, hi);  // odd columns
  const __m256i e1 = _mm256_unpacklo_epi8(le, he), e2 = _mm256_unpackhi_epi8(le, he);  // bf16 words
  const __m256i o1 = _mm256_unpacklo_epi8(lo_, ho), o2 = _mm256_unpackhi_epi8(lo_, ho);
  const __m256i top = _mm256_set1_epi32(int32_t(0xFFFF0000u));
  wv[0] = _mm256_castsi256_ps(_mm256_slli_epi32(e1, 16));
  wv[1] = _mm256_castsi256_ps(_mm256_slli_epi32(o1, 16));
  wv[2] = _mm256_castsi256_ps(_mm256_and_si256(e1, top));
  wv[3] = _mm256_castsi256_ps(_mm256_and_si256(o1, top));
  wv[4] = _mm256_castsi256_ps(_mm256_slli_epi32(e2, 16));
  wv[5] = _mm256_castsi256_ps(_mm256_slli_epi32(o2, 16));
  wv[6] = _mm256_castsi256_ps(_mm256_and_si256(e2, top));
  wv[7] = _mm256_castsi256_ps(_mm256_and_si256(o2, top));
}

template <int T>
HWY_INLINE void RowFp4(const Job& j, int64_t r, int64_t t0) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const auto [wr, sr, fast] = Fp4Row(j, r);
  if (!fast) {
    exact_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
  const Fp4Avx2Tables tb;
  const int64_t nc = n / 64;
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  prefetch_lines(sr + kPrefetchScaleRows * (n / 32), n / 32);
  Fp4Avx2Scales scales{sr, nc};
  for (int64_t c = 0; c < nc; ++c) {
    if ((c & 1) == 0) prefetch_stream(wr + c * 32 + kPrefetchBytes);
    const __m256 s = scales.get(c);
    __m256 wv[8];
    Fp4Avx2Weights(tb, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + c * 32)), wv);
    for (int t = 0; t < T; ++t) {  // one order per token for every n_tok (batch invariance)
      // One chain of eight multiply-adds per chunk, started afresh in every chunk, so the
      // chains of consecutive chunks overlap. Two chains per chunk decode a little faster
      // (L1-resident, one Zen 3 core: 9.9-10.0 cycles per chunk against 9.9-10.4;
      // `kernels_bench --only fp4`, best of 4-6: one thread 8.1 against 7.6 GB/s, two
      // 15.5 against 14.8) but cost the prefill panels more: summed first, both chains of
      // every (row, token) must sit in registers (2 x 2 tiles, 0.54 of the FMA peak
      // L1-resident against 0.62 for 3 x 3); scaled into acc one by one, acc goes through
      // memory twice per chunk (3 x 3 tiles, one thread: 52 against 64 GFLOP/s).
      const float* xc = j.xp + (t0 + t) * j.ldx + c * 64;
      __m256 p = _mm256_mul_ps(wv[0], _mm256_load_ps(xc));
      for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(wv[i], _mm256_load_ps(xc + 8 * i), p);
      acc[t] = _mm256_fmadd_ps(p, s, acc[t]);
    }
  }
  const DF d;
  float out[T];
  for (int t = 0; t < T; ++t) out[t] = Sum(d, hn::Vec<DF>{acc[t]});
  if (nc * 64 < n) Fp4Tail<T>(j, wr, sr, nc * 64, t0, out);
  for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r] = out[t];
}

// ------------------------------------------------------------------ FP4 prefill panels
// Prefill of FP4 rows on AVX2 (kFp4PanelMinTokens tokens or more). RowFp4<T> decodes a
// row again for every tile of four tokens, and GCC spills its tile: ~0.43 of the FMA peak.
// Here the weight vectors of kFp4PanelRows rows x kFp4PanelChunks chunks are decoded once
// into a panel (L1), and every token triple passes over it, three rows x three tokens per
// step: per weight-vector position three weight and three activation loads for nine
// multiply-adds, one chain per (row, token) (15 vector registers). Each (row, token) runs
// RowFp4's arithmetic in RowFp4's order (a fresh chain per chunk, then acc, which is
// parked in memory between chunks: that does not round), so results are bit-identical to
// the decode kernel and batch invariance holds. With RowFp4's earlier two chains per
// chunk only 2 x 2 tiles fit the 16 registers (L1-resident, one Zen 3 core: 0.54 of the
// FMA peak against 0.62 for 3 x 3).
// RowFp4<T> stays where it is as fast or faster: fewer than 6 tokens, where the panel's
// decode and stores are not repaid (one Zen 3 thread, `kernels_bench --only mm
// --mm-shape ...`: [2048, 4096] x 4 tokens 43 vs 44 GFLOP/s, x 6 49 vs 44, x 8 53 vs 55;
// [4096, 2048] x 12 59 vs 54, x 512 66 vs 54; [4096, 1024] x 512 61 vs 56; [4096, 512] x
// 64 57 vs 54).
constexpr int64_t kFp4PanelRows = 24;
constexpr int64_t kFp4PanelRowsFewTokens = 12;
constexpr int64_t kFp4PanelChunks = 4;
constexpr int64_t kFp4PanelMinTokens = 6;
constexpr int64_t kFp4PanelMinCols = 128;

struct Fp4Panel {
  __m256 w[kFp4PanelRows][kFp4PanelChunks][8];  // Fp4Avx2Weights of each (row, chunk)
  __m256 s[kFp4PanelRows][kFp4PanelChunks];     // its scale vector
};

// Rows [r, r + nr) of the panel, chunks [c0, c0 + nck) of the weight; the next panel
// starts step rows further.
HWY_INLINE void DecodeFp4Panel(const Job& j, const Fp4Avx2Tables& tb, int64_t r, int64_t nr, int64_t step,
                               int64_t c0, int64_t nck, Fp4Panel& panel) {
  const int64_t nc = j.w->n_in / 64;
  for (int64_t a = 0; a < nr; ++a) {
    const Fp4RowPtrs row = Fp4Row(j, r + a);  // the caller checked the scales of the piece
    // The row's next slice (or, after its last one, the same row of the next panel) is
    // fetched while the tiles work: 16 rows of 256-byte bursts left the hardware
    // prefetchers behind when the weights come from memory (experts of 12 tokens, cold).
    if (c0 + nck < nc) prefetch_lines(row.wr + (c0 + nck) * 32, nck * 32);
    else if (r + a + step < j.w->n_out) prefetch_lines(row.wr + step * j.w->row_bytes(), kFp4PanelChunks * 32);
    if (c0 == 0) prefetch_lines(row.sr, j.w->n_in / 32);
    Fp4Avx2Scales scales{row.sr, nc};
    for (int64_t k = 0; k < nck; ++k) {
      panel.s[a][k] = scales.get(c0 + k);
      Fp4Avx2Weights(tb, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row.wr + (c0 + k) * 32)),
                     panel.w[a][k]);
    }
  }
}

// R panel rows from a x T tokens (activation rows xt) over chunks [c0, c0 + nck): RowFp4's
// per-chunk arithmetic; acc[u] points at token u's accumulator of panel row a.
template <int R, int T>
HWY_INLINE void Fp4PanelStep(const Fp4Panel& panel, int64_t a, const float* const xt[T], int64_t c0, int64_t nck,
                             __m256* const acc[T]) {
  for (int64_t k = 0; k < nck; ++k) {
    const int64_t c = c0 + k;
    __m256 p[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      __m256 wv[R], xv[T];
      for (int b = 0; b < R; ++b) {
        wv[b] = panel.w[a + b][k][i];
        KeepInRegister(wv[b]);
      }
      for (int t = 0; t < T; ++t) {
        xv[t] = _mm256_load_ps(xt[t] + c * 64 + 8 * i);
        KeepInRegister(xv[t]);
      }
      for (int b = 0; b < R; ++b)
        for (int t = 0; t < T; ++t)
          p[b][t] = i == 0 ? _mm256_mul_ps(wv[b], xv[t]) : _mm256_fmadd_ps(wv[b], xv[t], p[b][t]);
    }
    for (int b = 0; b < R; ++b)
      for (int t = 0; t < T; ++t) acc[t][b] = _mm256_fmadd_ps(p[b][t], panel.s[a + b][k], acc[t][b]);
  }
}

// Rows [r0, r1) of an FP4 product for every token; every scale of the piece is in range.
void RowsFp4Panels(const Job& j, int64_t r0, int64_t r1) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in, nc = n / 64;
  thread_local ScratchBuffer<Fp4Panel> panel_buf;
  thread_local ScratchBuffer<__m256> acc_buf;
  Fp4Panel& panel = *panel_buf.get(1);
  __m256* accs = acc_buf.get(j.n_tok * kFp4PanelRows);  // [n_tok][kFp4PanelRows]
  const Fp4Avx2Tables tb;
  const DF d;
  const int64_t panel_rows = j.n_tok >= 64 ? kFp4PanelRows : kFp4PanelRowsFewTokens;
  for (int64_t rb = r0; rb < r1; rb += panel_rows) {
    const int64_t nr = std::min(panel_rows, r1 - rb);
    for (int64_t i = 0; i < j.n_tok * kFp4PanelRows; ++i) accs[i] = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < nc; c0 += kFp4PanelChunks) {
      const int64_t nck = std::min(kFp4PanelChunks, nc - c0);
      DecodeFp4Panel(j, tb, rb, nr, panel_rows, c0, nck, panel);
      PanelTilesOf<kPanelTileRows, kPanelTileTokens>(
          j, nr, kFp4PanelRows, accs, [&](auto rows, auto tokens, int64_t a, const float* const* xt, __m256* const* acc)
                                          HWY_ATTR {
            Fp4PanelStep<decltype(rows)::value, decltype(tokens)::value>(panel, a, xt, c0, nck, acc);
          });
    }
    for (int64_t t = 0; t < j.n_tok; ++t)  // token-major: a token's rows share lines of y
      for (int64_t a = 0; a < nr; ++a) {
        float out = Sum(d, hn::Vec<DF>{accs[t * kFp4PanelRows + a]});
        if (nc * 64 < n) {  // RowFp4's tail, per token in its order
          const Fp4RowPtrs row = Fp4Row(j, rb + a);
          Fp4Tail<1>(j, row.wr, row.sr, nc * 64, t, &out);
        }
        j.y[t * w.n_out + rb + a] = out;
      }
  }
}
#define DSV4_HAVE_FP4_PANELS 1

#else
template <int T>
HWY_INLINE void RowFp4(const Job& j, int64_t r, int64_t t0) {
  exact_scalar_row(*j.w, r, j.x, t0, T, j.y);
}
#endif

// ----------------------------------------------------------------------- FP4, int8
// Int8 numerics (ops.h): the FP4 row times activations quantised per 32-column block, with
// byte multiply-adds summed per block in integers, and one float multiply-add per eight
// blocks. On AVX2 (and the AVX-512 targets, which run the same 256-bit code) a group of
// 256 columns (eight blocks, 128 weight bytes) is four 32-byte chunks; chunk k holds
// blocks 2k (bytes 0-15) and 2k+1 (bytes 16-31). Per chunk and token:
//   wl, wh = lookup(low / high nibbles) of twice the E2M1 value plus 12, as unsigned bytes
//            in [0, 24] (VPMADDUBSW multiplies unsigned by signed bytes)
//   p16    = maddubs(wl, q_even) + maddubs(wh, q_odd)   word: 4 columns, |.| <= 4*24*127
//   m      = madd(p16, 1)                                dword: 8 columns, |.| <= 24384
// and per group the four chunks' dwords (which fit in words) are packed and summed in
// pairs again, to one dword per block in the lane order [0 2 4 6 | 1 3 5 7]:
//   P      = hadd(madd(pack(m0, m1), 1), madd(pack(m2, m3), 1)) - K      exact, <= 97536
//   acc   += float(P) * (step * 2^(e-127))
// K = 12 * the block's sum of codes removes the +12 offset; the row's sum is halved at the
// end. That is ~11.5 vector ops per chunk against 15 for a float multiply-add per chunk
// (which also rounded four times per block): L1-resident 4.9 -> 4.0 cycles per chunk on
// Zen 3. The prepared activations of a group (PrepInt8) are 320 bytes,
//   [q_even 32 | q_odd 32] x 4 chunks | K 8 x i32 | step 8 x f32   (K, step in lane order)
// and a last partial group has the same layout, its missing columns with code, K and step
// 0 (the kernel reads its weight bytes into a zeroed copy).
#if DSV4_FP4_AVX2 || DSV4_FP4_AVX3
constexpr int64_t kInt8Group = 256;       // columns per group: eight blocks, four chunks
constexpr int64_t kInt8GroupBytes = 320;  // prepared activation bytes per group
constexpr int kInt8LaneBlock[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // block of each lane of P

int64_t Int8PrepBytes(int64_t n) { return ceil_div(n, kInt8Group) * kInt8GroupBytes; }

// quantize_int8_block (core/dtype.cpp) on vectors, bit for bit: the same maximum, the same
// double products, rounded by VCVTPD2DQ in the current rounding mode as nearbyint rounds
// (|x| * 127 / max|x| <= 127, so the saturating packs never clamp). The libm call per
// value had made the activation prep ~4 ns per column, serial on the calling thread.
HWY_INLINE float QuantizeInt8Block(const float* x, int8_t* q) {
  static_assert(kInt8Block == 32, "four vectors per block");
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 v[4], mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    const __m256 a = _mm256_and_ps(v[i], abs_mask);
    mx = _mm256_max_ps(mx, a);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));  // inf or NaN
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
  const bool finite = _mm256_movemask_ps(bad) == 0;
  if (!finite || amax == 0.0f) {
    std::memset(q, 0, kInt8Block);
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const __m256d inv = _mm256_set1_pd(127.0 / double(amax));
  __m128i w[4];  // eight int16 codes per vector of x
  for (int i = 0; i < 4; ++i) {
    const __m128i lo = _mm256_cvtpd_epi32(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v[i])), inv));
    const __m128i hi = _mm256_cvtpd_epi32(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v[i], 1)), inv));
    w[i] = _mm_packs_epi32(lo, hi);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(w[0], w[1]));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm_packs_epi16(w[2], w[3]));
  return amax / 127.0f;
}

// Sum of the 32 codes of a block.
HWY_INLINE int32_t Int8CodeSum(const int8_t* q) {
  const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
  const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1)));
}

void PrepInt8(const float* x, int64_t n, uint8_t* dst) {
  // 32 codes to [even 0-15 | odd 0-15]: the byte shuffle sorts each 128-bit half into
  // [8 even | 8 odd], the 64-bit permute joins the halves' even and odd parts.
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                         0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int64_t g0 = 0; g0 < n; g0 += kInt8Group) {
    uint8_t* out = dst + (g0 / kInt8Group) * kInt8GroupBytes;
    const int64_t n_blocks = std::min(kInt8Group, n - g0) / kInt8Block;  // the rest stay 0
    alignas(32) int8_t q[kInt8Group] = {};
    float step[8] = {};
    for (int64_t b = 0; b < n_blocks; ++b) step[b] = QuantizeInt8Block(x + g0 + b * kInt8Block, q + b * kInt8Block);
    for (int k = 0; k < 4; ++k) {
      const __m256i a = _mm256_permute4x64_epi64(
          _mm256_shuffle_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k)), split), 0xD8);
      const __m256i b = _mm256_permute4x64_epi64(
          _mm256_shuffle_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32)), split), 0xD8);
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64 * k), _mm256_permute2x128_si256(a, b, 0x20));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64 * k + 32), _mm256_permute2x128_si256(a, b, 0x31));
    }
    alignas(32) int32_t offset[8];
    alignas(32) float steps[8];
    for (int l = 0; l < 8; ++l) {
      offset[l] = 12 * Int8CodeSum(q + kInt8Block * kInt8LaneBlock[l]);
      steps[l] = step[kInt8LaneBlock[l]];
    }
    std::memcpy(out + 256, offset, 32);
    std::memcpy(out + 288, steps, 32);
  }
}

// Horizontal sum of eight lanes (the AVX-512 targets' DF vectors are wider).
HWY_INLINE float Sum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// 2^(e-127) of a group's eight E8M0 bytes (b8, block 0 in the low byte), in P's lane order.
HWY_INLINE __m256 Int8GroupScales(uint64_t b8) {
  const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i bytes = _mm_shuffle_epi8(_mm_cvtsi64_si128(int64_t(b8)), order);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(bytes), 23));
}

struct Int8Fp4Tables {
  __m256i lut, low4, ones;
  HWY_INLINE Int8Fp4Tables()
      : lut(_mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
                             12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0)),
        low4(_mm256_set1_epi8(0x0F)),
        ones(_mm256_set1_epi16(1)) {}
};

// The offset weight bytes of one chunk: low nibbles (even columns), high nibbles (odd).
HWY_INLINE void Int8Fp4Chunk(const Int8Fp4Tables& tb, const uint8_t* p, __m256i& wl, __m256i& wh) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  wl = _mm256_shuffle_epi8(tb.lut, _mm256_and_si256(v, tb.low4));
  wh = _mm256_shuffle_epi8(tb.lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), tb.low4));
}

// Dword l of a chunk's sums: columns 8l..8l+7 of the chunk, against prepared codes xc.
HWY_INLINE __m256i Int8ChunkSums(const Int8Fp4Tables& tb, __m256i wl, __m256i wh, const uint8_t* xc) {
  const __m256i p16 =
      _mm256_add_epi16(_mm256_maddubs_epi16(wl, _mm256_load_si256(reinterpret_cast<const __m256i*>(xc))),
                       _mm256_maddubs_epi16(wh, _mm256_load_si256(reinterpret_cast<const __m256i*>(xc + 32))));
  return _mm256_madd_epi16(p16, tb.ones);
}

// One group of 256 columns for T tokens: wg its 128 weight bytes, s its scales
// (Int8GroupScales), xg[t] token t's prepared group.
template <int T>
HWY_INLINE void Int8Group(const Int8Fp4Tables& tb, const uint8_t* wg, __m256 s, const uint8_t* const xg[T],
                          __m256 acc[T]) {
  __m256i wl0, wh0, wl1, wh1;
  __m256i m01[T];
  Int8Fp4Chunk(tb, wg, wl0, wh0);
  Int8Fp4Chunk(tb, wg + 32, wl1, wh1);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
    m01[t] = _mm256_packs_epi32(Int8ChunkSums(tb, wl0, wh0, xg[t]), Int8ChunkSums(tb, wl1, wh1, xg[t] + 64));
  Int8Fp4Chunk(tb, wg + 64, wl0, wh0);
  Int8Fp4Chunk(tb, wg + 96, wl1, wh1);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {  // one order per token for every n_tok (batch invariance)
    const __m256i m23 =
        _mm256_packs_epi32(Int8ChunkSums(tb, wl0, wh0, xg[t] + 128), Int8ChunkSums(tb, wl1, wh1, xg[t] + 192));
    const __m256i p = _mm256_sub_epi32(
        _mm256_hadd_epi32(_mm256_madd_epi16(m01[t], tb.ones), _mm256_madd_epi16(m23, tb.ones)),
        _mm256_load_si256(reinterpret_cast<const __m256i*>(xg[t] + 256)));
    const __m256 step = _mm256_mul_ps(_mm256_load_ps(reinterpret_cast<const float*>(xg[t] + 288)), s);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), step, acc[t]);
  }
}

template <int T>
HWY_INLINE void RowFp4Int8(const Job& j, int64_t r, int64_t t0) {
  const WeightView& w = *j.w;
  const int64_t n = w.n_in;
  const auto [wr, sr, fast] = Fp4Row(j, r);
  if (!fast) {
    int8_scalar_row(w, r, j.x, t0, T, j.y);
    return;
  }
  const Int8Fp4Tables tb;
  const uint8_t* xg[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    xg[t] = j.xq + (t0 + t) * j.ldxq;
    acc[t] = _mm256_setzero_ps();
  }
  prefetch_lines(sr + kPrefetchScaleRows * (n / 32), n / 32);
  const int64_t ng = n / kInt8Group;
  for (int64_t g = 0; g < ng; ++g) {
    prefetch_stream(wr + g * 128 + kPrefetchBytes);
    prefetch_stream(wr + g * 128 + kPrefetchBytes + 64);
    uint64_t b8;
    std::memcpy(&b8, sr + 8 * g, 8);
    Int8Group<T>(tb, wr + g * 128, Int8GroupScales(b8), xg, acc);
    for (int t = 0; t < T; ++t) xg[t] += kInt8GroupBytes;
  }
  if (const int64_t rest = n - ng * kInt8Group; rest > 0) {  // a partial group, zero-filled
    alignas(32) uint8_t wbuf[128] = {};
    uint64_t b8 = 0;
    std::memcpy(wbuf, wr + ng * 128, size_t(rest / 2));
    std::memcpy(&b8, sr + 8 * ng, size_t(rest / 32));
    Int8Group<T>(tb, wbuf, Int8GroupScales(b8), xg, acc);
  }
  for (int t = 0; t < T; ++t) j.y[(t0 + t) * w.n_out + r] = Sum256(acc[t]) * 0.5f;
}
#else
int64_t Int8PrepBytes(int64_t) { return 0; }
void PrepInt8(const float*, int64_t, uint8_t*) {}
template <int T>
HWY_INLINE void RowFp4Int8(const Job& j, int64_t r, int64_t t0) {
  int8_scalar_row(*j.w, r, j.x, t0, T, j.y);
}
#endif

// Rows [r0, r1) of an int8-numerics FP4 product: token tiles over row blocks that stay in
// cache, as Rows does for the exact kernels.
void RowsInt8(const Job& j, int64_t r0, int64_t r1) {
  const int64_t rb = std::max<int64_t>(1, (int64_t(64) << 10) / std::max<int64_t>(1, j.w->row_bytes()));
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = std::min(r1, b0 + rb);
    for (int64_t t0 = 0; t0 < j.n_tok; t0 += kTokTile)
      for (int64_t r = b0; r < b1; ++r) switch (std::min<int64_t>(kTokTile, j.n_tok - t0)) {
          case 1: RowFp4Int8<1>(j, r, t0); break;
          case 2: RowFp4Int8<2>(j, r, t0); break;
          case 3: RowFp4Int8<3>(j, r, t0); break;
          default: RowFp4Int8<4>(j, r, t0); break;
        }
  }
}

// ---------------------------------------------------------------------------- driver
template <int T>
HWY_INLINE void RowT(const Job& j, int64_t r, int64_t t0) {
  switch (j.w->format) {
    case WeightFormat::F32: RowsF32<1, T>(j, r, t0); return;
    case WeightFormat::BF16: RowsBf16<1, T>(j, r, t0); return;
    case WeightFormat::FP8_BLOCK128: RowFp8<T>(j, r, t0); return;
    case WeightFormat::FP4_BLOCK32: RowFp4<T>(j, r, t0); return;
  }
}

// Decode (one token) with the kernels that take two rows per step: the rows of the piece
// in pairs half the piece apart (for_row_pairs_apart; a pair whose scales need it goes
// row by row). Kernels, 2 threads, Zen 5, alternating runs, against the adjacent rows
// taken before (four, or two for FP4): FP4 experts (avx512, exact) 27.5-28.8 -> 32.0-33.0
// GB/s, in groups of 12 31.6-33.3 -> 35.7-36.3; FP8 [32768, 1024] 32.3 -> 40.3,
// [4096, 8192] 39.4-40.2 -> 40.2-42.9, [4096, 4096] unchanged (~41); BF16: see
// for_row_pairs_apart. False (nothing done) for the formats that walk rows otherwise.
HWY_INLINE bool RowsDecodeApart(const Job& j, int64_t r0, int64_t r1) {
  switch (j.w->format) {
    case WeightFormat::BF16:
      for_row_pairs_apart(
          r0, r1,
          [&](int64_t ra, int64_t rb) {
            RowsBf16<2, 1>(j, ra, 0, rb - ra);
            return true;
          },
          [&](int64_t r) { RowsBf16<1, 1>(j, r, 0); });
      return true;
#ifdef DSV4_HAVE_ROWS_FP8
    case WeightFormat::FP8_BLOCK128:
      for_row_pairs_apart(
          r0, r1, [&](int64_t ra, int64_t rb) { return RowsFp8<2, 1>(j, ra, 0, rb - ra); },
          [&](int64_t r) { RowFp8<1>(j, r, 0); });
      return true;
#endif
#ifdef DSV4_HAVE_ROW2_FP4
    case WeightFormat::FP4_BLOCK32:
      for_row_pairs_apart(
          r0, r1, [&](int64_t ra, int64_t rb) { return Row2Fp4<1>(j, ra, 0, rb - ra); },
          [&](int64_t r) { RowFp4<1>(j, r, 0); });
      return true;
#endif
    default:
      return false;
  }
}

// Whether every scale row that rows [r0, r1) of an FP8 weight use is in the fast range.
bool Fp8ScalesOk(const WeightView& w, int64_t r0, int64_t r1) {
  const int64_t nb = ceil_div(w.n_in, 128);
  const int64_t s0 = (r0 + w.row_offset) / 128, s1 = (r1 - 1 + w.row_offset) / 128 + 1;
  return r1 > r0 && scales_in_range(w.scale + s0 * nb, (s1 - s0) * nb, 1, kFp8MaxScale);
}

HWY_NOINLINE void Rows(const Job& job, int64_t r0, int64_t r1) {
  static_assert(kTokTile == 4, "token tile switch below");
  if (job.xb != nullptr) {
    bf16dot::rows(*job.w, job.xb, job.ldxb, job.x, job.n_tok, job.y, r0, r1, job.x_prescalable);
    return;
  }
  Job j = job;
  if (j.w->format == WeightFormat::FP8_BLOCK128) j.fp8_scales_ok = Fp8ScalesOk(*j.w, r0, r1);
  // (The FP4 kernels that read the flag: int8, and exact on AVX2; AVX-512 checks in-loop.)
  if (j.w->format == WeightFormat::FP4_BLOCK32 && (j.int8 || DSV4_FP4_AVX2))
    j.fp4_scales_ok = Fp4ScalesOk(*j.w, r0, r1);
  if (j.int8) {
    RowsInt8(j, r0, r1);
    return;
  }
#ifdef DSV4_HAVE_FP8_PANELS
  if (j.n_tok >= kFp8PanelMinTokens && j.w->format == WeightFormat::FP8_BLOCK128 && j.fp8_scales_ok &&
      j.w->n_in >= kFp8PanelMinCols && j.w->n_in % kFp8PanelColStep == 0) {
    RowsFp8Panels(j, r0, r1);
    return;
  }
#endif
#ifdef DSV4_HAVE_FP4_PANELS
  if (j.n_tok >= kFp4PanelMinTokens && j.w->format == WeightFormat::FP4_BLOCK32 && j.fp4_scales_ok &&
      j.w->n_in >= kFp4PanelMinCols) {
    RowsFp4Panels(j, r0, r1);
    return;
  }
#endif
#ifdef DSV4_HAVE_ROW2_FP8_AVX2
  if (j.n_tok == 1 && j.w->format == WeightFormat::FP8_BLOCK128) {
    RowsFp8Decode(j, r0, r1);
    return;
  }
#endif
  if (j.n_tok == 1 && RowsDecodeApart(j, r0, r1)) return;
  // Rows are walked in blocks of about 64 KiB of weights so that a block stays in cache
  // while all token tiles pass over it.
  // (at least kF32Rows rows, so that wide F32 rows still form row tiles).
  const int64_t rb = std::max<int64_t>(kF32Rows, (int64_t(64) << 10) / std::max<int64_t>(1, j.w->row_bytes()));
  // The first multi-token tile of each block prefetches rows ahead of the widest step a
  // tile below takes (kF32Rows rows).
  RowPrefetcher prefetcher(*j.w, r0, r1);
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = std::min(r1, b0 + rb);
    for (int64_t t0 = 0; t0 < j.n_tok; t0 += kTokTile) {
      const int64_t nt = std::min<int64_t>(kTokTile, j.n_tok - t0);
      const bool cold = t0 == 0 && nt > 1;
      for (int64_t r = b0; r < b1; ++r) {
        if (cold) prefetcher.before(r + kF32Rows);
        if (j.w->format == WeightFormat::F32 && r + kF32Rows <= b1) {
          switch (nt) {
            case 1: RowsF32<kF32Rows, 1>(j, r, t0); break;
            case 2: RowsF32<kF32Rows, 2>(j, r, t0); break;
            case 3: RowsF32<kF32Rows, 3>(j, r, t0); break;
            default: RowsF32<kF32Rows, 4>(j, r, t0); break;
          }
          r += kF32Rows - 1;
          continue;
        }
        if (nt == 1 && j.w->format == WeightFormat::BF16 && r + 3 < b1) {  // a prefill's last token
          RowsBf16<4, 1>(j, r, t0);
          r += 3;
          continue;
        }
        if (nt > 1 && j.w->format == WeightFormat::BF16 && r + 1 < b1) {
          switch (nt) {
            case 2: RowsBf16<2, 2>(j, r, t0); break;
            case 3: RowsBf16<2, 3>(j, r, t0); break;
            default: RowsBf16<2, 4>(j, r, t0); break;
          }
          ++r;
          continue;
        }
#ifdef DSV4_HAVE_ROWS_FP8
        if (nt == 1 && j.w->format == WeightFormat::FP8_BLOCK128 && r + kFp8Rows <= b1 &&
            RowsFp8<kFp8Rows, 1>(j, r, t0)) {
          r += kFp8Rows - 1;
          continue;
        }
        if (nt > 1 && j.w->format == WeightFormat::FP8_BLOCK128 && r + 2 <= b1) {
          bool done = false;
          switch (nt) {
            case 2: done = RowsFp8<2, 2>(j, r, t0); break;
            case 3: done = RowsFp8<2, 3>(j, r, t0); break;
            default: done = RowsFp8<2, 4>(j, r, t0); break;
          }
          if (done) {
            ++r;
            continue;
          }
        }
#endif
#ifdef DSV4_HAVE_ROW2_FP4
        if (j.w->format == WeightFormat::FP4_BLOCK32 && r + 1 < b1) {
          bool done = false;
          switch (nt) {
            case 1: done = Row2Fp4<1>(j, r, t0); break;
            case 2: done = Row2Fp4<2>(j, r, t0); break;
            case 3: done = Row2Fp4<3>(j, r, t0); break;
            default: done = Row2Fp4<4>(j, r, t0); break;
          }
          if (done) {
            ++r;
            continue;
          }
        }
#endif
        switch (nt) {
          case 1: RowT<1>(j, r, t0); break;
          case 2: RowT<2>(j, r, t0); break;
          case 3: RowT<3>(j, r, t0); break;
          default: RowT<4>(j, r, t0); break;
        }
      }
    }
  }
}

// Activations of one product copied (re-ordered where the format wants it) into 64-byte
// aligned rows of ldx floats: full-vector loads that split cache lines halve the weight
// streaming rate (measured on Zen 5: 18 vs 27 GB/s for a BF16-like loop).
int64_t PrepStride(const WeightView& w) { return (w.n_in + 15) & ~int64_t(15); }

void PrepX(const WeightView& w, const float* x, int64_t n_tok, float* xa) {
  const int64_t ldx = PrepStride(w);
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * w.n_in;
    float* dst = xa + t * ldx;
    if (w.format == WeightFormat::BF16)
      PrepBf16(xt, w.n_in, dst);
    else if (w.format == WeightFormat::FP4_BLOCK32)
      PrepFp4(xt, w.n_in, dst);
#if DSV4_FP4_AVX2
    else if (w.format == WeightFormat::FP8_BLOCK128)
      PrepFp8(xt, w.n_in, dst);
#endif
    else
      std::memcpy(dst, xt, size_t(w.n_in) * sizeof(float));
    for (int64_t i = w.n_in; i < ldx; ++i) dst[i] = 0.0f;
  }
}

// Whether the kernels of a format read the activations in column order (PrepX copies
// them unchanged): F32, and FP8 but on AVX2.
constexpr bool PlainLayout(WeightFormat f) {
  return f == WeightFormat::F32 || (f == WeightFormat::FP8_BLOCK128 && !DSV4_FP4_AVX2);
}

// Whether the exact kernels read x itself: plain layouts (PlainLayout) whose every token
// row already starts on a 64-byte boundary need no aligned copy. The copy ran on the
// calling thread while the others waited: 32 MiB for each mHC projection of a 512-token prefill
// ([512, 16384] floats), 8 MiB for each FP8 product of x.
bool XInPlace(const WeightView& w, const float* x) {
  return PlainLayout(w.format) && w.n_in % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 64 == 0;
}

// Rows per piece handed out by parallel_chunks: ~1 MiB of weights (one contiguous
// stream; each new piece restarts the prefetch ramp: 256 KiB pieces measured 5-10%
// slower on 14 expert matrices), at most an even share per thread.
int64_t RowGrain(const WeightView& w, int n_threads) {
  return std::max<int64_t>(1, std::min<int64_t>((int64_t(1024) << 10) / std::max<int64_t>(1, w.row_bytes()),
                                                ceil_div(w.n_out, n_threads)));
}

// A region's pieces in the order the threads claim them. With ~1 MiB pieces throughout,
// a thread that claims the last one leaves the others idle at the barrier for up to a
// piece (measured: 0.17-0.34 ms per decoded token over 23 regions). The last
// kTailPieces x n_threads pieces are therefore cut into kTailCuts smaller ones, so the
// threads finish within a fraction of a piece of each other.
struct Piece {
  int32_t job;
  int64_t r0, r1;  // rows [r0, r1) of that job
};
constexpr int64_t kTailPieces = 1;
constexpr int64_t kTailCuts = 4;

// Appends job k's rows [0, n_out) in pieces of `grain` rows.
void AddPieces(int32_t k, int64_t n_out, int64_t grain, std::vector<Piece>& pieces) {
  for (int64_t r0 = 0; r0 < n_out; r0 += grain) pieces.push_back({k, r0, std::min(n_out, r0 + grain)});
}

// Cuts each of the last kTailPieces x n_threads pieces into kTailCuts (as rows allow).
void CutTail(int n_threads, std::vector<Piece>& pieces) {
  const size_t n = pieces.size(), first = n - std::min(n, size_t(kTailPieces * n_threads));
  for (size_t i = first; i < n; ++i) {  // the cuts go after the pieces, which are then dropped
    const Piece p = pieces[i];
    const int64_t cut = ceil_div(p.r1 - p.r0, kTailCuts);
    for (int64_t r0 = p.r0; r0 < p.r1; r0 += cut) pieces.push_back({p.job, r0, std::min(p.r1, r0 + cut)});
  }
  pieces.erase(pieces.begin() + std::ptrdiff_t(first), pieces.begin() + std::ptrdiff_t(n));
}

// Runs every piece of a region (job k's rows [r0, r1) through Rows(js[k], ...)): on the
// pool's threads, claimed dynamically with the tail cut, or on the calling thread when
// pool is null.
void RunPieces(const Job* js, std::vector<Piece>& pieces, ThreadPool* pool) {
  if (pool == nullptr || pool->n_threads() == 1) {
    for (const Piece& p : pieces) Rows(js[p.job], p.r0, p.r1);
    return;
  }
  CutTail(pool->n_threads(), pieces);
  pool->parallel_chunks(int64_t(pieces.size()), 1, [&](int64_t p0, int64_t p1, int) {
    for (int64_t i = p0; i < p1; ++i) Rows(js[pieces[size_t(i)].job], pieces[size_t(i)].r0, pieces[size_t(i)].r1);
  });
}

// Whether a fast-numerics product of this format runs on the BF16 dot product: only on
// the AVX-512 targets of a CPU with AVX512_BF16 (a forced avx2 run keeps the exact
// kernels on the rounded activations).
bool UseBf16Dot(bool fast, const WeightView& w) {
  static const bool cpu_has = bf16dot::available();
  return fast && DSV4_FP4_AVX3 && cpu_has && !bf16dot_forced_off().load(std::memory_order_relaxed) &&
         bf16dot::handles(w);
}

// One token's activations per row of xb, for every token.
void PrepXb(const WeightView& w, const float* x, int64_t n_tok, uint16_t* xb) {
  const int64_t ld = bf16dot::prep_words(w);
  for (int64_t t = 0; t < n_tok; ++t) bf16dot::prep(w, x + t * w.n_in, xb + t * ld);
}

void RoundBf16FtzImpl(const float* x, int64_t n, float* out);

// Fast numerics multiplies activations rounded with round_bf16_ftz. The BF16 dot-product
// kernels take them from prep, which rounds as it lays them out (rounding first and then
// laying out took two passes on the calling thread); the exact kernels get a rounded
// copy, made here.
const float* RoundedCopy(const float* x, int64_t n, ScratchBuffer<float>& dst) {
  float* out = dst.get(n);
  RoundBf16FtzImpl(x, n, out);
  return out;
}

// Whether a product runs in int8 numerics: FP4 weights only (every other format is exact).
bool IsInt8(Numerics numerics, const WeightView& w) {
  return numerics == Numerics::kInt8 && w.format == WeightFormat::FP4_BLOCK32;
}

// The job of an int8-numerics product; xq: room for n_tok * Int8PrepBytes(n_in) bytes
// (64-byte aligned) where the target has the vector kernel, already prepared if `ready`.
Job MakeInt8Job(const Ops::MatmulJob& m, uint8_t* xq, bool ready) {
  Job j{m.w, m.x, m.x, m.w->n_in, m.n_tok, m.y};
  j.int8 = true;
  const int64_t ld = Int8PrepBytes(m.w->n_in);
  if (ld > 0) {
    if (!ready)
      for (int64_t t = 0; t < m.n_tok; ++t) PrepInt8(m.x + t * m.w->n_in, m.w->n_in, xq + t * ld);
    j.xq = xq;
    j.ldxq = ld;
  }
  return j;
}

// Sets j.x_prescalable for a fast FP8 product whose tokens take the bf16 prefill panels
// (more than a token tile), once per product: a scan of every activation (~4 MiB at 512
// tokens), where the pieces would repeat it per ~1 MiB of weights. (The exact AVX-512
// panels stay plain: prescaled, they measured no faster, twenty-second round.)
void NotePrescalable(Job& j) {
  if (j.w->format == WeightFormat::FP8_BLOCK128 && j.xb != nullptr && j.n_tok > kTokTile)
    j.x_prescalable = bf16dot::activations_prescalable(j.xb, j.ldxb, j.n_tok);
}

// Below ~64K multiply-adds the pool's wake-up costs more than it saves.
bool Threaded(const ThreadPool* pool, const WeightView& w, int64_t n_tok) {
  return pool != nullptr && pool->n_threads() > 1 && w.n_out >= 2 && w.n_out * w.n_in * n_tok >= (int64_t(1) << 16);
}

// x: the activations as given; in fast numerics rounded on the way (see RoundedCopy).
void MatmulImpl(const WeightView& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool, Numerics numerics) {
  if (w.n_out <= 0 || n_tok <= 0) return;
  const bool fast = numerics == Numerics::kFast;
  const bool bf16 = UseBf16Dot(fast, w);
  if (fast && !bf16) {
    thread_local ScratchBuffer<float> xr;
    x = RoundedCopy(x, n_tok * w.n_in, xr);
  }
  Job j{&w, x, nullptr, 0, n_tok, y};
  if (IsInt8(numerics, w)) {
    thread_local ScratchBuffer<uint8_t> xq;
    const Ops::MatmulJob m{&w, x, n_tok, y};
    j = MakeInt8Job(m, xq.get(n_tok * Int8PrepBytes(w.n_in)), false);
  } else if (bf16) {
    // 64-byte aligned like the exact kernels' activations: a vector load that splits a
    // cache line costs as much as a weight load (fast FP4 group: 44 -> 60 GB/s).
    thread_local ScratchBuffer<uint16_t> xb_scratch;
    uint16_t* xb = xb_scratch.get(n_tok * bf16dot::prep_words(w));
    PrepXb(w, x, n_tok, xb);
    j.xb = xb;
    j.ldxb = bf16dot::prep_words(w);
  } else if (XInPlace(w, x)) {
    j.ldx = w.n_in;
    j.xp = x;
  } else {
    j.ldx = PrepStride(w);
    float* xa = scratch_x().get(n_tok * j.ldx);
    PrepX(w, x, n_tok, xa);
    j.xp = xa;
  }
  NotePrescalable(j);
  if (Threaded(pool, w, n_tok)) {
    // Pieces of ~1 MiB of weights (the last ones smaller: CutTail) claimed dynamically:
    // each is one contiguous stream, and a preempted thread (shared machines) does not
    // stall the others at the barrier.
    thread_local std::vector<Piece> pieces;
    pieces.clear();
    AddPieces(0, w.n_out, RowGrain(w, pool->n_threads()), pieces);
    RunPieces(&j, pieces, pool);
  } else {
    Rows(j, 0, w.n_out);
  }
}

// Fast numerics: the jobs for the exact kernels with their x replaced by rounded copies
// (each distinct activation array rounded once; jobs that shared an x still share one);
// jobs on the BF16 dot product keep theirs (prep rounds it).
const Ops::MatmulJob* RoundedJobs(const Ops::MatmulJob* jobs, int64_t n_jobs) {
  thread_local std::vector<ScratchBuffer<float>> copies;
  thread_local std::vector<Ops::MatmulJob> fast_jobs;
  fast_jobs.assign(jobs, jobs + n_jobs);
  if (copies.size() < size_t(n_jobs)) copies.resize(size_t(n_jobs));
  auto exact = [](const Ops::MatmulJob& m) { return m.w->n_out > 0 && m.n_tok > 0 && !UseBf16Dot(true, *m.w); };
  for (int64_t i = 0; i < n_jobs; ++i) {
    const Ops::MatmulJob& m = jobs[i];
    if (!exact(m)) continue;
    int64_t same = -1;
    for (int64_t k = 0; k < i && same < 0; ++k)
      if (exact(jobs[k]) && jobs[k].x == m.x && jobs[k].n_tok * jobs[k].w->n_in == m.n_tok * m.w->n_in) same = k;
    fast_jobs[size_t(i)].x =
        same >= 0 ? fast_jobs[size_t(same)].x : RoundedCopy(m.x, m.n_tok * m.w->n_in, copies[size_t(i)]);
  }
  return fast_jobs.data();
}

// A group of independent products in one parallel region: the union of every job's
// weight rows is cut into the same ~1 MiB pieces matmul uses (the last ones of the group
// smaller), claimed dynamically.
// Each row runs the same kernel as in matmul, so results are bit-identical to it.
void MatmulManyImpl(const Ops::MatmulJob* jobs, int64_t n_jobs, ThreadPool* pool, Numerics numerics) {
  const bool fast = numerics == Numerics::kFast;
  if (fast) jobs = RoundedJobs(jobs, n_jobs);
  // The calling thread's scratch. The workers see it only through RunPieces's arguments
  // (a thread_local named inside a lambda run by a worker would be the worker's own).
  thread_local ScratchBuffer<float> xs;
  thread_local std::vector<Job> js;
  thread_local std::vector<Piece> pieces;
  thread_local ScratchBuffer<uint16_t> xbs;
  js.clear();
  pieces.clear();
  // Activation copies: jobs that read the same x in the same layout share one. Jobs on
  // the BF16 dot product get their own bf16 copy instead (offsets in xb_off), int8 jobs
  // quantised bytes (offsets in xq_off, shared by int8 jobs of the same x).
  thread_local std::vector<int64_t> off, xb_off, xq_off;
  thread_local ScratchBuffer<uint8_t> xqs;
  off.assign(size_t(n_jobs), -1);
  xb_off.assign(size_t(n_jobs), -1);
  xq_off.assign(size_t(n_jobs), -1);
  int64_t total = 0, total_xb = 0, total_xq = 0;
  for (int64_t i = 0; i < n_jobs; ++i) {
    const Ops::MatmulJob& m = jobs[i];
    if (m.w->n_out <= 0 || m.n_tok <= 0) continue;
    if (IsInt8(numerics, *m.w)) {
      for (int64_t k = 0; k < i && xq_off[size_t(i)] < 0; ++k) {
        const Ops::MatmulJob& o = jobs[k];
        if (xq_off[size_t(k)] >= 0 && o.x == m.x && o.n_tok == m.n_tok && o.w->n_in == m.w->n_in)
          xq_off[size_t(i)] = xq_off[size_t(k)];
      }
      if (xq_off[size_t(i)] < 0) {
        xq_off[size_t(i)] = total_xq;
        total_xq += m.n_tok * Int8PrepBytes(m.w->n_in);
      }
      continue;
    }
    if (UseBf16Dot(fast, *m.w)) {
      xb_off[size_t(i)] = total_xb;
      total_xb += m.n_tok * bf16dot::prep_words(*m.w);
      continue;
    }
    if (XInPlace(*m.w, m.x)) continue;  // off stays -1: the job reads m.x
    for (int64_t k = 0; k < i && off[size_t(i)] < 0; ++k) {
      const Ops::MatmulJob& o = jobs[k];
      if (off[size_t(k)] >= 0 && o.x == m.x && o.n_tok == m.n_tok && o.w->n_in == m.w->n_in &&
          (o.w->format == m.w->format || (PlainLayout(o.w->format) && PlainLayout(m.w->format))))
        off[size_t(i)] = off[size_t(k)];
    }
    if (off[size_t(i)] < 0) {
      off[size_t(i)] = total;
      total += m.n_tok * PrepStride(*m.w);
    }
  }
  float* base = xs.get(total);
  uint16_t* xb_base = xbs.get(total_xb);  // offsets are multiples of 32 words
  uint8_t* xq_base = xqs.get(total_xq);   // offsets are multiples of 64 bytes
  int64_t work = 0;
  const int n_threads = pool != nullptr ? pool->n_threads() : 1;
  for (int64_t i = 0; i < n_jobs; ++i) {
    const Ops::MatmulJob& m = jobs[i];
    if (m.w->n_out <= 0 || m.n_tok <= 0) continue;
    if (IsInt8(numerics, *m.w)) {
      uint8_t* xq = xq_base + xq_off[size_t(i)];
      bool ready = false;  // already prepared for an earlier job
      for (const Job& o : js) ready |= o.int8 && o.xq == xq;  // (xq is unused where the target has no prep)
      js.push_back(MakeInt8Job(m, xq, ready));
    } else if (xb_off[size_t(i)] >= 0) {
      uint16_t* xb = xb_base + xb_off[size_t(i)];
      PrepXb(*m.w, m.x, m.n_tok, xb);
      js.push_back(Job{m.w, m.x, nullptr, 0, m.n_tok, m.y, xb, bf16dot::prep_words(*m.w)});
    } else if (off[size_t(i)] < 0) {
      js.push_back(Job{m.w, m.x, m.x, m.w->n_in, m.n_tok, m.y});
    } else {
      float* xa = base + off[size_t(i)];
      bool done = false;  // already prepared for an earlier job
      for (const Job& o : js) done |= o.xp == xa;
      if (!done) PrepX(*m.w, m.x, m.n_tok, xa);
      js.push_back(Job{m.w, m.x, xa, PrepStride(*m.w), m.n_tok, m.y});
    }
    NotePrescalable(js.back());
    AddPieces(int32_t(js.size() - 1), m.w->n_out, RowGrain(*m.w, n_threads), pieces);
    work += m.w->n_out * m.w->n_in * m.n_tok;
  }
  if (js.empty()) return;
  RunPieces(js.data(), pieces, work >= (int64_t(1) << 16) ? pool : nullptr);
}

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

// out[i] = round_bf16_ftz(x[i]), bit for bit (see core/dtype.h): round to nearest even on
// the fp32 bits, NaNs quieted (0x400000) with their upper payload kept, results below the
// smallest normal flushed to a signed zero. The scalar function is the statement.
// Runs on the calling thread before every fast product: 12.6M floats 12 -> 4 ms.
void RoundBf16FtzImpl(const float* x, int64_t n, float* out) {
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto abs_mask = hn::Set(du, 0x7FFFFFFFu), inf = hn::Set(du, 0x7F800000u);
  const auto hi16 = hn::Set(du, 0xFFFF0000u), quiet = hn::Set(du, 0x00400000u);
  const auto half = hn::Set(du, 0x7FFFu), one = hn::Set(du, 1u), sign = hn::Set(du, 0x80000000u);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto u = hn::BitCast(du, hn::LoadU(d, x + i));
    const auto is_nan = hn::Gt(hn::And(u, abs_mask), inf);
    auto r = hn::And(hn::Add(u, hn::Add(half, hn::And(hn::ShiftRight<16>(u), one))), hi16);
    r = hn::IfThenElse(is_nan, hn::Or(hn::And(u, hi16), quiet), r);
    r = hn::IfThenElse(hn::Eq(hn::And(r, inf), hn::Zero(du)), hn::And(r, sign), r);
    hn::StoreU(hn::BitCast(d, r), d, out + i);
  }
  for (; i < n; ++i) out[i] = round_bf16_ftz(x[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::backend {
namespace cpu {

HWY_EXPORT(MatmulImpl);
HWY_EXPORT(MatmulManyImpl);
HWY_EXPORT(TargetNameImpl);
HWY_EXPORT(RoundBf16FtzImpl);

void round_bf16_ftz_rows(const float* x, int64_t n, float* out) { HWY_DYNAMIC_DISPATCH(RoundBf16FtzImpl)(x, n, out); }

void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool, Numerics numerics) {
  HWY_DYNAMIC_DISPATCH(MatmulImpl)(w, x, n_tok, y, pool, numerics);
}

void matmul_many(const Ops::MatmulJob* jobs, int64_t n_jobs, ThreadPool* pool, Numerics numerics) {
  HWY_DYNAMIC_DISPATCH(MatmulManyImpl)(jobs, n_jobs, pool, numerics);
}

}  // namespace cpu

namespace {

struct IsaName {
  const char* name;
  int64_t mask;
  // avx512-nobf16: the avx512 target with fast numerics kept off the BF16 dot product
  // (see bf16dot_forced_off); offered only where the CPU has AVX512_BF16 (elsewhere
  // "avx512" already is this path).
  bool bf16dot_off = false;
};
constexpr IsaName kIsas[] = {
    {"avx512", HWY_AVX3 | HWY_AVX3_DL},
    {"avx512-nobf16", HWY_AVX3 | HWY_AVX3_DL, true},
    {"avx2", HWY_AVX2},
    {"sse4", HWY_SSE4 | HWY_SSSE3},
    {"scalar", HWY_EMU128 | HWY_SCALAR},
};

// Targets this CPU supports and this binary was compiled for, ignoring any forcing.
int64_t runnable_targets() {
  static const int64_t mask = [] {
    hwy::SetSupportedTargetsForTest(0);
    return hwy::SupportedTargets() & HWY_TARGETS;
  }();
  return mask;
}

bool runnable(const IsaName& i) {
  static const bool has_bf16dot = cpu::bf16dot::available();
  return (runnable_targets() & i.mask) != 0 && (!i.bf16dot_off || has_bf16dot);
}

}  // namespace

bool force_isa(const std::string& isa) {
  if (isa == "best") {
    hwy::SetSupportedTargetsForTest(0);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    cpu::detail::bf16dot_forced_off() = false;
    return true;
  }
  for (const IsaName& i : kIsas) {
    if (isa != i.name) continue;
    if (!runnable(i)) return false;
    hwy::SetSupportedTargetsForTest(runnable_targets() & i.mask);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    cpu::detail::bf16dot_forced_off() = i.bf16dot_off;
    return true;
  }
  return false;
}

std::string current_isa() {
  const std::string t = HWY_DYNAMIC_DISPATCH(cpu::TargetNameImpl)();
  if (t == "AVX3" || t == "AVX3_DL") return cpu::detail::bf16dot_forced_off() ? "avx512-nobf16" : "avx512";
  if (t == "AVX2") return "avx2";
  if (t == "SSE4" || t == "SSSE3") return "sse4";
  if (t == "EMU128" || t == "SCALAR") return "scalar";
  return t;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const IsaName& i : kIsas)
    if (runnable(i)) out.push_back(i.name);
  return out;
}

}  // namespace dsv4::backend
#endif  // HWY_ONCE
