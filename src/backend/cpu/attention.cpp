// Attention over an explicit key list (K = V, per-head sink in the denominator) and the
// lightning-indexer scores, in fp32 with SIMD over the feature dimension and threads over
// heads (attention) or key tiles (indexer). Compiled once per Highway target and
// dispatched at run time like the matrix products. Tested against RefOps (double) in
// src/backend/tests/cpu_ops_test.cpp.
//
// attention: heads are taken kHeads at a time so that every key row loaded from cache
// serves several heads, first for the logits (dot products, two accumulator chains per
// head), then for the weighted sum of the keys (register accumulators over two column
// vectors per head, keys walked in order). Softmax in fp32 (std::exp) with the maximum
// taken over the logits and the sink, which keeps exp(sink - m) finite.
// index_scores: a tile of L keys is transposed so that the L keys lie across the vector
// lanes; each query head then costs head_dim broadcast multiply-adds per tile and no
// horizontal reduction, and relu(dot) * weight is summed over heads in order.
// The summation order of every result depends only on the shapes, never on the thread
// count or on which tile a key falls in (batch invariance).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

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
constexpr int kIdxHeads = 8;   // indexer heads per register block

// Heads [h0, h0 + nh) of one query, nh <= kHeads. logit: scratch [kHeads * n_keys].
void AttnHeads(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
               int64_t h0, int nh, int64_t hd, float scale, float* out, float* logit) {
  const DFa d;
  const int64_t L = int64_t(hn::Lanes(d));
  const float* qh[kHeads];
  for (int a = 0; a < kHeads; ++a) qh[a] = q + (h0 + std::min(a, nh - 1)) * hd;  // pad: repeat the last
  // Logits.
  for (int64_t k = 0; k < n_keys; ++k) {
    const float* kk = keys[k];
    decltype(hn::Zero(d)) acc0[kHeads], acc1[kHeads];
    for (int a = 0; a < kHeads; ++a) acc0[a] = acc1[a] = hn::Zero(d);
    int64_t c = 0;
    for (; c + 2 * L <= hd; c += 2 * L) {
      const auto k0 = hn::LoadU(d, kk + c), k1 = hn::LoadU(d, kk + c + L);
      for (int a = 0; a < kHeads; ++a) {
        acc0[a] = hn::MulAdd(hn::LoadU(d, qh[a] + c), k0, acc0[a]);
        acc1[a] = hn::MulAdd(hn::LoadU(d, qh[a] + c + L), k1, acc1[a]);
      }
    }
    for (; c + L <= hd; c += L) {
      const auto k0 = hn::LoadU(d, kk + c);
      for (int a = 0; a < kHeads; ++a) acc0[a] = hn::MulAdd(hn::LoadU(d, qh[a] + c), k0, acc0[a]);
    }
    for (int a = 0; a < kHeads; ++a) {
      float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0[a], acc1[a])));
      for (int64_t i = c; i < hd; ++i) s = std::fma(qh[a][i], kk[i], s);
      logit[a * n_keys + k] = scale * s;
    }
  }
  // Softmax weights (in place) and denominators.
  float den_f[kHeads];
  for (int a = 0; a < kHeads; ++a) {
    float* l = logit + a * n_keys;
    const float sk = sink[h0 + std::min(a, nh - 1)];
    float m = sk;
    for (int64_t k = 0; k < n_keys; ++k) m = std::max(m, l[k]);
    double den = double(std::exp(sk - m));
    for (int64_t k = 0; k < n_keys; ++k) {
      l[k] = std::exp(l[k] - m);
      den += double(l[k]);
    }
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
    float* l = aligned_scratch(logit, kHeads * n_keys);
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

// Scores of the keys [j0, j0 + nk), nk <= L. kt: scratch [dim * L].
void IndexTile(const float* q, const float* hw, int64_t n_head, const float* keys, int64_t j0, int64_t nk,
               int64_t dim, float* kt, float* score) {
  const DFa d;
  const int64_t L = int64_t(hn::Lanes(d));
  for (int64_t lane = 0; lane < L; ++lane) {
    const float* kr = keys + (j0 + std::min(lane, nk - 1)) * dim;  // pad: repeat the last key
    for (int64_t i = 0; i < dim; ++i) kt[i * L + lane] = kr[i];
  }
  const auto zero = hn::Zero(d);
  auto sv = zero;
  int64_t h = 0;
  for (; h + kIdxHeads <= n_head; h += kIdxHeads) {
    decltype(hn::Zero(d)) acc[kIdxHeads];
    for (int a = 0; a < kIdxHeads; ++a) acc[a] = zero;
    const float* qh = q + h * dim;
    for (int64_t i = 0; i < dim; ++i) {
      const auto kv = hn::Load(d, kt + i * L);
      for (int a = 0; a < kIdxHeads; ++a) acc[a] = hn::MulAdd(hn::Set(d, qh[a * dim + i]), kv, acc[a]);
    }
    for (int a = 0; a < kIdxHeads; ++a) sv = hn::MulAdd(hn::Max(acc[a], zero), hn::Set(d, hw[h + a]), sv);
  }
  for (; h < n_head; ++h) {
    auto acc = zero;
    const float* qh = q + h * dim;
    for (int64_t i = 0; i < dim; ++i) acc = hn::MulAdd(hn::Set(d, qh[i]), hn::Load(d, kt + i * L), acc);
    sv = hn::MulAdd(hn::Max(acc, zero), hn::Set(d, hw[h]), sv);
  }
  if (nk == L) {
    hn::StoreU(sv, d, score + j0);
  } else {
    HWY_ALIGN float tmp[hn::MaxLanes(DFa())];
    hn::Store(sv, d, tmp);
    std::memcpy(score + j0, tmp, size_t(nk) * sizeof(float));
  }
}

void IndexScoresImpl(const float* q, const float* head_weight, int64_t n_head, const float* keys,
                     int64_t n_keys, int64_t dim, float* score, ThreadPool* pool) {
  if (n_keys <= 0) return;
  const int64_t L = int64_t(hn::Lanes(DFa()));
  const int64_t n_tiles = (n_keys + L - 1) / L;
  auto tiles = [&](int64_t t0, int64_t t1) {
    thread_local ScratchBuffer<float> kt_buf;
    float* kt = aligned_scratch(kt_buf, dim * L);
    for (int64_t t = t0; t < t1; ++t)
      IndexTile(q, head_weight, n_head, keys, t * L, std::min(L, n_keys - t * L), dim, kt, score);
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
