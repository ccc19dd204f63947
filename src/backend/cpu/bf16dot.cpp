// Fast-numerics kernels on VDPBF16PS (see bf16dot.h). Every function that uses AVX-512
// carries DSV4_BF16_TARGET instead of compiling the file with -mavx512*: with file-wide
// flags the compiler may emit AVX-512 in library templates instantiated here (std::vector
// and friends), and the linker may keep those copies for the whole program.
#include "backend/cpu/bf16dot.h"

// GCC 12's AVX-512 headers build some intrinsics from an "undefined" vector that its own
// -Wuninitialized then reports when they are inlined into target-attributed functions.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/exact_row.h"
#include "backend/cpu/prefetch.h"
#include "core/aligned_scratch.h"
#include "core/dtype.h"

#define DSV4_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,fma")))

namespace dsv4::backend::cpu::bf16dot {
namespace {

constexpr int kTokTile = 4;          // tokens sharing one decode of a weight chunk
constexpr int kDecodeRows = 4;       // rows per step of a prefill's lone last token (shared activation loads)
// FP8 rows longer than this take two rows per decode step, not four: with wo_b's 8192
// columns, four rows (32 KiB a step, prefetched a step ahead) plus 16 KiB of activations
// overflow the 48 KiB L1 (kernels_bench --fp8-shape 4096x8192, 2 threads: 41-42 GB/s
// with four rows, 48-53 with two; 4096-column rows keep four, 58 GB/s).
constexpr int64_t kFp8LongRow = 4096;
constexpr uint8_t kFp4MaxScale = 127 + 124;  // larger E8M0 bytes overflow some weights

// bf16 bits of the 16 E2M1 codes, twice: VPERMW reads the low 5 bits of each index word,
// and bit 4 belongs to the next nibble.
struct Fp4Table {
  alignas(64) uint16_t bits[32];
  Fp4Table() {
    for (int i = 0; i < 32; ++i) bits[i] = f32_to_bf16(kE2M1Values[i & 15]);  // exact
  }
};
const Fp4Table kFp4Table;

// Lane permutes picking chunk c's block scales out of four chunks' (lane i <- block i/4).
struct Fp4ScaleIdx {
  alignas(64) int32_t idx[4][16];
  Fp4ScaleIdx() {
    for (int c = 0; c < 4; ++c)
      for (int i = 0; i < 16; ++i) idx[c][i] = 4 * c + i / 4;
  }
};
const Fp4ScaleIdx kFp4ScaleIdx;

// bf16 bits of the 128 E4M3 magnitudes (0x7F is NaN), split into high and low bytes: a
// two-table byte permute (VPERMI2B reads index bits 0..6, exactly the magnitude) looks
// up 64 weights at once. Every E4M3 value, subnormals included, is a normal bf16.
struct Fp8Table {
  alignas(64) uint8_t hi[128];
  alignas(64) uint8_t lo[128];
  Fp8Table() {
    for (int m = 0; m < 128; ++m) {
      const uint16_t h = f32_to_bf16(e4m3_to_f32(uint8_t(m)));  // exact
      hi[m] = uint8_t(h >> 8);
      lo[m] = uint8_t(h & 0xFF);
    }
  }
};
const Fp8Table kFp8Table;
constexpr uint8_t kFp8MaxScale = 127 + 118;  // |E4M3| <= 448 < 2^9: larger scales overflow

// Block scales [sr, sr + nb) (nb <= kFp8ScaleRun) as fp32 powers of two in s, for the
// kernels to broadcast from memory (a load, no ALU op); false when one of them has no
// vector path (outside [1, kFp8MaxScale]). Vector compares: a byte loop here ran once per
// row in decode.
constexpr int64_t kFp8ScaleRun = 64;
DSV4_BF16_TARGET inline bool fp8_scale_run(const uint8_t* sr, int64_t nb, float* s) {
  __mmask16 bad = 0;
  for (int64_t i = 0; i < nb; i += 16) {
    const __mmask16 valid = nb - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (nb - i)) - 1u);
    const __m512i b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(valid, sr + i));
    bad |= _mm512_mask_cmp_epi32_mask(valid, b, _mm512_set1_epi32(1), _MM_CMPINT_LT) |
           _mm512_mask_cmp_epi32_mask(valid, b, _mm512_set1_epi32(kFp8MaxScale), _MM_CMPINT_NLE);
    _mm512_store_ps(s + i, _mm512_castsi512_ps(_mm512_slli_epi32(b, 23)));
  }
  return bad == 0;
}

// The lookup tables in registers, and one 64-byte chunk of E4M3 codes decoded: two byte
// permutes give the high and low bytes of 64 bf16 weights (the sign joins the high
// byte), two byte unpacks make them words: run A holds columns 16L+i, run B columns
// 16L+8+i (L = 128-bit lane, i < 8), matched by prep. NaN codes come out as bf16 NaN.
struct Fp8Decoder {
  __m512i th0, th1, tl0, tl1, sign;
};
DSV4_BF16_TARGET inline Fp8Decoder fp8_decoder() {
  return {_mm512_load_si512(kFp8Table.hi), _mm512_load_si512(kFp8Table.hi + 64), _mm512_load_si512(kFp8Table.lo),
          _mm512_load_si512(kFp8Table.lo + 64), _mm512_set1_epi8(char(0x80))};
}
DSV4_BF16_TARGET inline void fp8_decode(const Fp8Decoder& d, const uint8_t* p, __m512i& run_a, __m512i& run_b) {
  const __m512i v = _mm512_loadu_si512(p);
  const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(d.th0, v, d.th1), v, d.sign, 0xF8);  // A | (B & C)
  const __m512i lo = _mm512_permutex2var_epi8(d.tl0, v, d.tl1);
  run_a = _mm512_unpacklo_epi8(lo, hi);
  run_b = _mm512_unpackhi_epi8(lo, hi);
}

// The exact scalar path (rows whose scales the vector paths do not take) for tokens
// [t0, t0 + nt), on their activations rounded as prep rounds them: xr may hold them
// unrounded (rounding twice changes nothing). Rare, so the copy costs nothing that counts.
inline void rounded_scalar_row(const WeightView& w, int64_t r, const float* xr, int64_t t0, int64_t nt, float* y) {
  thread_local std::vector<float> xs;  // [nt, n_in]
  xs.resize(size_t(nt * w.n_in));
  const float* src = xr + t0 * w.n_in;
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = round_bf16_ftz(src[i]);
  exact_scalar_row(w, r, xs.data(), 0, nt, y + t0 * w.n_out);
}

