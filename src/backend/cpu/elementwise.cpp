// Element-wise glue of the forward pass with a fast kernel: the experts' SwiGLU
// (Ops::swiglu), sums of squares and RMS norms (Ops::sum_squares, Ops::rms_norm).
// Compiled once per Highway target and dispatched at run time like the matrix products;
// tested against RefOps in src/backend/tests/cpu_ops_test.cpp.
//
// sum_squares, rms_norm: the same bits as the reference, whose sums run in eight
// interleaved partials for this (see sum_squares_row). The one sequential double sum
// before waited on a dependent addition per element: 7 us per 4096-wide norm, 16 us per
// token for the hyper-connections' 16384-wide factor, on the main thread.
//
// swiglu: the reference evaluates every element in double with std::exp, one at a time:
// 4.3 ns per element on a Zen 5 core, 0.15 ms per decode token for two layers (7 experts
// x 2048 elements per layer, the largest item of the glue), ~20 ms per layer of a
// 512-token prefill. Here the same double arithmetic runs in vectors with Highway's Exp
// (within 1 ulp of std::exp): 1.25-1.5 ns per element (avx512), and a result differs
// from the reference only where that last double bit moves the rounding to float. A
// vector holding a NaN gate or a gate below -706 after the clamp (exp(-gate) past Exp's
// range), or a result past float's range, takes the reference's scalar formula, so
// overflow, infinities and NaN come out exactly as there.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/elementwise.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <limits>

#include "backend/cpu/kernels.h"
#include "backend/ref/ref_ops.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::backend::cpu {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

// Largest argument of Highway's double Exp (its documented range).
constexpr double kExpMaxArg = 706.0;

// sum_squares_row (ref/ref_ops.h) in vectors: eight consecutive elements are 8 / L
// vectors of L double lanes, element i lands in lane i % 8 of the set, the same partial
// sum as there, and each partial takes its elements in the same order (x^2 is exact in
// double, so a multiply-add equals the reference's multiply then add). Same bits.
double SumSquaresRowImpl(const float* x, int64_t n) {
  const hn::ScalableTag<double> d;
  const hn::Rebind<float, decltype(d)> df;
  const int64_t L = int64_t(hn::Lanes(d));
  if (L > 8 || 8 % L != 0) return sum_squares_row(x, n);
  const int64_t nv = 8 / L;
  decltype(hn::Zero(d)) acc[8];
  for (int64_t k = 0; k < nv; ++k) acc[k] = hn::Zero(d);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int64_t k = 0; k < nv; ++k) {
      const auto v = hn::PromoteTo(d, hn::LoadU(df, x + i + k * L));
      acc[k] = hn::MulAdd(v, v, acc[k]);
    }
  HWY_ALIGN double p[8];
  for (int64_t k = 0; k < nv; ++k) hn::Store(acc[k], d, p + k * L);
  for (; i < n; ++i) p[i % 8] += double(x[i]) * double(x[i]);
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

void SumSquaresImpl(const float* x, int64_t n_rows, int64_t n, double* ss) {
  for (int64_t r = 0; r < n_rows; ++r) ss[r] = SumSquaresRowImpl(x + r * n, n);
}

// RefOps::rms_norm's arithmetic per row, in vectors: the same sum (above), then
// rms_norm_element in double. A vector with a result past float's range (or NaN) takes
// the scalar steps, as in SwigluImpl.
void RmsNormImpl(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y) {
  const hn::ScalableTag<double> d;
  const hn::Rebind<float, decltype(d)> df;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto flt_max = hn::Set(d, double(std::numeric_limits<float>::max()));
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * n;  // [n]
    float* yt = y + t * n;        // [n], may be xt: each element is read before it is written
    const double r = rms_factor(SumSquaresRowImpl(xt, n), n, eps);
    const auto rv = hn::Set(d, r);
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      const auto w = weight ? hn::PromoteTo(d, hn::LoadU(df, weight + i)) : hn::Set(d, 1.0);
      const auto v = hn::Mul(hn::Mul(hn::PromoteTo(d, hn::LoadU(df, xt + i)), rv), w);
      if (hn::AllTrue(d, hn::Le(hn::Abs(v), flt_max))) {
        hn::StoreU(hn::DemoteTo(df, v), df, yt + i);
      } else {
        for (int64_t k = i; k < i + L; ++k) yt[k] = rms_norm_element(xt[k], r, weight, k);
      }
    }
    for (; i < n; ++i) yt[i] = rms_norm_element(xt[i], r, weight, i);
  }
}

void SwigluImpl(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n,
                double limit, float* out) {
  const hn::ScalableTag<double> d;
  const hn::Rebind<float, decltype(d)> df;  // the same lanes as floats (half a vector)
  const int64_t L = int64_t(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0), hi = hn::Set(d, limit), lo = hn::Set(d, -limit);
  const auto exp_max = hn::Set(d, kExpMaxArg);
  // DemoteTo saturates on some targets (the emulated one) where float() gives inf.
  const auto flt_max = hn::Set(d, double(std::numeric_limits<float>::max()));
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* gr = gate + r * n;  // [n]
    const float* ur = up + r * n;    // [n]
    float* orow = out + r * n;       // [n], may be gr or ur: each element is read before it is written
    const double weight = row_weight[r];
    const auto w = hn::Set(d, weight);
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      auto g = hn::PromoteTo(d, hn::LoadU(df, gr + i));
      auto u = hn::PromoteTo(d, hn::LoadU(df, ur + i));
      if (limit > 0) {
        // std::min(g, limit) and std::clamp(u, -limit, limit) compare-for-compare, so a
        // NaN passes through as it does there.
        g = hn::IfThenElse(hn::Lt(hi, g), hi, g);
        u = hn::IfThenElse(hn::Lt(u, lo), lo, hn::IfThenElse(hn::Lt(hi, u), hi, u));
      }
      const auto arg = hn::Neg(g);
      const auto silu = hn::Div(g, hn::Add(one, hn::Exp(d, arg)));
      const auto h = hn::Mul(hn::Mul(silu, u), w);
      // Exp's argument in its range (NaN is not), the result finite and within float's.
      if (hn::AllTrue(d, hn::And(hn::Le(arg, exp_max), hn::Le(hn::Abs(h), flt_max)))) {
        hn::StoreU(hn::DemoteTo(df, h), df, orow + i);
      } else {
        for (int64_t k = i; k < i + L; ++k) orow[k] = swiglu_element(gr[k], ur[k], limit, weight);
      }
    }
    for (; i < n; ++i) orow[i] = swiglu_element(gr[i], ur[i], limit, weight);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::backend::cpu {

HWY_EXPORT(SwigluImpl);
HWY_EXPORT(SumSquaresImpl);
HWY_EXPORT(RmsNormImpl);

void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) {
  HWY_DYNAMIC_DISPATCH(SumSquaresImpl)(x, n_rows, n, ss);
}

void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, weight, n_tok, n, eps, y);
}

void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n, double limit,
            float* out) {
  HWY_DYNAMIC_DISPATCH(SwigluImpl)(gate, up, row_weight, n_rows, n, limit, out);
}

}  // namespace dsv4::backend::cpu
#endif  // HWY_ONCE
