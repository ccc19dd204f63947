// Attention over an explicit key list (K = V, per-head sink in the denominator) and the
// lightning-indexer scores, in fp32 with SIMD over the feature dimension and threads over
// heads (attention) or key tiles (indexer). Compiled once per Highway target and
// dispatched at run time like the matrix products. Tested against RefOps (double) in
// src/backend/tests/cpu_ops_test.cpp.
//
// attention: heads are taken kHeads at a time so that every key row loaded from cache
// serves several heads, first for the logits (kAttnKeys keys at a time, one accumulator
// chain per head and key: one Zen 3 core, 64 heads x 640 keys of 512, 2.40 -> 2.22 ms per
// call against one key at a time, whose ten loads per eight multiply-adds held it on the
// load ports), then for the weighted sum of the keys (register accumulators over two
// column vectors per head, keys walked in order). Softmax in fp32 (vector Exp) with the
// maximum taken over the logits and the sink, which keeps exp(sink - m) finite.
// index_scores: the query is transposed once so that its heads lie across the vector
// lanes; four keys at a time, each feature costs kIdxVecs query vector loads (four on
// AVX-512, two on 16-register targets) and one broadcast per key for 4 * kIdxVecs
// multiply-adds, and relu(dot) * weight is summed over the
// heads in order. (Transposing every 16-key tile of the keys instead, one scalar move per
// key element: decode indexer at 32K context 0.66-0.82 ms per token, against 0.58-0.78.)
// The summation order of every result depends only on the shapes, never on the thread
// count or on which tile a key falls in (batch invariance).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/aligned_scratch.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::backend::cpu {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using DFa = hn::ScalableTag<float>;

constexpr int kHeads = 4;      // attention heads sharing one pass over the keys
constexpr int kAttnKeys = 2;   // keys per register block of the attention logits
constexpr int kIdxKeys = 4;    // indexer keys per register block
// Indexer head vectors per register block: kIdxKeys x kIdxVecs accumulators. Sixteen fit
// AVX-512's 32 registers (64 heads per pass); on AVX2's 16 they spilled, and eight there
// took the indexer from 2.75 to 1.82 ms per 8192 keys x 64 heads x 128 (one Zen 3 core).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kIdxVecs = 4;
#else
constexpr int kIdxVecs = 2;
#endif

// l[k] <- exp(l[k] - m) for k < n, in vectors (Highway's Exp, within 1 ulp of std::exp;
// one Zen 3 core, 64 heads x 640 keys: 2.22 -> 2.16 ms per call). The last partial
// vector goes through a padded copy so that every position gets the same function. A NaN
// stays NaN (Exp alone would give 0 and hide it).
void ExpShifted(float* l, int64_t n, float m) {
  const DFa d;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto vm = hn::Set(d, m);
  const auto exp_shifted = [&](const float* src, float* dst) {
    const auto x = hn::Sub(hn::LoadU(d, src), vm);
    hn::StoreU(hn::IfThenElse(hn::IsNaN(x), x, hn::Exp(d, x)), d, dst);
  };
  int64_t k = 0;
  for (; k + L <= n; k += L) exp_shifted(l + k, l + k);
  if (k < n) {
    HWY_ALIGN float pad[hn::MaxLanes(d)] = {};
    std::memcpy(pad, l + k, size_t(n - k) * sizeof(float));
    exp_shifted(pad, pad);
    std::memcpy(l + k, pad, size_t(n - k) * sizeof(float));
  }
}