// True when every byte of [p, p + n) lies in [lo, hi] (block scales the vector paths take).
DSV4_BF16_TARGET bool bytes_in_range(const uint8_t* p, int64_t n, uint8_t lo, uint8_t hi) {
  __mmask64 bad = 0;
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 valid = n - i >= 64 ? ~__mmask64(0) : (__mmask64(1) << (n - i)) - 1;
    const __m512i b = _mm512_maskz_loadu_epi8(valid, p + i);
    bad |= _mm512_mask_cmp_epu8_mask(valid, b, _mm512_set1_epi8(char(lo)), _MM_CMPINT_LT) |
           _mm512_mask_cmp_epu8_mask(valid, b, _mm512_set1_epi8(char(hi)), _MM_CMPINT_NLE);
  }
  return bad == 0;
}

// Sum of the 16 lanes, in a fixed order.
DSV4_BF16_TARGET inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, 0xEE)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

DSV4_BF16_TARGET inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }
DSV4_BF16_TARGET inline __m512bh load_bh(const void* p) { return as_bh(_mm512_loadu_si512(p)); }

// FP4 E2M1 rows r .. r+R-1, tokens t0 .. t0+T-1. Per 128-column chunk (64 bytes = 32
// words of four nibbles): nibble k of every word is looked up with one word permute
// after a shift, giving the bf16 weights of columns 4j+k; four dot products with the
// matching runs of xb, then the chunk's four block scales (lane i <- block i/4) in one
// FMA. Per (row, token) the order is the same for every R and T (batch invariance); R > 1
// shares each activation load between rows: with one row, the four activation loads per
// 64-byte weight chunk, not the decode, limited the kernel (one core, weights in L3:
// 37 GB/s with one row per step, 45 GB/s with four). Returns false (nothing
// written) when a row's scales need the scalar path.
template <int R, int T>
DSV4_BF16_TARGET bool fp4_rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t t0,
                               float* y, int64_t r, int64_t rs = 1) {
  const int64_t n = w.n_in, nc = n / 128, pf = prefetch_distance(R, n / 2, rs);
  const uint8_t* wr[R];
  const uint8_t* sr[R];
  for (int k = 0; k < R; ++k) {
    wr[k] = w.data + (r + k * rs) * (n / 2);
    sr[k] = w.scale + (r + k * rs) * (n / 32);
    if (!bytes_in_range(sr[k], n / 32, 1, kFp4MaxScale)) return false;
    if (T == 1) prefetch_lines(sr[k] + kPrefetchScaleRows * (n / 32), n / 32);
  }
  const __m512i lut = _mm512_load_si512(kFp4Table.bits);
  __m512 acc[R][T], g[R];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  for (int64_t c = 0; c < nc; ++c) {
    __m512bh wk[R][4];
    __m512 s[R];
    if ((c & 3) == 0) {
      // The scales of four chunks (16 E8M0 bytes) as fp32 powers of two, once: per chunk
      // a lane permute then picks block i/4 for lane i (the decode is ALU-bound; this
      // saves three vector ops per chunk and row).
      const int64_t nbytes = std::min<int64_t>(16, (nc - c) * 4);
      const __mmask16 valid = __mmask16((1u << nbytes) - 1u);
      for (int k = 0; k < R; ++k)
        g[k] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(valid, sr[k] + c * 4)), 23));
    }
    const __m512i sidx = _mm512_load_si512(kFp4ScaleIdx.idx[c & 3]);
    for (int k = 0; k < R; ++k) {
      if (T == 1) prefetch_stream(wr[k] + c * 64 + pf);
      const __m512i v = _mm512_loadu_si512(wr[k] + c * 64);
      s[k] = _mm512_permutexvar_ps(sidx, g[k]);
      wk[k][0] = as_bh(_mm512_permutexvar_epi16(v, lut));
      wk[k][1] = as_bh(_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), lut));
      wk[k][2] = as_bh(_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 8), lut));
      wk[k][3] = as_bh(_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 12), lut));
    }
    for (int t = 0; t < T; ++t) {
      const uint16_t* xc = xb + (t0 + t) * ldxb + c * 128;
      __m512 p[R];
      for (int q = 0; q < 4; ++q) {
        const __m512bh xq = load_bh(xc + 32 * q);
        for (int k = 0; k < R; ++k) p[k] = _mm512_dpbf16_ps(q == 0 ? _mm512_setzero_ps() : p[k], wk[k][q], xq);
      }
      for (int k = 0; k < R; ++k) acc[k][t] = _mm512_fmadd_ps(p[k], s[k], acc[k][t]);
    }
  }
  // The sums leave the registers first, in fully unrolled loops: indexing acc in the
  // tail loops below made GCC keep a memory copy of it, stored on every chunk.
  float out[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) out[k][t] = hsum(acc[k][t]);
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) {
      const float* xt = xr + (t0 + t) * n;
      for (int64_t col = nc * 128; col < n; ++col) {  // whole 32-column blocks past the chunks
        const uint8_t b = wr[k][col / 2];
        const float wv = kE2M1Values[col % 2 ? b >> 4 : b & 0xF] * e8m0_to_f32(sr[k][col / 32]);
        out[k][t] = std::fma(wv, round_bf16_ftz(xt[col]), out[k][t]);
      }
      y[(t0 + t) * w.n_out + r + k * rs] = out[k][t];
    }
  return true;
}

// BF16 rows r + k * rs (k < R), tokens t0 .. t0+T-1. Two accumulators per (row, token),
// for even and odd 32-column steps, in the same order for every R, T and rs (batch
// invariance). Decode takes two rows half a piece apart (for_row_pairs_apart).
template <int R, int T>
DSV4_BF16_TARGET void bf16_rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t t0,
                                float* y, int64_t r, int64_t rs = 1) {
  const int64_t n = w.n_in, pf = prefetch_distance(R, 2 * n, rs);
  const uint8_t* wr[R];  // bytes: a mapped tensor may start at any byte
  for (int k = 0; k < R; ++k) wr[k] = w.data + (r + k * rs) * n * 2;
  __m512 acc_a[R][T], acc_b[R][T];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc_a[k][t] = acc_b[k][t] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) {
    for (int k = 0; k < R; ++k) {
      if (T == 1) prefetch_stream(reinterpret_cast<const char*>(wr[k] + 2 * c) + pf);
      if (T == 1) prefetch_stream(reinterpret_cast<const char*>(wr[k] + 2 * c + 64) + pf);
      const __m512bh wa = load_bh(wr[k] + 2 * c), wb = load_bh(wr[k] + 2 * c + 64);
      for (int t = 0; t < T; ++t) {
        const uint16_t* xc = xb + (t0 + t) * ldxb + c;
        acc_a[k][t] = _mm512_dpbf16_ps(acc_a[k][t], wa, load_bh(xc));
        acc_b[k][t] = _mm512_dpbf16_ps(acc_b[k][t], wb, load_bh(xc + 32));
      }
    }
  }
  if (c + 32 <= n) {
    for (int k = 0; k < R; ++k) {
      const __m512bh wa = load_bh(wr[k] + 2 * c);
      for (int t = 0; t < T; ++t) acc_a[k][t] = _mm512_dpbf16_ps(acc_a[k][t], wa, load_bh(xb + (t0 + t) * ldxb + c));
    }
    c += 32;
  }
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) {
      float out = hsum(_mm512_add_ps(acc_a[k][t], acc_b[k][t]));
      const float* xt = xr + (t0 + t) * n;
      for (int64_t i = c; i < n; ++i) out = std::fma(bf16_to_f32(load_u16(wr[k] + 2 * i)), round_bf16_ftz(xt[i]), out);
      y[(t0 + t) * w.n_out + r + k * rs] = out;
    }
}

// NB consecutive 128-column blocks [b, b + NB) of fp8_rows (every block whole when NB >
// 1): each block's sum p runs its own chain, and the chains of the NB blocks are
// interleaved so that one block's dot products wait less on the one before (a block's
// four VDPBF16PS form one dependent chain); acc takes the blocks in order, so the sums
// are those of one block at a time.
template <int R, int T, int NB>
DSV4_BF16_TARGET inline void fp8_block_step(const Fp8Decoder& dec, const uint8_t* const wr[R], const uint16_t* xb,
                                            int64_t ldxb, int64_t t0, int64_t n, int64_t b, int64_t pf,
                                            const float sv[R][kFp8ScaleRun], int64_t b0, __m512 acc[R][T]) {
  __m512 p[NB][R][T];
  for (int j = 0; j < NB; ++j)
    for (int k = 0; k < R; ++k)
      for (int t = 0; t < T; ++t) p[j][k][t] = _mm512_setzero_ps();
  for (int h = 0; h < 2; ++h) {
    for (int j = 0; j < NB; ++j) {
      const int64_t c = (b + j) * 128 + h * 64;
      if (NB == 1 && c >= n) break;  // a last block of 64 columns
      __m512bh wa[R], wb[R];
      for (int k = 0; k < R; ++k) {
        if (T == 1) prefetch_stream(wr[k] + c + pf);
        __m512i run_a, run_b;
        fp8_decode(dec, wr[k] + c, run_a, run_b);
        wa[k] = as_bh(run_a);
        wb[k] = as_bh(run_b);
      }
      for (int t = 0; t < T; ++t) {
        const uint16_t* xc = xb + (t0 + t) * ldxb + c;
        const __m512bh xa = load_bh(xc), xbv = load_bh(xc + 32);
        for (int k = 0; k < R; ++k) {
          p[j][k][t] = _mm512_dpbf16_ps(p[j][k][t], wa[k], xa);
          p[j][k][t] = _mm512_dpbf16_ps(p[j][k][t], wb[k], xbv);
        }
      }
    }
  }
  for (int j = 0; j < NB; ++j)
    for (int k = 0; k < R; ++k) {
      const __m512 s = _mm512_set1_ps(sv[k][b + j - b0]);
      for (int t = 0; t < T; ++t) acc[k][t] = _mm512_fmadd_ps(p[j][k][t], s, acc[k][t]);
    }
}

// Blocks [b0, b1) of one run of block scales (sv: the run's scales as fp32, b0 first),
// added to acc: pairs of whole blocks, then single blocks (fp8_block_step).
template <int R, int T>
DSV4_BF16_TARGET inline void fp8_run_blocks(const Fp8Decoder& dec, const uint8_t* const wr[R], const uint16_t* xb,
                                            int64_t ldxb, int64_t t0, int64_t n, int64_t b0, int64_t b1, int64_t pf,
                                            const float sv[R][kFp8ScaleRun], __m512 acc[R][T]) {
  int64_t b = b0;
  if constexpr (R * T <= 4)  // (more accumulators would not fit in registers)
    for (; b + 2 <= b1 && (b + 2) * 128 <= n; b += 2) fp8_block_step<R, T, 2>(dec, wr, xb, ldxb, t0, n, b, pf, sv, b0, acc);
  for (; b < b1; ++b) fp8_block_step<R, T, 1>(dec, wr, xb, ldxb, t0, n, b, pf, sv, b0, acc);
}

// FP8 E4M3 rows r + k * rs (k < R; 128x128 scale blocks), tokens t0 .. t0+T-1, n_in a
// multiple of 64, each 64-byte chunk decoded by fp8_decode. Per (row, token): p sums the
// block's dot products, then one FMA with the block scale, in the same order for every R
// and T. NaN codes come out as bf16 NaN, as in the oracle. Each activation vector is
// loaded once for all R rows, and the scales come from a run converted ahead (decode:
// the kernel's ALU work, not the memory, held it at ~40 GB/s per core in cache).
// Returns false (nothing written) when a row's scales need the scalar path.
template <int R, int T>
DSV4_BF16_TARGET bool fp8_rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, int64_t t0, float* y,
                               int64_t r, int64_t rs = 1) {
  const int64_t n = w.n_in, nb = (n + 127) / 128, pf = prefetch_distance(R, n, rs);
  const uint8_t* wr[R];
  const uint8_t* sr[R];
  for (int k = 0; k < R; ++k) {
    wr[k] = w.data + (r + k * rs) * n;
    sr[k] = w.scale + ((r + k * rs + w.row_offset) / 128) * nb;
  }
  alignas(64) float sv[R][kFp8ScaleRun];
  const Fp8Decoder dec = fp8_decoder();
  __m512 acc[R][T];
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  for (int64_t b0 = 0; b0 < nb; b0 += kFp8ScaleRun) {
    const int64_t b1 = std::min(nb, b0 + kFp8ScaleRun);
    for (int k = 0; k < R; ++k)
      if (!fp8_scale_run(sr[k] + b0, b1 - b0, sv[k])) return false;
    fp8_run_blocks<R, T>(dec, wr, xb, ldxb, t0, n, b0, b1, pf, sv, acc);
  }
  for (int k = 0; k < R; ++k)
    for (int t = 0; t < T; ++t) y[(t0 + t) * w.n_out + r + k * rs] = hsum(acc[k][t]);
  return true;
}