// Heads [h0, h0 + nh) of one query, nh <= kHeads. logit: scratch [kHeads * n_keys].
void AttnHeads(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
               int64_t h0, int nh, int64_t hd, float scale, float* out, float* logit) {
  const DFa d;
  const int64_t L = int64_t(hn::Lanes(d));
  const float* qh[kHeads];
  for (int a = 0; a < kHeads; ++a) qh[a] = q + (h0 + std::min(a, nh - 1)) * hd;  // pad: repeat the last
  // Logits, kAttnKeys keys at a time: per step one vector of each key and of each head's
  // query, kHeads * kAttnKeys multiply-adds (one chain per head and key) for
  // kHeads + kAttnKeys loads.
  for (int64_t k = 0; k < n_keys; k += kAttnKeys) {
    const int kb = int(std::min<int64_t>(kAttnKeys, n_keys - k));
    const float* kr[kAttnKeys];
    for (int j = 0; j < kAttnKeys; ++j) kr[j] = keys[k + std::min(j, kb - 1)];  // pad: repeat the last
    decltype(hn::Zero(d)) acc[kHeads][kAttnKeys];
    for (int a = 0; a < kHeads; ++a)
      for (int j = 0; j < kAttnKeys; ++j) acc[a][j] = hn::Zero(d);
    int64_t c = 0;
    for (; c + L <= hd; c += L) {
      decltype(hn::Zero(d)) kv[kAttnKeys];
      for (int j = 0; j < kAttnKeys; ++j) kv[j] = hn::LoadU(d, kr[j] + c);
      for (int a = 0; a < kHeads; ++a) {
        const auto qv = hn::LoadU(d, qh[a] + c);
        for (int j = 0; j < kAttnKeys; ++j) acc[a][j] = hn::MulAdd(qv, kv[j], acc[a][j]);
      }
    }
    for (int a = 0; a < kHeads; ++a)
      for (int j = 0; j < kb; ++j) {
        float s = hn::GetLane(hn::SumOfLanes(d, acc[a][j]));
        for (int64_t i = c; i < hd; ++i) s = std::fma(qh[a][i], kr[j][i], s);
        logit[a * n_keys + k + j] = scale * s;
      }
  }
  // Softmax weights (in place) and denominators.
  float den_f[kHeads];
  for (int a = 0; a < kHeads; ++a) {
    float* l = logit + a * n_keys;
    const float sk = sink[h0 + std::min(a, nh - 1)];
    float m = sk;
    for (int64_t k = 0; k < n_keys; ++k) m = std::max(m, l[k]);
    ExpShifted(l, n_keys, m);
    double den = double(std::exp(sk - m));
    for (int64_t k = 0; k < n_keys; ++k) den += double(l[k]);
    den_f[a] = float(den);
  }
  // Weighted sums of the keys.
  int64_t c = 0;
  for (; c + 2 * L <= hd; c += 2 * L) {
    decltype(hn::Zero(d)) acc0[kHeads], acc1[kHeads];
    for (int a = 0; a < kHeads; ++a) acc0[a] = acc1[a] = hn::Zero(d);
    for (int64_t k = 0; k < n_keys; ++k) {
      const auto k0 = hn::LoadU(d, keys[k] + c), k1 = hn::LoadU(d, keys[k] + c + L);
      for (int a = 0; a < kHeads; ++a) {
        const auto p = hn::Set(d, logit[a * n_keys + k]);
        acc0[a] = hn::MulAdd(p, k0, acc0[a]);
        acc1[a] = hn::MulAdd(p, k1, acc1[a]);
      }
    }
    for (int a = 0; a < nh; ++a) {
      const auto den = hn::Set(d, den_f[a]);
      hn::StoreU(hn::Div(acc0[a], den), d, out + (h0 + a) * hd + c);
      hn::StoreU(hn::Div(acc1[a], den), d, out + (h0 + a) * hd + c + L);
    }
  }
  for (; c + L <= hd; c += L) {
    decltype(hn::Zero(d)) acc0[kHeads];
    for (int a = 0; a < kHeads; ++a) acc0[a] = hn::Zero(d);
    for (int64_t k = 0; k < n_keys; ++k) {
      const auto k0 = hn::LoadU(d, keys[k] + c);
      for (int a = 0; a < kHeads; ++a) acc0[a] = hn::MulAdd(hn::Set(d, logit[a * n_keys + k]), k0, acc0[a]);
    }
    for (int a = 0; a < nh; ++a) hn::StoreU(hn::Div(acc0[a], hn::Set(d, den_f[a])), d, out + (h0 + a) * hd + c);
  }
  for (; c < hd; ++c)
    for (int a = 0; a < nh; ++a) {
      float s = 0.0f;
      for (int64_t k = 0; k < n_keys; ++k) s = std::fma(logit[a * n_keys + k], keys[k][c], s);
      out[(h0 + a) * hd + c] = s / den_f[a];
    }
}

void AttentionImpl(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
                   int64_t n_head, int64_t hd, float scale, float* out, ThreadPool* pool) {
  if (n_head <= 0 || n_keys <= 0) return;
  const int64_t n_groups = (n_head + kHeads - 1) / kHeads;
  auto group = [&](int64_t g) {
    thread_local ScratchBuffer<float> logit;
    float* l = logit.get(kHeads * n_keys);
    const int64_t h0 = g * kHeads;
    AttnHeads(q, keys, n_keys, sink, h0, int(std::min<int64_t>(kHeads, n_head - h0)), hd, scale, out, l);
  };
  if (pool != nullptr && pool->n_threads() > 1 && n_groups > 1 && n_head * n_keys * hd >= (int64_t(1) << 16)) {
    pool->parallel_chunks(n_groups, 1, [&](int64_t g0, int64_t g1, int) {
      for (int64_t g = g0; g < g1; ++g) group(g);
    });
  } else {
    for (int64_t g = 0; g < n_groups; ++g) group(g);
  }
}