// Rows r .. r+R-1 (R = 1 or 2), tokens t0 .. t0+T-1; a row whose scales need it takes the
// scalar path (a pair then goes row by row).
template <int R, int T>
DSV4_BF16_TARGET void row_tile(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t t0,
                               float* y, int64_t r) {
  bool done = true;
  if (w.format == WeightFormat::FP4_BLOCK32)
    done = fp4_rows<R, T>(w, xb, ldxb, xr, t0, y, r);
  else if (w.format == WeightFormat::FP8_BLOCK128)
    done = fp8_rows<R, T>(w, xb, ldxb, t0, y, r);
  else
    bf16_rows<R, T>(w, xb, ldxb, xr, t0, y, r);
  if (done) return;
  if constexpr (R > 1) {
    for (int k = 0; k < R; ++k) row_tile<1, T>(w, xb, ldxb, xr, t0, y, r + k);
  } else {
    rounded_scalar_row(w, r, xr, t0, T, y);  // scales the vector paths do not take
  }
}

// Tokens t0 .. t0+T-1 of rows [b0, b1): pairs of rows when there are several tokens (each
// activation load then serves two rows), four rows at a time for a prefill's lone last
// token (decode does not come here: rows() takes pairs half a piece apart).
// pf: the block's first multi-token tile prefetches the rows ahead (RowPrefetcher); null
// in the later tiles and for one token (the decode kernels prefetch in their loops).
template <int T>
DSV4_BF16_TARGET void tile_rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t t0,
                                float* y, int64_t b0, int64_t b1, RowPrefetcher* pf) {
  for (int64_t r = b0; r < b1; ++r) {
    if (T > 1 && pf != nullptr) pf->before(r + 1);
    if (T == 1 && r + kDecodeRows <= b1) {
      if (w.format == WeightFormat::FP4_BLOCK32) {
        row_tile<kDecodeRows, 1>(w, xb, ldxb, xr, t0, y, r);
        r += kDecodeRows - 1;
        continue;
      }
      if (w.format == WeightFormat::BF16) {
        bf16_rows<kDecodeRows, 1>(w, xb, ldxb, xr, t0, y, r);
        r += kDecodeRows - 1;
        continue;
      }
      if (w.n_in <= kFp8LongRow && fp8_rows<kDecodeRows, 1>(w, xb, ldxb, t0, y, r)) {
        r += kDecodeRows - 1;
        continue;
      }
      if (w.n_in > kFp8LongRow && fp8_rows<2, 1>(w, xb, ldxb, t0, y, r)) {
        ++r;
        continue;
      }
    }
    if (T > 1 && r + 1 < b1) {
      row_tile<2, T>(w, xb, ldxb, xr, t0, y, r);
      ++r;
      continue;
    }
    row_tile<1, T>(w, xb, ldxb, xr, t0, y, r);
  }
}

// ---- Prefill: FP8 weights decoded once into bf16 panels ----------------------------
//
// With many tokens, decoding each FP8 chunk for every 4-token tile (three byte permutes
// and two unpacks per 64 weights) costs about as much as its dot products. A row block
// is decoded once into a panel in the decode kernel's word order, with a scale vector
// per 128-column block, and every token tile runs on it. The panel kernel repeats
// fp8_rows's arithmetic step for step (per block p = sum of its dot products from zero,
// then acc = fma(p, s, acc); on prescaled rows acc + p x s from the same products, see
// "Prescaled panels"), so results are bit-identical and batch invariance holds.
// kernels_bench (2 threads, 512 tokens, [4096,4096]): 311-338 -> 383-387 GFLOP/s. FP4
// keeps decoding in the kernel: one 64-byte load there yields four weight vectors, and
// loads, not permutes, limit these kernels (panel FP4 ran at 320-355 against 382-485).

// One row block's panel, half of a Zen 5 core's 1 MiB L2. Every block streams all
// tokens' activations again (4 MiB at 512 tokens x 4096 columns, from L3), so a larger
// panel reads them less often: kernels_bench (fast, 512 tokens, 2 threads) with 128 KiB
// panels [4096, 4096] 390-400 GFLOP/s, 256 KiB 437-442, 512 KiB 451-469, 768 KiB and
// 1 MiB 396-440.
constexpr int64_t kPanelBytes = 512 << 10;

// Token tiles pass over a row block in column slices of kSliceGroups scale groups (1024
// columns): a slice's activations (4 tokens x 1024 columns, 8 KiB) stay in L1 while every
// row of the block passes, where whole rows (8192 wide: 64 KiB of activations plus 32 KiB
// of panel per row pair) streamed from L2. The panel is stored slice by slice, so that a
// slice's rows are contiguous. With 512 KiB panels, against one slice per row:
// [2048, 8192] 304 -> 382-411 GFLOP/s, [4096, 4096] 428-433 -> 451-461; before both
// changes 265-294 and 393-405. [16384, 1024] (one slice) stays at 530-545.
constexpr int64_t kSliceGroups = 8;

// Panel geometry of an FP8 w (n_in % 64 == 0): 128-column blocks, the last maybe 64.
struct PanelShape {
  int64_t groups = 0;       // scale blocks
  int last_vecs = 4;        // 32-word vectors in the last block (2 or 4)
  int64_t slices = 0;       // column slices of kSliceGroups blocks, the last maybe fewer
  int64_t slice_words = 0;  // bf16 words of one row in one slice (rows' stride in a slice)
  int64_t words = 0;        // bf16 words per panel row (slices * slice_words)
  int64_t scales = 0;       // floats per panel row (groups * 16)
  explicit PanelShape(const WeightView& w)
      : groups((w.n_in + 127) / 128), last_vecs(int((w.n_in - (groups - 1) * 128) / 32)),
        slices((groups + kSliceGroups - 1) / kSliceGroups), slice_words(std::min(groups, kSliceGroups) * 128),
        words(slices * slice_words), scales(groups * 16) {}
};

// Prescaled panels. fp8_rows ends each 128-column block of a (row, token) with
// acc = fma(p, s, acc): one multiply-add on the two pipes that also run VDPBF16PS, one per
// four dot products. A panel row whose weights are stored times their block scale (an
// exponent add on the bf16 words: the scale is a power of two) gives p' = p x s from the
// same dot products, and acc + p' runs on the adder pipes (one Zen 5 core, L1-resident
// 2 x 4 tiles: 255-258 -> 309-312 GFLOP/s). The two agree bit for bit while every nonzero
// partial sum in both chains is a normal fp32: scaling by 2^k then commutes with each
// rounding, and VDPBF16PS flushes nothing. Every E4M3 value is a multiple of 2^-9 and a
// bf16 activation of exponent >= -kPrescaleXExp a multiple of 2^(-kPrescaleXExp - 7),
// so every partial sum is a multiple of 2^(-kPrescaleXExp - 16 + min(k, 0)) >= 2^-126;
// and below 2^(kPrescaleXExp + 1 + 9 + 7 + max(k, 0)) < 2^128 (128 products of |w| <= 448).
// A row with a scale exponent k outside [-kPrescaleScaleExp, kPrescaleScaleExp] or a NaN
// code, and every row of a call whose activations leave the range, keep plain panels.
constexpr int kPrescaleXExp = 60;      // nonzero activations: |x| in [2^-60, 2^61)
constexpr int kPrescaleScaleExp = 50;  // block scales 2^k, |k| <= 50
static_assert(kPrescaleXExp + 16 + kPrescaleScaleExp <= 126 && kPrescaleXExp + 17 + kPrescaleScaleExp < 128);

// Panel row states (ok[] of the panel path).
enum PanelRow : uint8_t { kRowScalar = 0, kRowPlain = 1, kRowScaled = 2 };

}  // namespace

// Every nonzero word of xb [n_tok, ldxb] with an exponent in [-kPrescaleXExp,
// kPrescaleXExp] (NaN, infinities and bf16 subnormals fail; padding is zero).
DSV4_BF16_TARGET bool activations_prescalable(const uint16_t* xb, int64_t ldxb, int64_t n_tok) {
  const int64_t n = ldxb;
  const __m512i expo = _mm512_set1_epi16(0x7F80), mag = _mm512_set1_epi16(0x7FFF);
  const __m512i lo = _mm512_set1_epi16(int16_t((127 - kPrescaleXExp) << 7));
  const __m512i hi = _mm512_set1_epi16(int16_t((127 + kPrescaleXExp) << 7));
  __mmask32 bad = 0;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t c = 0; c < n; c += 32) {
      const __mmask32 valid = n - c >= 32 ? ~__mmask32(0) : (__mmask32(1) << (n - c)) - 1;
      const __m512i v = _mm512_maskz_loadu_epi16(valid, xb + t * ldxb + c);
      const __m512i e = _mm512_and_si512(v, expo);
      const __mmask32 nonzero = _mm512_mask_test_epi16_mask(valid, v, mag);
      bad |= _mm512_mask_cmplt_epu16_mask(nonzero, e, lo) | _mm512_mask_cmpgt_epu16_mask(nonzero, e, hi);
    }
  return bad == 0;
}