// Scores of the keys [j0, j1) from qt, the query transposed and zero-padded to hp heads
// ([dim][hp], hp a multiple of kIdxVecs lanes-wide vectors): kIdxKeys keys at a time, the
// heads across the vector lanes, so that each step loads kIdxVecs query vectors and one
// broadcast per key for kIdxKeys * kIdxVecs multiply-adds. dots: scratch [kIdxKeys * hp].
// Per (head, key) the dot product runs over the features in order from zero, and
// relu(dot) * weight is summed over the heads in order, as RefOps does in double.
void IndexKeys(const float* qt, int64_t hp, const float* hw, int64_t n_head, const float* keys, int64_t j0,
               int64_t j1, int64_t dim, float* dots, float* score) {
  const DFa d;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto zero = hn::Zero(d);
  for (int64_t j = j0; j < j1; j += kIdxKeys) {
    const int64_t kb = std::min<int64_t>(kIdxKeys, j1 - j);
    const float* kr[kIdxKeys];
    for (int kk = 0; kk < kIdxKeys; ++kk) kr[kk] = keys + (j + std::min<int64_t>(kk, kb - 1)) * dim;  // pad: repeat
    for (int64_t v0 = 0; v0 < hp; v0 += kIdxVecs * L) {
      decltype(hn::Zero(d)) acc[kIdxKeys][kIdxVecs];
      for (int kk = 0; kk < kIdxKeys; ++kk)
        for (int v = 0; v < kIdxVecs; ++v) acc[kk][v] = zero;
      for (int64_t i = 0; i < dim; ++i) {
        decltype(hn::Zero(d)) qv[kIdxVecs];
        for (int v = 0; v < kIdxVecs; ++v) qv[v] = hn::Load(d, qt + i * hp + v0 + v * L);
        for (int kk = 0; kk < kIdxKeys; ++kk) {
          const auto kx = hn::Set(d, kr[kk][i]);
          for (int v = 0; v < kIdxVecs; ++v) acc[kk][v] = hn::MulAdd(qv[v], kx, acc[kk][v]);
        }
      }
      for (int kk = 0; kk < kIdxKeys; ++kk)
        for (int v = 0; v < kIdxVecs; ++v) hn::Store(acc[kk][v], d, dots + kk * hp + v0 + v * L);
    }
    for (int64_t kk = 0; kk < kb; ++kk) {
      float sv = 0.0f;
      for (int64_t h = 0; h < n_head; ++h) {
        const float dot = dots[kk * hp + h];
        sv = std::fma(dot > 0.0f ? dot : 0.0f, hw[h], sv);  // relu as the vector max: NaN -> 0
      }
      score[j + kk] = sv;
    }
  }
}

void IndexScoresImpl(const float* q, const float* head_weight, int64_t n_head, const float* keys,
                     int64_t n_keys, int64_t dim, float* score, ThreadPool* pool) {
  if (n_keys <= 0) return;
  const int64_t L = int64_t(hn::Lanes(DFa()));
  const int64_t hp = (n_head + kIdxVecs * L - 1) / (kIdxVecs * L) * (kIdxVecs * L);
  thread_local ScratchBuffer<float> qt_buf;
  float* qt = qt_buf.get(dim * hp);  // [dim][hp]
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t h = 0; h < n_head; ++h) qt[i * hp + h] = q[h * dim + i];
    for (int64_t h = n_head; h < hp; ++h) qt[i * hp + h] = 0.0f;
  }
  constexpr int64_t kTile = 16;  // keys per piece handed out (a multiple of kIdxKeys)
  const int64_t n_tiles = (n_keys + kTile - 1) / kTile;
  auto tiles = [&](int64_t t0, int64_t t1) {
    thread_local ScratchBuffer<float> dots_buf;
    float* dots = dots_buf.get(kIdxKeys * hp);
    IndexKeys(qt, hp, head_weight, n_head, keys, t0 * kTile, std::min(n_keys, t1 * kTile), dim, dots, score);
  };
  if (pool != nullptr && pool->n_threads() > 1 && n_tiles > 1 &&
      n_head * n_keys * dim >= (int64_t(1) << 17)) {
    const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(32, (n_tiles + pool->n_threads() - 1) / pool->n_threads()));
    pool->parallel_chunks(n_tiles, grain, [&](int64_t t0, int64_t t1, int) { tiles(t0, t1); });
  } else {
    tiles(0, n_tiles);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::backend::cpu {

HWY_EXPORT(AttentionImpl);
HWY_EXPORT(IndexScoresImpl);

void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink, int64_t n_head,
               int64_t head_dim, float scale, float* out, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(AttentionImpl)(q, keys, n_keys, sink, n_head, head_dim, scale, out, pool);
}

void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys, int64_t n_keys,
                  int64_t dim, float* score, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(IndexScoresImpl)(q, head_weight, n_head, keys, n_keys, dim, score, pool);
}

}  // namespace dsv4::backend::cpu
#endif  // HWY_ONCE