namespace {

// True when FP8 row r can be stored prescaled: no NaN code, every block scale exponent in
// [-kPrescaleScaleExp, kPrescaleScaleExp].
DSV4_BF16_TARGET bool fp8_row_prescalable(const WeightView& w, int64_t r) {
  const int64_t n = w.n_in, nb = (n + 127) / 128;
  if (!bytes_in_range(w.scale + ((r + w.row_offset) / 128) * nb, nb, 127 - kPrescaleScaleExp, 127 + kPrescaleScaleExp))
    return false;
  const uint8_t* wr = w.data + r * n;
  const __m512i low7 = _mm512_set1_epi8(0x7F);
  __mmask64 nan = 0;
  for (int64_t c = 0; c < n; c += 64) {
    const __mmask64 valid = n - c >= 64 ? ~__mmask64(0) : (__mmask64(1) << (n - c)) - 1;
    nan |= _mm512_mask_cmpeq_epi8_mask(valid, _mm512_and_si512(_mm512_maskz_loadu_epi8(valid, wr + c), low7), low7);
  }
  return nan == 0;
}

// FP8 row r into a panel: its slice s at pw + s * slice_stride (slice_words words), its
// scale vectors at sc [groups * 16]; with prescale (fp8_row_prescalable), every weight
// times its block scale. False (sc partly written) when its scales need the scalar path.
DSV4_BF16_TARGET bool decode_fp8_row(const WeightView& w, int64_t r, uint16_t* pw, int64_t slice_stride, float* sc,
                                      bool prescale) {
  const int64_t n = w.n_in, nb = (n + 127) / 128;
  const uint8_t* wr = w.data + r * n;
  const uint8_t* sr = w.scale + ((r + w.row_offset) / 128) * nb;
  for (int64_t b0 = 0; b0 < nb; b0 += kFp8ScaleRun) {
    alignas(64) float sv[kFp8ScaleRun];
    const int64_t b1 = std::min(nb, b0 + kFp8ScaleRun);
    if (!fp8_scale_run(sr + b0, b1 - b0, sv)) return false;
    for (int64_t b = b0; b < b1; ++b) _mm512_store_ps(sc + b * 16, _mm512_set1_ps(sv[b - b0]));
  }
  const Fp8Decoder dec = fp8_decoder();
  constexpr int64_t kSliceCols = kSliceGroups * 128;
  const __m512i mag = _mm512_set1_epi16(0x7FFF);
  for (int64_t c = 0; c < n; c += 64) {
    __m512i run_a, run_b;
    fp8_decode(dec, wr + c, run_a, run_b);
    if (prescale) {  // x 2^k: k added to the exponent of every nonzero word (never NaN here)
      const __m512i k = _mm512_set1_epi16(int16_t((int(sr[c / 128]) - 127) * 128));
      run_a = _mm512_mask_add_epi16(run_a, _mm512_test_epi16_mask(run_a, mag), run_a, k);
      run_b = _mm512_mask_add_epi16(run_b, _mm512_test_epi16_mask(run_b, mag), run_b, k);
    }
    uint16_t* dst = pw + (c / kSliceCols) * slice_stride + c % kSliceCols;
    _mm512_store_si512(dst, run_a);
    _mm512_store_si512(dst + 32, run_b);
  }
  return true;
}

// Panel rows k < R (row r + k: slice [g0, g1) at pw + k * sh.slice_words, scales at
// sc + k * sh.scales), tokens t0 .. t0+T-1, scale groups [g0, g1). Between column
// slices the sums of a (row, token) wait in park (R x T vectors of 16): the first slice
// starts them at zero, the last writes y. Slicing by whole groups keeps every sum's
// order. (First and Last are compile time: a runtime choice made GCC keep the sums in
// memory, and zeroing park with memset stalled the loads that followed it.) Scaled: the
// rows are prescaled, and each block's p joins acc by an add (same bits, see above).
template <int R, int T, bool First, bool Last, bool Scaled>
DSV4_BF16_TARGET void panel_rows(const WeightView& w, const PanelShape& sh, const uint16_t* pw, const float* sc,
                                 const uint16_t* xb, int64_t ldxb, int64_t t0, float* y, int64_t r, int64_t g0,
                                 int64_t g1, float* park) {
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[k][t] = First ? _mm512_setzero_ps() : _mm512_load_ps(park + (k * T + t) * 16);
  for (int64_t g = g0; g < g1; ++g) {
    const int nv = g + 1 == sh.groups ? sh.last_vecs : 4;
    __m512 p[R][T];
    for (int v = 0; v < nv; ++v) {
      __m512bh x[T];
      for (int t = 0; t < T; ++t) x[t] = load_bh(xb + (t0 + t) * ldxb + g * 128 + 32 * v);
      for (int k = 0; k < R; ++k) {
        const __m512bh wv = load_bh(pw + k * sh.slice_words + (g - g0) * 128 + 32 * v);
        for (int t = 0; t < T; ++t) p[k][t] = _mm512_dpbf16_ps(v == 0 ? _mm512_setzero_ps() : p[k][t], wv, x[t]);
      }
    }
    for (int k = 0; k < R; ++k) {
      if constexpr (Scaled) {
        for (int t = 0; t < T; ++t) acc[k][t] = _mm512_add_ps(acc[k][t], p[k][t]);
      } else {
        const __m512 s = _mm512_load_ps(sc + k * sh.scales + g * 16);
        for (int t = 0; t < T; ++t) acc[k][t] = _mm512_fmadd_ps(p[k][t], s, acc[k][t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      if (Last)
        y[(t0 + t) * w.n_out + r + k] = hsum(acc[k][t]);
      else
        _mm512_store_ps(park + (k * T + t) * 16, acc[k][t]);
    }
}

// One column slice [g0, g1) of a token tile over the decoded rows [b0, b1) (ok[i]: how
// row b0 + i is in the panel, a PanelRow; the slice's rows start at pws, slice_words
// apart): pairs of rows where both are, the same way (each activation load then serves
// two rows). Row i's sums wait at park + i * T * 16.
template <int T, bool First, bool Last>
DSV4_BF16_TARGET void panel_slice(const WeightView& w, const PanelShape& sh, const uint16_t* pws, const float* sc,
                                  const uint8_t* ok, const uint16_t* xb, int64_t ldxb, int64_t t0, float* y,
                                  int64_t b0, int64_t b1, int64_t g0, int64_t g1, float* park) {
  for (int64_t r = b0; r < b1; ++r) {
    const int64_t i = r - b0;
    if (ok[i] == kRowScalar) continue;
    const uint16_t* pwi = pws + i * sh.slice_words;
    const float* sci = sc + i * sh.scales;
    float* pk = park + i * T * 16;
    const bool scaled = ok[i] == kRowScaled;
    if (r + 1 < b1 && ok[i + 1] == ok[i]) {
      if (scaled) panel_rows<2, T, First, Last, true>(w, sh, pwi, sci, xb, ldxb, t0, y, r, g0, g1, pk);
      else panel_rows<2, T, First, Last, false>(w, sh, pwi, sci, xb, ldxb, t0, y, r, g0, g1, pk);
      ++r;
    } else if (scaled) {
      panel_rows<1, T, First, Last, true>(w, sh, pwi, sci, xb, ldxb, t0, y, r, g0, g1, pk);
    } else {
      panel_rows<1, T, First, Last, false>(w, sh, pwi, sci, xb, ldxb, t0, y, r, g0, g1, pk);
    }
  }
}

// One token tile over a row block whose panel holds rb rows, slice by slice.
template <int T>
DSV4_BF16_TARGET void panel_tile(const WeightView& w, const PanelShape& sh, const uint16_t* pw, int64_t rb,
                                 const float* sc, const uint8_t* ok, const uint16_t* xb, int64_t ldxb, int64_t t0,
                                 float* y, int64_t b0, int64_t b1, float* park) {
  for (int64_t s = 0; s < sh.slices; ++s) {
    const int64_t g0 = s * kSliceGroups, g1 = std::min(sh.groups, g0 + kSliceGroups);
    const uint16_t* pws = pw + s * rb * sh.slice_words;
    const bool first = s == 0, last = s + 1 == sh.slices;
    if (first && last)
      panel_slice<T, true, true>(w, sh, pws, sc, ok, xb, ldxb, t0, y, b0, b1, g0, g1, park);
    else if (first)
      panel_slice<T, true, false>(w, sh, pws, sc, ok, xb, ldxb, t0, y, b0, b1, g0, g1, park);
    else if (last)
      panel_slice<T, false, true>(w, sh, pws, sc, ok, xb, ldxb, t0, y, b0, b1, g0, g1, park);
    else
      panel_slice<T, false, false>(w, sh, pws, sc, ok, xb, ldxb, t0, y, b0, b1, g0, g1, park);
  }
}

// Rows [r0, r1) of an FP8 product with many tokens, block by block through panels.
DSV4_BF16_TARGET void fp8_rows_from_panels(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr,
                                           int64_t n_tok, float* y, int64_t r0, int64_t r1, bool x_prescalable) {
  const PanelShape sh(w);
  const int64_t row_bytes = sh.words * 2 + sh.scales * 4;
  const int64_t rb = std::clamp<int64_t>(kPanelBytes / row_bytes / 2 * 2, 2, std::max<int64_t>(2, r1 - r0));
  thread_local ScratchBuffer<uint16_t> words_tl;
  thread_local ScratchBuffer<float> scales_tl;
  thread_local std::vector<uint8_t> ok_tl;
  uint16_t* pw = words_tl.get(rb * sh.words);
  float* sc = scales_tl.get(rb * sh.scales);
  thread_local ScratchBuffer<float> park_tl;
  if (int64_t(ok_tl.size()) < rb) ok_tl.resize(size_t(rb));
  uint8_t* ok = ok_tl.data();
  float* park = park_tl.get(rb * kTokTile * 16);
  RowPrefetcher prefetcher(w, r0, r1);
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = std::min(r1, b0 + rb);
    for (int64_t r = b0; r < b1; ++r) {
      const int64_t i = r - b0;
      prefetcher.before(r);
      const bool scaled = x_prescalable && fp8_row_prescalable(w, r);
      ok[i] = !decode_fp8_row(w, r, pw + i * sh.slice_words, rb * sh.slice_words, sc + i * sh.scales, scaled)
                  ? kRowScalar
                  : scaled ? kRowScaled : kRowPlain;
      if (ok[i] == kRowScalar) rounded_scalar_row(w, r, xr, 0, n_tok, y);  // scales the vector paths do not take
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
      switch (std::min<int64_t>(kTokTile, n_tok - t0)) {
        case 1: panel_tile<1>(w, sh, pw, rb, sc, ok, xb, ldxb, t0, y, b0, b1, park); break;
        case 2: panel_tile<2>(w, sh, pw, rb, sc, ok, xb, ldxb, t0, y, b0, b1, park); break;
        case 3: panel_tile<3>(w, sh, pw, rb, sc, ok, xb, ldxb, t0, y, b0, b1, park); break;
        default: panel_tile<4>(w, sh, pw, rb, sc, ok, xb, ldxb, t0, y, b0, b1, park); break;
      }
    }
  }
}

}  // namespace

bool available() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
    return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 5)) != 0;  // CPUID.(EAX=7,ECX=1):EAX[5] = AVX512_BF16
}

// FP8 needs the byte permutes of AVX512_VBMI besides BF16 (Cooper Lake has BF16 only),
// and whole 64-column chunks.
bool handles(const WeightView& w) {
  static const bool vbmi = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") != 0;
  }();
  switch (w.format) {
    case WeightFormat::BF16:
    case WeightFormat::FP4_BLOCK32: return true;
    case WeightFormat::FP8_BLOCK128: return vbmi && w.n_in % 64 == 0;
    case WeightFormat::F32: return false;
  }
  return false;
}

int64_t prep_words(const WeightView& w) { return (w.n_in + 31) / 32 * 32; }

namespace {

// f32_to_bf16_ftz of 16 floats (the same integer steps, bit for bit), as 16 words.
DSV4_BF16_TARGET inline __m256i bf16_words16(const float* x) {
  const __m512i u = _mm512_loadu_si512(x);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                _mm512_set1_epi32(0x7F800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i h = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
  h = _mm512_mask_mov_epi32(h, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  const __mmask16 tiny = _mm512_testn_epi32_mask(h, _mm512_set1_epi32(0x7F80));
  h = _mm512_mask_and_epi32(h, tiny, h, _mm512_set1_epi32(0x8000));
  return _mm512_cvtepi32_epi16(h);
}

// 32 or 64 consecutive floats as bf16 words in one / two zmm.
DSV4_BF16_TARGET inline __m512i bf16_words32(const float* x) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(bf16_words16(x)), bf16_words16(x + 16), 1);
}

// Word permutes of prep's layouts (see bf16dot.h), built once.
struct PrepIdx {
  alignas(64) uint16_t fp4[4][32];  // run k lane l <- word 4 (l % 16) + k of a 64-word half
  alignas(64) uint16_t fp8[2][32];  // run A / B lane m <- word 16 (m / 8) + 8 B + m % 8 of 64
  PrepIdx() {
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) fp4[k][l] = uint16_t(4 * (l % 16) + k);
    for (int b = 0; b < 2; ++b)
      for (int m = 0; m < 32; ++m) fp8[b][m] = uint16_t(16 * (m / 8) + 8 * b + m % 8);
  }
};
const PrepIdx kPrepIdx;

}  // namespace

// The layouts in scalar steps: the statement prep must match (tested).
void prep_reference(const WeightView& w, const float* x, uint16_t* xb) {
  const int64_t n = w.n_in;
  int64_t c = 0;
  if (w.format == WeightFormat::FP4_BLOCK32)
    for (; c + 128 <= n; c += 128)
      for (int64_t k = 0; k < 4; ++k)
        for (int64_t j = 0; j < 32; ++j) xb[c + 32 * k + j] = f32_to_bf16_ftz(x[c + 4 * j + k]);
  if (w.format == WeightFormat::FP8_BLOCK128)
    for (; c + 64 <= n; c += 64)
      for (int64_t lane = 0; lane < 4; ++lane)
        for (int64_t i = 0; i < 8; ++i) {
          xb[c + 8 * lane + i] = f32_to_bf16_ftz(x[c + 16 * lane + i]);            // run A
          xb[c + 32 + 8 * lane + i] = f32_to_bf16_ftz(x[c + 16 * lane + 8 + i]);   // run B
        }
  for (; c < n; ++c) xb[c] = f32_to_bf16_ftz(x[c]);
  for (; c < prep_words(w); ++c) xb[c] = 0;
}

// Vector conversion and word permutes for whole chunks (this runs on the calling thread
// for every product: [3072, 4096] FP4 activations 5.6 -> 3.3 ms); tails as the reference.
DSV4_BF16_TARGET void prep(const WeightView& w, const float* x, uint16_t* xb) {
  const int64_t n = w.n_in;
  int64_t c = 0;
  if (w.format == WeightFormat::FP4_BLOCK32) {
    const __m512i i0 = _mm512_load_si512(kPrepIdx.fp4[0]), i1 = _mm512_load_si512(kPrepIdx.fp4[1]);
    const __m512i i2 = _mm512_load_si512(kPrepIdx.fp4[2]), i3 = _mm512_load_si512(kPrepIdx.fp4[3]);
    for (; c + 128 <= n; c += 128) {
      // Words 0..63 in (lo, lo2), 64..127 in (hi, hi2); run k lane l is word 4l + k:
      // lanes < 16 from the first pair, lanes >= 16 from the second (4 (l - 16) + k + 64).
      const __m512i lo = bf16_words32(x + c), lo2 = bf16_words32(x + c + 32);
      const __m512i hi = bf16_words32(x + c + 64), hi2 = bf16_words32(x + c + 96);
      const __m512i idx[4] = {i0, i1, i2, i3};
      for (int k = 0; k < 4; ++k) {
        const __m512i a = _mm512_permutex2var_epi16(lo, idx[k], lo2);
        const __m512i b = _mm512_permutex2var_epi16(hi, idx[k], hi2);
        _mm512_storeu_si512(xb + c + 32 * k, _mm512_mask_blend_epi16(0xFFFF0000u, a, b));
      }
    }
  }
  if (w.format == WeightFormat::FP8_BLOCK128) {
    const __m512i ia = _mm512_load_si512(kPrepIdx.fp8[0]), ib = _mm512_load_si512(kPrepIdx.fp8[1]);
    for (; c + 64 <= n; c += 64) {
      const __m512i lo = bf16_words32(x + c), hi = bf16_words32(x + c + 32);
      _mm512_storeu_si512(xb + c, _mm512_permutex2var_epi16(lo, ia, hi));
      _mm512_storeu_si512(xb + c + 32, _mm512_permutex2var_epi16(lo, ib, hi));
    }
  }
  if (w.format == WeightFormat::BF16)
    for (; c + 32 <= n; c += 32) _mm512_storeu_si512(xb + c, bf16_words32(x + c));
  for (; c < n; ++c) xb[c] = f32_to_bf16_ftz(x[c]);
  for (; c < prep_words(w); ++c) xb[c] = 0;
}

// The FP8 block scales of a decode pair's two streams as fp32, each converted when its
// stream enters another 128-row block: 128 rows share a scale row, and fp8_rows converted
// both rows' scales for every pair (with 1 KiB rows, wq_b [32768, 1024], a third of the
// time: one core, weight in L2, kernels_bench --only fp8 --fp8-copies 1 --fp8-shape
// 512x1024, taskset -c 1: 45-47 -> 57-59 GB/s; 4 KiB rows 63-68 -> 68-69. From memory
// nothing above the host's noise: two threads already read these products at a plain
// read's speed). For rows of at most kFp8ScaleRun blocks.
struct Fp8PairScales {
  alignas(64) float sv[2][kFp8ScaleRun];
  int64_t block[2] = {-1, -1};  // the 128-row block whose scales sv[k] holds
  bool ok[2] = {false, false};  // false: a scale of that block needs the scalar path

  // Scales for rows ra and rb; false when either row needs another path.
  DSV4_BF16_TARGET bool for_rows(const WeightView& w, int64_t ra, int64_t rb) {
    const int64_t nb = (w.n_in + 127) / 128, rows[2] = {ra, rb};
    for (int k = 0; k < 2; ++k) {
      const int64_t b = (rows[k] + w.row_offset) / 128;
      if (b == block[k]) continue;
      ok[k] = fp8_scale_run(w.scale + b * nb, nb, sv[k]);
      block[k] = b;
    }
    return ok[0] && ok[1];
  }
};

// Decode (one token): the rows of the piece in pairs half the piece apart
// (for_row_pairs_apart; a pair whose scales need it goes row by row). kernels_bench, 2
// threads, Zen 5, alternating runs, against four adjacent rows per step before: FP4
// experts 34.5-46.5 -> 48.0-48.3 GB/s (groups of 12: 34.7-51.6 -> 49.7-53.9), FP8
// [4096, 4096] 48.7-49.4 -> 52.0-53.0, [4096, 8192] (two adjacent rows before) 47.5-49.3
// -> 55.7-57.1, [32768, 1024] 53.0-54.7 -> 60.9-62.2; the LM head 44.7-45.0 -> 57.1-57.3.
DSV4_BF16_TARGET void decode_rows_apart(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr,
                                        float* y, int64_t r0, int64_t r1) {
  // FP8 rows of up to kFp8ScaleRun blocks: fp8_rows<2, 1>'s steps on scales, decoder and
  // prefetch distance kept across the piece's pairs (same bits).
  const int64_t nb = (w.n_in + 127) / 128;
  const bool fp8_kept = w.format == WeightFormat::FP8_BLOCK128 && nb <= kFp8ScaleRun;
  const Fp8Decoder dec = fp8_decoder();
  const int64_t fp8_pf = prefetch_distance(2, w.n_in, (r1 - r0) / 2);
  Fp8PairScales fp8_scales;
  const auto pair = [&](int64_t ra, int64_t rb) DSV4_BF16_TARGET {
    if (w.format == WeightFormat::FP4_BLOCK32) return fp4_rows<2, 1>(w, xb, ldxb, xr, 0, y, ra, rb - ra);
    if (fp8_kept) {
      if (!fp8_scales.for_rows(w, ra, rb)) return false;
      const uint8_t* wr[2] = {w.data + ra * w.n_in, w.data + rb * w.n_in};
      __m512 acc[2][1] = {{_mm512_setzero_ps()}, {_mm512_setzero_ps()}};
      fp8_run_blocks<2, 1>(dec, wr, xb, ldxb, 0, w.n_in, 0, nb, fp8_pf, fp8_scales.sv, acc);
      y[ra] = hsum(acc[0][0]);
      y[rb] = hsum(acc[1][0]);
      return true;
    }
    if (w.format == WeightFormat::FP8_BLOCK128) return fp8_rows<2, 1>(w, xb, ldxb, 0, y, ra, rb - ra);
    bf16_rows<2, 1>(w, xb, ldxb, xr, 0, y, ra, rb - ra);
    return true;
  };
  for_row_pairs_apart(r0, r1, pair, [&](int64_t r) DSV4_BF16_TARGET { row_tile<1, 1>(w, xb, ldxb, xr, 0, y, r); });
}

DSV4_BF16_TARGET void rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t n_tok,
                           float* y, int64_t r0, int64_t r1, bool x_prescalable) {
  if (n_tok > kTokTile && w.format == WeightFormat::FP8_BLOCK128)
    return fp8_rows_from_panels(w, xb, ldxb, xr, n_tok, y, r0, r1, x_prescalable);
  if (n_tok == 1) return decode_rows_apart(w, xb, ldxb, xr, y, r0, r1);
  // Row blocks of ~256 KiB of weights stay in L2 while the token tiles pass over them;
  // every block streams all tokens' activations again (4 MiB at 512 tokens x 4096), so
  // larger blocks read them less often: kernels_bench (fast, 512 tokens, 2 threads) BF16
  // [4096, 4096] 357 -> 398-405 GFLOP/s against 64 KiB blocks, FP4 +1-2%. (The exact
  // kernels keep 64 KiB: their FP4 tile measured 10-15% slower with 256 KiB.)
  const int64_t rb = std::max<int64_t>(1, (int64_t(256) << 10) / std::max<int64_t>(1, w.row_bytes()));
  RowPrefetcher prefetcher(w, r0, r1);
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = std::min(r1, b0 + rb);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
      const int64_t nt = std::min<int64_t>(kTokTile, n_tok - t0);
      RowPrefetcher* pf = t0 == 0 ? &prefetcher : nullptr;
      switch (nt) {
        case 1: tile_rows<1>(w, xb, ldxb, xr, t0, y, b0, b1, pf); break;
        case 2: tile_rows<2>(w, xb, ldxb, xr, t0, y, b0, b1, pf); break;
        case 3: tile_rows<3>(w, xb, ldxb, xr, t0, y, b0, b1, pf); break;
        default: tile_rows<4>(w, xb, ldxb, xr, t0, y, b0, b1, pf); break;
      }
    }
  }
}

DSV4_BF16_TARGET double burn(int64_t iters, float* sink) {
  // 16 independent accumulator chains: enough to cover the instruction's latency on the
  // dot-product pipes. Each VDPBF16PS is 32 multiply-adds (64 FLOP).
  __m512 acc[16];
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_set1_ps(float(k));
  const __m512bh a = as_bh(_mm512_set1_epi16(0x3F80)), b = as_bh(_mm512_set1_epi16(0x3300));  // 1, 2^-25
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 16; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  __m512 s = acc[0];
  for (int k = 1; k < 16; ++k) s = _mm512_add_ps(s, acc[k]);
  *sink = hsum(s);
  return double(iters) * 16.0 * 64.0;
}

}  // namespace dsv4::backend::cpu::bf16dot
