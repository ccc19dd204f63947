// Every fast CPU kernel against the scalar oracle (RefOps), on every SIMD target this CPU
// and binary can run, on odd shapes and on the real V4-Flash shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/bf16dot.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/prefetch.h"
#include "backend/ops.h"
#include "backend/ref/ref_ops.h"
#include "core/dtype.h"
#include "core/weight.h"

namespace dsv4::backend {
namespace {

// ---------------------------------------------------------------- tolerance table
// Exact numerics: every weight is dequantised exactly and every product w*x is formed
// exactly inside an fp32 FMA, so the only error against the double-precision oracle is
// the fp32 rounding of the n_in-term accumulation (plus the final rounding of the
// oracle to float). The classical worst case is gamma_n = n*u*sum|w x| (u = 2^-24);
// the kernels sum in short chains inside many vector lanes and then across lanes, and
// rounding errors behave like independent zero-mean variables, which gives the
// probabilistic bound (Higham & Mary) lambda * sqrt(n) * u * sum|w x| with a small
// lambda. The table keeps lambda per numerics mode and weight format (the format does
// not change the exact mode: the weights are exact) and adds an absolute floor of a few
// fp32 subnormal steps per term for products near underflow.
struct Tolerance {
  double lambda;     // multiple of sqrt(n_in) * u * sum|w x|
  double abs_floor;  // per-term absolute slack
};

Tolerance tolerance(Numerics numerics, WeightFormat f) {
  switch (numerics) {
    case Numerics::kExact:
      switch (f) {
        case WeightFormat::F32:
        case WeightFormat::BF16:
        case WeightFormat::FP8_BLOCK128:
        case WeightFormat::FP4_BLOCK32: return {4.0, 0x1p-146};
      }
      break;
    // The oracle rounds the activations exactly as the kernels do (round_bf16_ftz), and
    // bf16 x exact weight products are exact in fp32 (8 + 4..8 significant bits), so
    // what remains is the fp32 summation: the same model as exact.
    case Numerics::kFast: return {4.0, 0x1p-146};
    // Int8 (FP4 products only; the others are exact): the oracle quantises with the same
    // function, and each block's integer sum of codes times doubled E2M1 weights is exact
    // in both, as is its product with step * 2^(e-127) inside an fp32 FMA; what remains is
    // the fp32 summation of n_in / 32 block terms. Their magnitudes sum to sum|w q step|,
    // which is at most about twice sum|w x| (a code rounds x up by at most half a step):
    // the exact model's lambda covers it.
    case Numerics::kInt8: return {4.0, 0x1p-146};
  }
  return {4.0, 0x1p-146};
}

// Attention (fp32 logits, fp32 softmax, fp32 weighted sum of n_keys key rows), derived
// from the same model of rounding. For one head and output column i, with the oracle's
// p_k = exp(l_k - m), D = exp(sink - m) + sum_k p_k and out_i = sum_k p_k v_ki / D:
//  * a logit is an fp32 dot product of length head_dim: |dl_k| <= lambda sqrt(hd) u
//    scale sum_i |q_i k_ki| (+ u |l_k| for the scaling);
//  * exp(l_k - m) then carries a relative error rho_k = |dl_k| + u |l_k - m| + 2u (the
//    subtraction and fp32 exp's last-place error); a common error in m cancels between
//    numerator and denominator;
//  * relative errors rho_k of the p_k move out_i by at most
//    sum_k rho_k p_k (|v_ki| + |out_i|) / D (numerator and denominator);
//  * the weighted sum has length n_keys: lambda sqrt(n_keys) u sum_k p_k |v_ki| / D;
//  * the division and the oracle's rounding to float: 2u |out_i|.
// So the attention reduction of length n_keys * head_dim costs about
// lambda (sqrt(hd) * logit magnitude + sqrt(n_keys)) u in relative terms, not n_keys*hd*u.
// Lightning-indexer scores: an fp32 dot of length dim per head, relu (1-Lipschitz), then an
// fp32 sum over n_head heads: lambda sqrt(dim + n_head) u sum_h |w_h| sum_i |q_hi k_ji|.
Tolerance attention_tolerance(Numerics) { return {4.0, 0x1p-146}; }
Tolerance index_tolerance(Numerics) { return {4.0, 0x1p-146}; }

// ----------------------------------------------------------------- random weights
struct OwnedWeight {
  std::vector<uint8_t> data, scale;
  WeightView view;
};

// Varied E8M0 scales around 2^0 (2^-9 .. 2^6) and every code of the element format
// (all 16 E2M1 nibbles; all 254 finite E4M3 bytes, subnormals included). FP8: every
// third row draws from all finite codes, the others only from the normal ones (exponent
// field != 0), as quantised checkpoint rows are almost everywhere; the AVX2 kernel
// decodes those with byte lookups and decodes blocks holding zero, subnormal or NaN codes
// a second time with blends, so both paths meet every shape.
OwnedWeight random_weight(WeightFormat f, int64_t n_out, int64_t n_in, uint32_t seed) {
  std::mt19937 rng(seed);
  OwnedWeight w;
  w.view.format = f;
  w.view.n_out = n_out;
  w.view.n_in = n_in;
  w.view.name = std::string("test.") + weight_format_name(f);
  std::uniform_int_distribution<int> byte(0, 255), sc(118, 133);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  switch (f) {
    case WeightFormat::F32: {
      w.data.resize(size_t(n_out * n_in * 4));
      for (int64_t i = 0; i < n_out * n_in; ++i) {
        const float v = nd(rng);
        std::memcpy(w.data.data() + 4 * i, &v, 4);
      }
      break;
    }
    case WeightFormat::BF16: {
      w.data.resize(size_t(n_out * n_in * 2));
      for (int64_t i = 0; i < n_out * n_in; ++i) {
        const uint16_t h = f32_to_bf16(nd(rng) * std::ldexp(1.0f, sc(rng) - 127));
        std::memcpy(w.data.data() + 2 * i, &h, 2);
      }
      break;
    }
    case WeightFormat::FP8_BLOCK128: {
      w.data.resize(size_t(n_out * n_in));
      for (int64_t r = 0; r < n_out; ++r)
        for (int64_t c = 0; c < n_in; ++c) {
          uint8_t& b = w.data[size_t(r * n_in + c)];
          do b = uint8_t(byte(rng));
          while ((b & 0x7F) == 0x7F || (r % 3 != 0 && (b & 0x78) == 0));
        }
      w.scale.resize(size_t(((n_out + 127) / 128) * ((n_in + 127) / 128)));
      for (auto& s : w.scale) s = uint8_t(sc(rng));
      break;
    }
    case WeightFormat::FP4_BLOCK32: {
      w.data.resize(size_t(n_out * n_in / 2));
      for (auto& b : w.data) b = uint8_t(byte(rng));
      w.scale.resize(size_t(n_out * (n_in / 32)));
      for (auto& s : w.scale) s = uint8_t(sc(rng));
      break;
    }
  }
  w.view.data = w.data.data();
  w.view.scale = w.scale.empty() ? nullptr : w.scale.data();
  return w;
}

std::vector<float> random_x(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  return x;
}

// sum_i |W[o,i] x[t,i]| in double (for the tolerance).
double abs_dot(const WeightView& w, int64_t o, const float* xt, std::vector<float>& row) {
  w.dequant_row(o, row.data());
  double s = 0.0;
  for (int64_t i = 0; i < w.n_in; ++i) s += std::fabs(double(row[size_t(i)]) * double(xt[i]));
  return s;
}

// y = ops.matmul(w, x) for a weight without FP8 flags, and wf is the same weight with
// them: the same bits must come out (the AVX2 kernels then skip their own check).
void expect_same_bits_with_flags(Ops& ops, const WeightView& wf, const float* x, int64_t n_tok,
                                 const std::vector<float>& y) {
  std::vector<float> yf(y.size(), -12345.0f);
  ops.matmul(wf, x, n_tok, yf.data());
  int failures = 0;
  for (size_t i = 0; i < y.size() && failures < 5; ++i)
    if (std::memcmp(&y[i], &yf[i], 4) != 0) {
      ADD_FAILURE() << "fp8 [" << wf.n_out << "," << wf.n_in << "] row_offset " << wf.row_offset << " n_tok " << n_tok
                    << " tok " << int64_t(i) / wf.n_out << " row " << int64_t(i) % wf.n_out << ": " << y[i]
                    << " without flags, " << yf[i] << " with them";
      ++failures;
    }
}

// Runs ops.matmul and RefOps.matmul on every row_stride-th row and compares within the
// tolerance table (an FP8 weight without flags also with them, bit for bit).
void check_matmul(Ops& ops, const WeightView& w, int64_t n_tok, uint32_t seed,
                  int64_t row_stride = 1) {
  const std::vector<float> x = random_x(n_tok * w.n_in, seed);
  std::vector<float> y(size_t(n_tok * w.n_out), -12345.0f);
  ops.matmul(w, x.data(), n_tok, y.data());
  if (w.format == WeightFormat::FP8_BLOCK128 && w.fp8_normal == nullptr && w.row_offset == 0) {
    const std::vector<uint64_t> flags = fp8_normal_blocks(w);
    WeightView wf = w;
    wf.fp8_normal = flags.data();
    expect_same_bits_with_flags(ops, wf, x.data(), n_tok, y);
  }
  const auto* ops_ref = dynamic_cast<const RefOps*>(&ops);  // CpuOps is one: its numerics
  const Numerics numerics = ops_ref ? ops_ref->numerics() : Numerics::kExact;
  RefOps ref(numerics);
  const Tolerance tol = tolerance(numerics, w.format);
  std::vector<float> row(size_t(w.n_in));
  int failures = 0;
  for (int64_t o = 0; o < w.n_out && failures < 5; o += row_stride) {
    // The oracle on this one row (a one-row view of the same bytes).
    const WeightView wr = weight_rows(w, o, 1);
    std::vector<float> yr(static_cast<size_t>(n_tok));
    ref.matmul(wr, x.data(), n_tok, yr.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float got = y[size_t(t * w.n_out + o)], want = yr[size_t(t)];
      if (std::isnan(want)) {
        if (!std::isnan(got)) {
          ADD_FAILURE() << weight_format_name(w.format) << " [" << w.n_out << "," << w.n_in
                        << "] tok " << t << " row " << o << ": want NaN, got " << got;
          ++failures;
        }
        continue;
      }
      if (std::isinf(want) && got == want) continue;  // overflow, the same in both (int8 sums in double)
      const double bound = tol.lambda * std::sqrt(double(w.n_in)) * 0x1p-24 *
                               abs_dot(w, o, x.data() + t * w.n_in, row) +
                           tol.abs_floor * double(w.n_in) + 0x1p-149;
      if (!(std::fabs(double(got) - double(want)) <= bound)) {
        ADD_FAILURE() << weight_format_name(w.format) << " [" << w.n_out << "," << w.n_in
                      << "] n_tok " << n_tok << " tok " << t << " row " << o << ": got " << got
                      << " want " << want << " bound " << bound << " isa " << current_isa() << " numerics "
                      << numerics_name(numerics);
        ++failures;
      }
    }
  }
}

// Runs fn once per SIMD target this CPU and binary support, then restores "best".
template <class Fn>
void for_each_isa(Fn fn) {
  const std::vector<std::string> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  for (const std::string& isa : isas) {
    ASSERT_TRUE(force_isa(isa)) << isa;
    ASSERT_EQ(current_isa(), isa);
    SCOPED_TRACE("isa " + isa);
    fn(isa);
  }
  force_isa("best");
}

TEST(CpuIsa, ListsAndForcesTargets) {
  const std::vector<std::string> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  for (const auto& i : isas) std::printf("available isa: %s\n", i.c_str());
  EXPECT_FALSE(force_isa("no-such-isa"));
  EXPECT_TRUE(force_isa("best"));
  EXPECT_EQ(current_isa(), isas.front());
  // The x86 test machines (and CI) run both AVX2 and AVX-512.
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512bw")) {
    EXPECT_EQ(isas.front(), "avx512");
  }
  if (__builtin_cpu_supports("avx2")) {
    bool has_avx2 = false;
    for (const auto& i : isas) has_avx2 |= i == "avx2";
    EXPECT_TRUE(has_avx2);
  }
#endif
  // avx512-nobf16 (avx512 without the BF16 dot product) exactly where the CPU has
  // AVX512_BF16, right after avx512, and forcing it is reported back and undone by "best".
  const auto nobf16 = std::find(isas.begin(), isas.end(), "avx512-nobf16");
  EXPECT_EQ(nobf16 != isas.end(), cpu::bf16dot::available() && isas.front() == "avx512");
  if (nobf16 != isas.end()) {
    EXPECT_EQ(*(nobf16 - 1), "avx512");
    EXPECT_TRUE(force_isa("avx512-nobf16"));
    EXPECT_EQ(current_isa(), "avx512-nobf16");
    EXPECT_TRUE(force_isa("avx512"));
    EXPECT_EQ(current_isa(), "avx512");
    EXPECT_TRUE(force_isa("avx512-nobf16"));
    EXPECT_TRUE(force_isa("best"));
    EXPECT_EQ(current_isa(), "avx512");
  } else {
    EXPECT_FALSE(force_isa("avx512-nobf16"));
  }
}

TEST(CpuOps, NameAndThreads) {
  auto ops = make_ops("cpu", Numerics::kExact, 3);
  EXPECT_EQ(ops->name(), "cpu");
  EXPECT_EQ(ops->threads(), 3);
  ops->set_threads(1);
  EXPECT_EQ(ops->threads(), 1);
  EXPECT_GE(make_ops("cpu")->threads(), 1);
  EXPECT_EQ(make_ops("ref")->threads(), 1);
}

// parallel_rows hands out every index of [0, n) exactly once, in ranges, for any n
// and thread count (the pooled RMS norm: SumSquaresAndRmsNormMatchReferenceBitForBit).
TEST(CpuOps, ParallelRowsCoverEachIndexOnce) {
  for (int threads : {1, 2, 3}) {
    CpuOps ops(threads);
    for (int64_t n : {0, 1, 2, 5, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      ops.parallel_rows(n, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)].load(), 1) << "n " << n << " index " << i;
    }
  }
}

// ------------------------------------------------------- sums of squares, RMS norm
// The reference's sum is a sum of squares (exact on small integers, within double
// rounding of a long-double sum), and the vector kernels reproduce its order bit for bit
// on every target: widths around the eight partial sums and the vector lengths, rows with
// infinities, NaN and values whose normalised product leaves float's range; weights and
// none; in place and not; rows split over three threads.
TEST(CpuOps, SumSquaresAndRmsNormMatchReferenceBitForBit) {
  const float small[] = {1.0f, 2.0f, 3.0f};
  EXPECT_EQ(sum_squares_row(small, 3), 14.0);
  const std::vector<float> big = random_x(16384, 77);
  long double want = 0;
  for (float v : big) want += (long double)v * (long double)v;
  EXPECT_NEAR(sum_squares_row(big.data(), 16384), double(want), 1e-13 * double(want));
  const auto same = [](float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(float)) == 0;
  };
  for_each_isa([&](const std::string& isa) {
    CpuOps cpu(3);
    RefOps ref;
    for (const int64_t n : {int64_t(1), int64_t(3), int64_t(8), int64_t(9), int64_t(17), int64_t(300),
                            int64_t(4099), int64_t(16384)}) {
      const int64_t n_rows = 5;
      std::vector<float> x = random_x(n_rows * n, uint32_t(n) + 11);
      x[size_t(1 * n + n / 2)] = INFINITY;       // row 1: an infinity
      x[size_t(2 * n + n - 1)] = NAN;            // row 2: a NaN
      for (int64_t i = 0; i < n; ++i) x[size_t(3 * n + i)] *= 1e-30f;  // row 3: tiny, so r is large
      x[size_t(4 * n + n / 3)] = 10.0f;           // row 4: x * r > 1 here (n > 1) ...
      std::vector<float> weight = random_x(n, uint32_t(n) + 12);
      weight[size_t(n / 3)] = std::numeric_limits<float>::max();  // ... so this leaves float's range
      std::vector<double> ss_cpu(static_cast<size_t>(n_rows)), ss_ref(static_cast<size_t>(n_rows));
      cpu.sum_squares(x.data(), n_rows, n, ss_cpu.data());
      ref.sum_squares(x.data(), n_rows, n, ss_ref.data());
      for (int64_t r = 0; r < n_rows; ++r)
        EXPECT_TRUE(std::memcmp(&ss_cpu[size_t(r)], &ss_ref[size_t(r)], sizeof(double)) == 0 ||
                    (std::isnan(ss_cpu[size_t(r)]) && std::isnan(ss_ref[size_t(r)])))
            << isa << " n " << n << " row " << r << ": " << ss_cpu[size_t(r)] << " against " << ss_ref[size_t(r)];
      for (const float* w : {static_cast<const float*>(weight.data()), static_cast<const float*>(nullptr)}) {
        std::vector<float> y_cpu(x.size()), y_ref(x.size()), in_place = x;
        cpu.rms_norm(x.data(), w, n_rows, n, 1e-6f, y_cpu.data());
        ref.rms_norm(x.data(), w, n_rows, n, 1e-6f, y_ref.data());
        cpu.rms_norm(in_place.data(), w, n_rows, n, 1e-6f, in_place.data());
        int failures = 0;
        for (size_t i = 0; i < x.size() && failures < 5; ++i)
          if (!same(y_cpu[i], y_ref[i]) || !same(in_place[i], y_ref[i])) {
            ADD_FAILURE() << isa << " n " << n << (w ? " weighted" : "") << " element " << i << ": got "
                          << y_cpu[i] << " (in place " << in_place[i] << ") want " << y_ref[i];
            ++failures;
          }
      }
    }
  });
}

// ------------------------------------------------------------------------ swiglu
// The vector SwiGLU against the reference on every target: the same double arithmetic
// but Highway's Exp (within 1 ulp of std::exp) for std::exp, so each result is the
// reference's float or a neighbour of it; NaN where the reference has NaN. Gates and ups
// span the clamp (limit 10), the edge of Exp's range (-706) and past it, infinities,
// NaN, zeros and subnormals; rows have their own weights (0 and negative among them);
// widths cover partial vectors. The output may alias the gate.
TEST(CpuOps, SwigluMatchesReference) {
  const float kSpecial[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 9.99f, 10.0f, 10.01f, -10.01f, 30.0f, -30.0f,
                            705.9f, 706.5f, -705.9f, -706.5f, 709.9f, -709.9f, 800.0f, -800.0f, 1e30f, -1e30f,
                            INFINITY, -INFINITY, NAN};
  const int64_t kSpecials = int64_t(sizeof(kSpecial) / sizeof(kSpecial[0]));
  for_each_isa([&](const std::string& isa) {
    for (const double limit : {0.0, 10.0}) {
      for (const int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(17), int64_t(2048), int64_t(4099)}) {
        const int64_t n_rows = 3;
        std::vector<float> gate = random_x(n_rows * n, uint32_t(n) + 5), up = random_x(n_rows * n, uint32_t(n) + 6);
        for (size_t i = 0; i < gate.size(); ++i) {
          gate[i] *= 8.0f;  // most of silu's curve and the clamp
          up[i] *= 8.0f;
          if (i % 5 == 1) gate[i] = kSpecial[int64_t(i / 5) % kSpecials];
          if (i % 7 == 3) up[i] = kSpecial[int64_t(i / 7 + 3) % kSpecials];
        }
        // Far past Exp's documented range, with a product that stays small: the
        // reference's silu is -0. (The kernel takes the scalar formula for such gates;
        // Highway's Exp there returns wrong but huge values, 6e273 for 1e5, whose silu
        // still rounds to a float zero, so no input found tells the two paths apart.)
        gate[0] = -1e30f;
        up[0] = 1e-30f;
        const std::vector<float> weight = {0.75f, -1.5f, 0.0f};  // [n_rows]
        std::vector<float> want(gate.size()), got(gate.size(), -1.0f), in_place = gate;
        RefOps().swiglu(gate.data(), up.data(), weight.data(), n_rows, n, limit, want.data());
        CpuOps ops(1);
        ops.swiglu(gate.data(), up.data(), weight.data(), n_rows, n, limit, got.data());
        ops.swiglu(in_place.data(), up.data(), weight.data(), n_rows, n, limit, in_place.data());
        int64_t inexact = 0, failures = 0;
        for (size_t i = 0; i < want.size() && failures < 5; ++i) {
          const float w = want[i], g = got[i];
          const bool same = std::isnan(w) ? std::isnan(g) : std::memcmp(&w, &g, sizeof(float)) == 0;
          const bool neighbour = std::isfinite(w) && std::isfinite(g) &&
                                 (std::nextafter(w, INFINITY) == g || std::nextafter(w, -INFINITY) == g);
          if (!same) ++inexact;
          if (!same && !neighbour) {
            ADD_FAILURE() << isa << " limit " << limit << " n " << n << " element " << i << ": gate "
                          << gate[i] << " up " << up[i] << " got " << g << " want " << w;
            ++failures;
          }
          const float a = in_place[i];
          if (std::memcmp(&a, &g, sizeof(float)) != 0 && !(std::isnan(a) && std::isnan(g))) {
            ADD_FAILURE() << isa << " n " << n << " element " << i << ": in place " << a << " against " << g;
            ++failures;
          }
        }
        EXPECT_LE(inexact, int64_t(want.size()) / 100) << isa << " n " << n << ": too many off by one";
      }
    }
  });
}

// ------------------------------------------------------------------- odd shapes
struct Shape {
  WeightFormat f;
  int64_t n_out, n_in;
};

const Shape kOddShapes[] = {
    {WeightFormat::F32, 1, 1},           {WeightFormat::F32, 7, 3},
    {WeightFormat::F32, 33, 17},         {WeightFormat::F32, 5, 257},
    {WeightFormat::BF16, 1, 1},          {WeightFormat::BF16, 7, 3},
    {WeightFormat::BF16, 33, 31},        {WeightFormat::BF16, 9, 33},
    {WeightFormat::BF16, 3, 515},        {WeightFormat::FP8_BLOCK128, 1, 1},
    {WeightFormat::FP8_BLOCK128, 7, 5},  {WeightFormat::FP8_BLOCK128, 33, 127},
    {WeightFormat::FP8_BLOCK128, 131, 129}, {WeightFormat::FP8_BLOCK128, 9, 300},
    {WeightFormat::FP8_BLOCK128, 5, 1000},  {WeightFormat::FP8_BLOCK128, 7, 192},
    {WeightFormat::FP8_BLOCK128, 5, 64},
    {WeightFormat::FP8_BLOCK128, 3, 8256},  // 65 scale blocks, the last of 64 columns: two runs of block scales
    {WeightFormat::FP4_BLOCK32, 1, 32},
    {WeightFormat::FP4_BLOCK32, 7, 96},  {WeightFormat::FP4_BLOCK32, 33, 160},
    {WeightFormat::FP4_BLOCK32, 3, 4128}, {WeightFormat::FP4_BLOCK32, 5, 256},
    {WeightFormat::FP4_BLOCK32, 6, 704},  // five 128-column chunks: a partial group of four scale words
    {WeightFormat::FP4_BLOCK32, 5, 224},  // int8: three 64-column chunks and a lone 32-column block
    {WeightFormat::FP4_BLOCK32, 4, 320},  // int8: a 256-column group and a partial group of one chunk
    {WeightFormat::FP4_BLOCK32, 3, 384},  // int8: a group and a partial group of two chunks
};

constexpr Numerics kAllNumerics[] = {Numerics::kExact, Numerics::kFast, Numerics::kInt8};

// Runs fn(ops, isa) with two-thread CpuOps in each numerics mode, on every SIMD target.
template <class Fn>
void for_each_numerics_and_isa(Fn fn) {
  for (Numerics nm : kAllNumerics) {
    CpuOps ops(2, nm);
    for_each_isa([&](const std::string& isa) { fn(ops, isa); });
  }
}

TEST(CpuMatmul, OddShapesEveryIsa) {
  for (Numerics nm : kAllNumerics)
  for (int threads : {1, 3}) {
    CpuOps ops(threads, nm);
    for_each_isa([&](const std::string&) {
      uint32_t seed = 1;
      for (const Shape& s : kOddShapes) {
        const OwnedWeight w = random_weight(s.f, s.n_out, s.n_in, seed++);
        for (int64_t n_tok : {1, 3, 17}) check_matmul(ops, w.view, n_tok, seed++);
      }
    });
  }
}

// F32 and FP8 products read x in place when every token row starts on a 64-byte
// boundary (FP8 but on AVX2, whose kernel wants its own column order), and from an
// aligned copy otherwise: the same kernels on the same values, so
// the results must agree bit for bit (the copy path is the one OddShapes checks against
// the oracle; tensors from std::vector are rarely 64-byte aligned).
TEST(CpuMatmul, AlignedActivationsReadInPlaceEveryIsa) {
  const Shape shapes[] = {{WeightFormat::F32, 9, 48}, {WeightFormat::FP8_BLOCK128, 11, 256},
                          {WeightFormat::FP8_BLOCK128, 5, 208}};
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string& isa) {
    uint32_t seed = 900;
    for (const Shape& sh : shapes) {
      const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
      for (int64_t n_tok : {1, 6, 13}) {
        const std::vector<float> x = random_x(n_tok * sh.n_in, seed++);
        std::vector<float> buf(static_cast<size_t>(n_tok * sh.n_in + 64));
        float* aligned = buf.data();
        while (reinterpret_cast<uintptr_t>(aligned) % 64 != 0) ++aligned;
        float* misaligned = aligned + 1;
        std::vector<float> ya(static_cast<size_t>(n_tok * sh.n_out)), ym(ya.size());
        std::copy(x.begin(), x.end(), aligned);
        ops.matmul(w.view, aligned, n_tok, ya.data());
        // matmul_many with the aligned copy twice (two jobs sharing one x, as the
        // attention's products of x do).
        std::vector<float> yg(ya.size()), yh(ya.size());
        const Ops::MatmulJob jobs[] = {{&w.view, aligned, n_tok, yg.data()}, {&w.view, aligned, n_tok, yh.data()}};
        ops.matmul_many(jobs, 2);
        std::copy(x.begin(), x.end(), misaligned);
        ops.matmul(w.view, misaligned, n_tok, ym.data());
        for (size_t i = 0; i < ya.size(); ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(ya[i]), std::bit_cast<uint32_t>(ym[i]))
              << weight_format_name(sh.f) << " [" << sh.n_out << "," << sh.n_in << "] n_tok " << n_tok << " at " << i
              << " isa " << isa << " numerics " << numerics_name(ops.numerics());
          ASSERT_EQ(std::bit_cast<uint32_t>(yg[i]), std::bit_cast<uint32_t>(ym[i])) << "matmul_many, at " << i;
          ASSERT_EQ(std::bit_cast<uint32_t>(yh[i]), std::bit_cast<uint32_t>(ym[i])) << "matmul_many, at " << i;
        }
      }
    }
  });
}

// A mapped checkpoint (io::Residency::kMap, kSplit) leaves each tensor where the file
// puts it: 8-byte aligned at best, and any byte offset after an odd-sized tensor (an
// E8M0 scale tensor). The kernels then read the same bytes from other addresses; the
// results must agree bit for bit with the weights on a 64-byte boundary, in every format
// and for decode and prefill tiles alike.
TEST(CpuMatmul, MisalignedWeightsEveryIsa) {
  const Shape shapes[] = {{WeightFormat::FP4_BLOCK32, 10, 288}, {WeightFormat::FP4_BLOCK32, 9, 512},
                          {WeightFormat::FP8_BLOCK128, 9, 384},  {WeightFormat::FP8_BLOCK128, 5, 200},
                          {WeightFormat::BF16, 7, 200},          {WeightFormat::BF16, 9, 256},
                          {WeightFormat::F32, 5, 72}};
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string& isa) {
    uint32_t seed = 4200;
    for (const Shape& sh : shapes) {
      const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
      // The same bytes (data, then the scales at an odd offset behind them) at `off`
      // bytes from a 64-byte boundary; off = 0 is the reference.
      std::vector<uint8_t> ref_buf(w.data.size() + w.scale.size() + 256), buf(ref_buf.size());
      auto place = [&](std::vector<uint8_t>& b, int64_t off) {
        uint8_t* base = b.data();
        while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;
        WeightView v = w.view;
        v.data = base + off;
        std::copy(w.data.begin(), w.data.end(), base + off);
        if (!w.scale.empty()) {
          uint8_t* sc = base + off + w.data.size() + 3;
          std::copy(w.scale.begin(), w.scale.end(), sc);
          v.scale = sc;
        }
        return v;
      };
      const WeightView ref = place(ref_buf, 0);
      for (int64_t off : {1, 2, 8, 24, 56}) {
        const WeightView v = place(buf, off);
        for (int64_t n_tok : {1, 5}) {
          const std::vector<float> x = random_x(n_tok * sh.n_in, seed + uint32_t(n_tok));
          std::vector<float> yr(static_cast<size_t>(n_tok * sh.n_out)), ym(yr.size());
          ops.matmul(ref, x.data(), n_tok, yr.data());
          ops.matmul(v, x.data(), n_tok, ym.data());
          for (size_t i = 0; i < yr.size(); ++i)
            ASSERT_EQ(std::bit_cast<uint32_t>(yr[i]), std::bit_cast<uint32_t>(ym[i]))
                << weight_format_name(sh.f) << " [" << sh.n_out << "," << sh.n_in << "] offset " << off << " n_tok "
                << n_tok << " at " << i << " isa " << isa << " numerics " << numerics_name(ops.numerics());
        }
      }
    }
  });
}

// FP8 views that start mid scale block (row_offset), as one wo_a group does.
TEST(CpuMatmul, Fp8RowOffsetViews) {
  CpuOps ops(2);
  const OwnedWeight w = random_weight(WeightFormat::FP8_BLOCK128, 300, 200, 7);
  // The same views of the weight with its normal-code flags: row_offset picks the bits.
  const std::vector<uint64_t> flags = fp8_normal_blocks(w.view);
  WeightView wf = w.view;
  wf.fp8_normal = flags.data();
  const auto check_view = [&](const auto& slice, int64_t n_tok, uint32_t seed) {
    const WeightView v = slice(w.view), vf = slice(wf);
    check_matmul(ops, v, n_tok, seed);
    const std::vector<float> x = random_x(n_tok * v.n_in, seed);
    std::vector<float> y(size_t(n_tok * v.n_out));
    ops.matmul(v, x.data(), n_tok, y.data());
    expect_same_bits_with_flags(ops, vf, x.data(), n_tok, y);
  };
  for_each_isa([&](const std::string&) {
    for (int64_t n_tok : {1, 3}) {
      check_view([](const WeightView& v) { return weight_rows(v, 37, 200); }, n_tok, 11);
      check_view([](const WeightView& v) { return weight_rows(weight_rows(v, 100, 150), 60, 90); }, n_tok, 12);
    }
  });
  // Whole 128-column blocks (the multi-row decode kernel) with a scale-block boundary
  // inside a group of rows: rows 126..129 of the parent use two scale rows.
  const OwnedWeight w2 = random_weight(WeightFormat::FP8_BLOCK128, 300, 256, 8);
  const WeightView mid = weight_rows(w2.view, 126, 140);
  CpuOps single(1);
  for_each_isa([&](const std::string& isa) {
    check_matmul(ops, mid, 1, 13);
    check_matmul(ops, mid, 9, 15);  // many tokens: panel rows across the scale-block boundary
    const std::vector<float> x = random_x(2 * mid.n_in, 14);
    std::vector<float> y2(size_t(2 * mid.n_out)), y1(size_t(mid.n_out));
    single.matmul(mid, x.data(), 2, y2.data());
    single.matmul(mid, x.data(), 1, y1.data());
    for (int64_t o = 0; o < mid.n_out; ++o) ASSERT_EQ(y1[size_t(o)], y2[size_t(o)]) << "row " << o << " isa " << isa;
  });
}

// FP8 decode walks a piece's rows in pairs half the piece apart and converts each 128-row
// block's scales once per stream (fast numerics). With one thread the piece is rows
// [0, 700): rows 0..349 pair with 350..699, so the first stream goes from block 0 to a
// block whose scales the vector path does not take (rows 128..255, row by row) and on to
// block 2, while the second stream crosses blocks 2..5. Every row must match the oracle,
// and decode (one token; one thread, and two threads with their own pieces) the batched
// product bit for bit.
TEST(CpuMatmul, Fp8DecodeScaleBlocksAcrossPairsEveryIsa) {
  OwnedWeight w = random_weight(WeightFormat::FP8_BLOCK128, 700, 256, 40);
  w.scale[1 * 2 + 1] = 0;  // 2^-127: the scalar path
  for (Numerics nm : kAllNumerics) {
    CpuOps single(1, nm), two(2, nm);
    for_each_isa([&](const std::string& isa) {
      check_matmul(single, w.view, 1, 41);
      check_matmul(two, w.view, 1, 41);
      const int64_t n_tok = 3;
      const std::vector<float> x = random_x(n_tok * 256, 42);
      std::vector<float> yb(size_t(n_tok * 700)), y1(700), y2(700);
      two.matmul(w.view, x.data(), n_tok, yb.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        single.matmul(w.view, x.data() + t * 256, 1, y1.data());
        two.matmul(w.view, x.data() + t * 256, 1, y2.data());
        for (int64_t o = 0; o < 700; ++o) {
          ASSERT_EQ(yb[size_t(t * 700 + o)], y1[size_t(o)])
              << "tok " << t << " row " << o << " isa " << isa << " numerics " << numerics_name(nm);
          ASSERT_EQ(yb[size_t(t * 700 + o)], y2[size_t(o)])
              << "two threads, tok " << t << " row " << o << " isa " << isa << " numerics " << numerics_name(nm);
        }
      }
    });
  }
}

// Scales that the fast paths do not take (0 = 2^-127 subnormal, 0xFF = NaN, FP8 scales
// too large for the folded 2^8) and E4M3 NaN codes fall back to the exact row path.
TEST(CpuMatmul, SpecialScalesAndNaNCodes) {
  for (Numerics nm : kAllNumerics) {
  CpuOps ops(2, nm);
  OwnedWeight fp4 = random_weight(WeightFormat::FP4_BLOCK32, 6, 256, 21);
  fp4.scale[0 * 8 + 3] = 0;
  fp4.scale[1 * 8 + 7] = 0xFF;
  fp4.scale[2 * 8 + 0] = 254;
  fp4.scale[3 * 8 + 5] = 1;
  OwnedWeight fp8 = random_weight(WeightFormat::FP8_BLOCK128, 260, 300, 22);
  fp8.scale[0] = 0;
  fp8.scale[3] = 250;
  fp8.scale[5] = 0xFF;
  fp8.data[size_t(200 * 300 + 17)] = 0x7F;
  fp8.data[size_t(201 * 300 + 250)] = 0xFF;
  // n_in a multiple of 32: the AVX-512 kernel checks the NaN codes inside its decode loop.
  OwnedWeight fp8b = random_weight(WeightFormat::FP8_BLOCK128, 40, 256, 27);
  fp8b.data[size_t(3 * 256 + 5)] = 0x7F;
  fp8b.data[size_t(20 * 256 + 255)] = 0xFF;
  fp8b.data[size_t(21 * 256 + 130)] = 0x7E;  // 448, the largest finite code
  // Whole 64-column chunks with special scales in one row block only (rows 128..255).
  OwnedWeight fp8c = random_weight(WeightFormat::FP8_BLOCK128, 300, 256, 30);
  fp8c.scale[1 * 2 + 1] = 0;
  fp8c.scale[2 * 2 + 0] = 250;
  // A scale row of zero scales only (2^-127: every product a subnormal; the fast path's
  // exponent shift would make it 0) met by views that start above it: the scale check,
  // made once per piece of rows, must read the stored rows' scale rows.
  OwnedWeight fp8d = random_weight(WeightFormat::FP8_BLOCK128, 300, 256, 36);
  fp8d.scale[1 * 2 + 0] = fp8d.scale[1 * 2 + 1] = 0;
  const WeightView fp8d_views[] = {weight_rows(fp8d.view, 100, 60), weight_rows(fp8d.view, 120, 9)};
  // A zero scale (2^-127) in the second run of 64 block scales, which the fast kernels
  // convert 64 at a time and meet after summing the first 64 blocks. Row 2 has zero codes
  // before it, so its whole sum comes from that block (a scale taken as 0 would show).
  OwnedWeight fp8e = random_weight(WeightFormat::FP8_BLOCK128, 6, 8320, 38);
  fp8e.scale[64] = 0;
  std::fill_n(fp8e.data.begin() + 2 * 8320, 8192, uint8_t(0));
  for_each_isa([&](const std::string&) {
    for (const WeightView& v : fp8d_views)
      for (int64_t n_tok : {1, 3}) check_matmul(ops, v, n_tok, 37);
    for (int64_t n_tok : {1, 2, 5}) check_matmul(ops, fp8e.view, n_tok, 39);
    check_matmul(ops, fp8b.view, 1, 28);
    check_matmul(ops, fp8b.view, 6, 29);
    check_matmul(ops, fp4.view, 1, 23);
    check_matmul(ops, fp4.view, 5, 24);
    check_matmul(ops, fp8.view, 1, 25);
    check_matmul(ops, fp8.view, 4, 26);
    check_matmul(ops, fp8c.view, 1, 31);
    check_matmul(ops, fp8c.view, 3, 32);
    // Many tokens: the FP8 panel path (decoded once per row block) meets the same rows.
    check_matmul(ops, fp8b.view, 9, 33);
    check_matmul(ops, fp8c.view, 9, 34);
  });
  }
}

// Batch invariance: row o of token t is computed in the same order whatever n_tok and
// thread count, so a token's result does not depend on its batch (the model's batched
// forward relies on it). Compared exactly (== treats -0 and +0 alike).
// FP8 rows of normal codes with a zero, subnormal or NaN code here and there (the first or
// last byte of a 32-column group, the last of a 128-column block, the scalar tail): the
// blocks holding one are decoded again on AVX2 (see RowFp8); every token count must give
// the oracle's result, and the same bits.
TEST(CpuMatmul, Fp8ZeroSubnormalAndNaNCodesEveryIsa) {
  OwnedWeight w = random_weight(WeightFormat::FP8_BLOCK128, 40, 300, 77);
  for (int64_t r = 0; r < 40; ++r)  // rows of normal codes only
    for (int64_t c = 0; c < 300; ++c)
      if ((w.data[size_t(r * 300 + c)] & 0x78) == 0) w.data[size_t(r * 300 + c)] |= 0x08;
  const struct {
    int64_t row, col;
    uint8_t code;
  } placed[] = {{1, 0, 0x00},   {2, 31, 0x80},  {4, 32, 0x01},   {5, 127, 0x87}, {7, 128, 0x04},
                {8, 255, 0x7F}, {10, 290, 0x02}, {11, 299, 0xFF}, {13, 64, 0x03}, {13, 200, 0x85},
                {16, 96, 0x7E}, {17, 5, 0x06}};
  for (const auto& p : placed) w.data[size_t(p.row * 300 + p.col)] = p.code;
  for (int64_t c = 0; c < 300; c += 7) w.data[size_t(20 * 300 + c)] = uint8_t(c % 8);  // many zeros/subnormals
  // Rows of only zero and subnormal codes, and of those and the smallest normals: next to
  // large weights a wrong subnormal would hide below the tolerance.
  for (int64_t c = 0; c < 300; ++c) {
    w.data[size_t(21 * 300 + c)] = uint8_t((c * 37) % 8 | (c % 3 == 0 ? 0x80 : 0));
    w.data[size_t(22 * 300 + c)] = uint8_t((c * 11) % 16 | (c % 5 == 0 ? 0x80 : 0));
  }
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string&) {
    for (int64_t n_tok : {1, 4, 9}) check_matmul(ops, w.view, n_tok, 500 + uint32_t(n_tok));
    const int64_t n_tok = 9;
    const std::vector<float> x = random_x(n_tok * 300, 600);
    std::vector<float> y(size_t(n_tok * 40)), y1(40);
    ops.matmul(w.view, x.data(), n_tok, y.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      ops.matmul(w.view, x.data() + t * 300, 1, y1.data());
      for (int64_t o = 0; o < 40; ++o) {
        const float a = y[size_t(t * 40 + o)], b1 = y1[size_t(o)];
        EXPECT_TRUE(std::memcmp(&a, &b1, 4) == 0) << "tok " << t << " row " << o << ": " << a << " vs " << b1;
      }
    }
  });
}

// Exact FP4 prefill with 6 or more tokens and rows of 128 columns or more takes decoded
// panels of 4 chunks on AVX2 (12 rows below 64 tokens, 24 from 64), walked in tiles of up
// to 3 rows x 3 tokens: partial panels in rows (37, 21, 7; 60 in two threads' pieces of
// 30: 24 + 6 from 64 tokens, 12 + 12 + 6 below) and in chunks (65, 33 and 3 chunks), a
// 32-column tail (4128, 224), token counts that leave one and two tokens (and rows) of a
// tile, 6 (the fewest). Every result must be within the oracle's bound and
// equal, bit for bit, to the same token alone.
TEST(CpuMatmul, Fp4PrefillPanelsEveryIsa) {
  const Shape shapes[] = {{WeightFormat::FP4_BLOCK32, 37, 4160},
                          {WeightFormat::FP4_BLOCK32, 21, 2112},
                          {WeightFormat::FP4_BLOCK32, 18, 4128},
                          {WeightFormat::FP4_BLOCK32, 7, 224},
                          {WeightFormat::FP4_BLOCK32, 60, 256}};
  CpuOps batched(2), single(1);
  for_each_isa([&](const std::string& isa) {
    uint32_t seed = 700;
    for (const Shape& sh : shapes) {
      const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
      for (int64_t n_tok : {6, 8, 13, 65}) {
        check_matmul(batched, w.view, n_tok, seed++);
        const std::vector<float> x = random_x(n_tok * sh.n_in, seed++);
        std::vector<float> yb(size_t(n_tok * sh.n_out)), y1(size_t(sh.n_out));
        batched.matmul(w.view, x.data(), n_tok, yb.data());
        for (int64_t t = 0; t < n_tok; ++t) {
          single.matmul(w.view, x.data() + t * sh.n_in, 1, y1.data());
          for (int64_t o = 0; o < sh.n_out; ++o)
            ASSERT_EQ(yb[size_t(t * sh.n_out + o)], y1[size_t(o)])
                << "isa " << isa << " [" << sh.n_out << "," << sh.n_in << "] n_tok " << n_tok << " tok " << t
                << " row " << o;
        }
      }
    }
  });
}

// Exact FP8 prefill with 6 or more tokens and rows of 128 columns or more takes decoded
// panels of 96 rows x 4 blocks on AVX2, walked in tiles of up to 3 rows x 3 tokens:
// partial panels in rows (37, 19, 7; 200 in two threads' pieces of 96 + 4) and in blocks
// (17 and 18 blocks; 5 = 4 + 1), last blocks of 3, 1 and 2 whole groups with a scalar
// tail (2150, 2100, 200), zero, subnormal and NaN codes (blocks decoded exactly), with
// and without the loader's fp8_normal flags, token counts that leave one and two tokens
// of a tile, 6 (the fewest). On AVX-512, rows of whole blocks (2176, 640) from 64 tokens
// take panels of 64 rows x 4 blocks in groups of 64 tokens (70: a group of 64 and one of
// 6), tiles of up to 4 rows x 4 tokens, and a row with a NaN code the exact path; the
// others the decode kernels. Against the oracle and bit for bit against single tokens.
TEST(CpuMatmul, Fp8PrefillPanelsEveryIsa) {
  const Shape shapes[] = {{WeightFormat::FP8_BLOCK128, 37, 2176},
                          {WeightFormat::FP8_BLOCK128, 19, 2150},
                          {WeightFormat::FP8_BLOCK128, 18, 2100},
                          {WeightFormat::FP8_BLOCK128, 7, 200},
                          {WeightFormat::FP8_BLOCK128, 200, 640}};
  CpuOps batched(2), single(1);
  uint32_t seed = 800;
  for (const Shape& sh : shapes) {
    OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
    for (int64_t r = 0; r < sh.n_out; r += 3) w.data[size_t(r * sh.n_in + (r * 29) % sh.n_in)] = uint8_t(r % 8);
    w.data[size_t(5 * sh.n_in + 700 % sh.n_in)] = 0x7F;  // a NaN code
    const std::vector<uint64_t> flags = fp8_normal_blocks(w.view);
    for (bool with_flags : {false, true}) {
      WeightView v = w.view;
      v.fp8_normal = with_flags ? flags.data() : nullptr;
      for_each_isa([&](const std::string& isa) {
        for (int64_t n_tok : {6, 16, 19, 70}) {
          check_matmul(batched, v, n_tok, seed + uint32_t(n_tok));
          const std::vector<float> x = random_x(n_tok * sh.n_in, seed + 50 + uint32_t(n_tok));
          std::vector<float> yb(size_t(n_tok * sh.n_out)), y1(size_t(sh.n_out));
          batched.matmul(v, x.data(), n_tok, yb.data());
          for (int64_t t = 0; t < n_tok; ++t) {
            single.matmul(v, x.data() + t * sh.n_in, 1, y1.data());
            for (int64_t o = 0; o < sh.n_out; ++o) {
              const float a = yb[size_t(t * sh.n_out + o)], b = y1[size_t(o)];
              ASSERT_TRUE(std::memcmp(&a, &b, 4) == 0)
                  << "isa " << isa << " flags " << with_flags << " [" << sh.n_out << "," << sh.n_in << "] n_tok "
                  << n_tok << " tok " << t << " row " << o << ": " << a << " vs " << b;
            }
          }
        }
      });
    }
  }
}

// Prescaled FP8 panels (fast prefill on AVX512_BF16): a panel row stored times its block
// scales gives the same bits as the decode kernel only while no partial sum underflows,
// so rows with a scale beyond 2^+-50 or a NaN code, and every row of a call with an
// activation beyond 2^+-60, keep plain panels. Each case below breaks the agreement if
// its guard fails: a block of 2^-9 codes (the smallest E4M3) at scale 2^-67 times
// activations of 2^-60 (bf16) sums to 2^-129, while VDPBF16PS would flush the prescaled
// products (2^-136); likewise 2^-110 activations at scale 2^-9. (The activations carry
// low bits that bf16 drops, so that exact runs check a subnormal sum too: 2^-129 +
// 2^-144.) Rows 256..259 mix prescaled rows and a row with a NaN code (pairs of unlike
// rows go one by one). Every token must equal the same token alone, bit for bit, in
// every numerics and on every target, and the tiny sums their exact values.
TEST(CpuMatmul, Fp8PrefillPrescaleGuardsEveryIsa) {
  constexpr int64_t n_out = 260, n_in = 1024, n_tok = 70;
  OwnedWeight w = random_weight(WeightFormat::FP8_BLOCK128, n_out, n_in, 901);
  const int64_t nb = n_in / 128;
  w.scale[0 * nb + 0] = 127 - 9;    // rows 0..127, block 0: 2^-9
  w.scale[1 * nb + 0] = 127 - 67;   // rows 128..255, block 0: 2^-67 (no prescale)
  w.scale[2 * nb + 3] = 127 + 50;   // rows 256..259, block 3: the largest prescaled scale
  for (int64_t r : {int64_t(5), int64_t(130)})
    for (int64_t c = 0; c < n_in; ++c) w.data[size_t(r * n_in + c)] = c < 128 ? 0x01 : 0x00;  // 2^-9, 0
  w.data[size_t(257 * n_in + 300)] = 0xFF;  // a NaN code
  std::vector<float> x = random_x(n_tok * n_in, 902);
  for (int64_t c = 0; c < 128; ++c) x[size_t(4 * n_in + c)] = std::ldexp(1.0f + 0x1p-15f, -60);
  std::vector<float> x_tiny = x;  // activations far below 2^-60: the call keeps plain panels
  for (int64_t c = 0; c < 128; ++c) x_tiny[size_t(3 * n_in + c)] = std::ldexp(1.0f + 0x1p-22f, -110);
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string& isa) {
    for (const std::vector<float>* xs : {&x, &x_tiny}) {
      std::vector<float> yb(static_cast<size_t>(n_tok * n_out)), y1(static_cast<size_t>(n_out));
      ops.matmul(w.view, xs->data(), n_tok, yb.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        ops.matmul(w.view, xs->data() + t * n_in, 1, y1.data());
        for (int64_t o = 0; o < n_out; ++o) {
          const float a = yb[size_t(t * n_out + o)], b = y1[size_t(o)];
          ASSERT_TRUE(std::memcmp(&a, &b, 4) == 0) << "isa " << isa << " numerics " << numerics_name(ops.numerics())
                                                   << (xs == &x ? "" : " (tiny activations)") << " tok " << t
                                                   << " row " << o << ": " << a << " vs " << b;
        }
      }
      const bool bf16 = ops.numerics() == Numerics::kFast;  // activations rounded to bf16
      const float want_a = std::ldexp(1.0f, -129) + (bf16 ? 0.0f : std::ldexp(1.0f, -144));
      EXPECT_EQ(yb[size_t(4 * n_out + 130)], want_a) << isa;  // 128 x 2^-9 x (1 + 2^-15) 2^-60 x 2^-67
      // (In fp32 those products, 2^-128 + 2^-150, are subnormal, and how many of the 2^-150
      // survive depends on each target's order of rounding: only the bf16 value is exact.)
      if (xs == &x_tiny && bf16) {
        EXPECT_EQ(yb[size_t(3 * n_out + 5)], std::ldexp(1.0f, -121)) << isa;  // 128 x 2^-9 x 2^-110 x 2^-9
      }
    }
  });
}

TEST(CpuMatmul, BatchInvariantEveryIsa) {
  const Shape shapes[] = {{WeightFormat::F32, 9, 37},           {WeightFormat::BF16, 9, 70},
                          {WeightFormat::FP8_BLOCK128, 9, 300}, {WeightFormat::FP8_BLOCK128, 9, 256},
                          {WeightFormat::FP4_BLOCK32, 9, 4128}, {WeightFormat::FP4_BLOCK32, 10, 512},
                          {WeightFormat::FP8_BLOCK128, 9, 4160},   // long FP8 rows: two per decode step;
                          {WeightFormat::FP8_BLOCK128, 7, 2048}};  // prefill panels: 5 and 2 column slices
  for (Numerics nm : kAllNumerics) {
  CpuOps batched(2, nm), single(1, nm);
  for_each_isa([&](const std::string& isa) {
    uint32_t seed = 500;
    for (const Shape& sh : shapes) {
      const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
      const int64_t n_tok = 11;  // token tiles of 4, 4 and 3 (FP8: the panel path)
      const std::vector<float> x = random_x(n_tok * sh.n_in, seed++);
      std::vector<float> yb(static_cast<size_t>(n_tok * sh.n_out)), y1(static_cast<size_t>(sh.n_out));
      batched.matmul(w.view, x.data(), n_tok, yb.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        single.matmul(w.view, x.data() + t * sh.n_in, 1, y1.data());
        for (int64_t o = 0; o < sh.n_out; ++o)
          ASSERT_EQ(yb[size_t(t * sh.n_out + o)], y1[size_t(o)])
              << weight_format_name(sh.f) << " [" << sh.n_out << "," << sh.n_in << "] tok " << t
              << " row " << o << " isa " << isa << " numerics " << numerics_name(nm);
      }
    }
  });
  }
}

// matmul_many runs a group in one parallel region; every job must equal its own matmul
// bit for bit (same row kernels, same summation order), whatever the grouping, the
// sharing of activations between jobs and the thread count.
TEST(CpuMatmul, ManyEqualsMatmulEveryIsa) {
  const Shape shapes[] = {{WeightFormat::FP4_BLOCK32, 300, 512},  {WeightFormat::FP4_BLOCK32, 64, 512},
                          {WeightFormat::FP8_BLOCK128, 130, 512}, {WeightFormat::BF16, 77, 512},
                          {WeightFormat::F32, 9, 512},            {WeightFormat::FP8_BLOCK128, 3, 300},
                          {WeightFormat::FP4_BLOCK32, 1, 4128},   {WeightFormat::BF16, 700, 96},
                          {WeightFormat::FP4_BLOCK32, 40, 512}};  // shares x512 with job 0 (one int8 prep)
  std::vector<OwnedWeight> ws;
  uint32_t seed = 900;
  for (const Shape& sh : shapes) ws.push_back(random_weight(sh.f, sh.n_out, sh.n_in, seed++));
  const int64_t max_tok = 5;
  const std::vector<float> x512 = random_x(max_tok * 512, seed++);  // shared by the 512-wide jobs
  for (Numerics nm : kAllNumerics)
  for (int threads : {1, 2, 3}) {
    CpuOps ops(threads, nm);
    for_each_isa([&](const std::string& isa) {
      for (int64_t n_tok : {int64_t(1), int64_t(2), max_tok}) {
        std::vector<std::vector<float>> xs, y_many, y_one;
        std::vector<Ops::MatmulJob> jobs;
        for (size_t i = 0; i < ws.size(); ++i) {
          const WeightView& w = ws[i].view;
          xs.push_back(w.n_in == 512 && i % 2 == 0 ? std::vector<float>()
                                                   : random_x(n_tok * w.n_in, seed + uint32_t(i)));
          y_many.emplace_back(size_t(n_tok * w.n_out), -1.0f);
          y_one.emplace_back(size_t(n_tok * w.n_out), -2.0f);
        }
        for (size_t i = 0; i < ws.size(); ++i)
          jobs.push_back({&ws[i].view, xs[i].empty() ? x512.data() : xs[i].data(), n_tok, y_many[i].data()});
        ops.matmul_many(jobs.data(), int64_t(jobs.size()));
        for (size_t i = 0; i < ws.size(); ++i) {
          ops.matmul(*jobs[i].w, jobs[i].x, n_tok, y_one[i].data());
          for (size_t k = 0; k < y_one[i].size(); ++k)
            ASSERT_EQ(y_many[i][k], y_one[i][k]) << "job " << i << " n_tok " << n_tok << " threads "
                                                 << threads << " isa " << isa << " index " << k;
        }
      }
    });
  }
}

// --------------------------------------------------------- attention and indexer
// Runs ops.attention on n_keys separately allocated key rows (unaligned, not contiguous)
// and checks every output against the oracle within the derived bound above.
void check_attention(Ops& ops, int64_t n_head, int64_t hd, int64_t n_keys, float scale, float sink_shift,
                     uint32_t seed) {
  const std::vector<float> q = random_x(n_head * hd, seed);
  std::vector<std::vector<float>> rows;
  std::vector<const float*> keys;
  for (int64_t k = 0; k < n_keys; ++k) rows.push_back(random_x(hd + 3, seed + 1 + uint32_t(k)));
  for (int64_t k = 0; k < n_keys; ++k) keys.push_back(rows[size_t(k)].data() + k % 3);
  std::vector<float> sink = random_x(n_head, seed + 7);
  for (auto& v : sink) v += sink_shift;
  std::vector<float> got(size_t(n_head * hd), -1.0f), want(static_cast<size_t>(n_head * hd));
  ops.attention(q.data(), keys.data(), n_keys, sink.data(), n_head, hd, scale, got.data());
  RefOps().attention(q.data(), keys.data(), n_keys, sink.data(), n_head, hd, scale, want.data());
  const Tolerance tol = attention_tolerance(Numerics::kExact);
  const double u = 0x1p-24;
  int failures = 0;
  for (int64_t h = 0; h < n_head && failures < 5; ++h) {
    std::vector<double> l(static_cast<size_t>(n_keys)), rho(static_cast<size_t>(n_keys)), p(static_cast<size_t>(n_keys));
    double m = -INFINITY;
    for (int64_t k = 0; k < n_keys; ++k) {
      double dot = 0.0, adot = 0.0;
      for (int64_t i = 0; i < hd; ++i) {
        dot += double(q[size_t(h * hd + i)]) * double(keys[size_t(k)][i]);
        adot += std::fabs(double(q[size_t(h * hd + i)]) * double(keys[size_t(k)][i]));
      }
      l[size_t(k)] = double(scale) * dot;
      rho[size_t(k)] = tol.lambda * std::sqrt(double(hd)) * u * double(scale) * adot + u * std::fabs(l[size_t(k)]);
      m = std::max(m, l[size_t(k)]);
    }
    double den = std::exp(double(sink[size_t(h)]) - m);
    for (int64_t k = 0; k < n_keys; ++k) {
      p[size_t(k)] = std::exp(l[size_t(k)] - m);
      rho[size_t(k)] += u * std::fabs(l[size_t(k)] - m) + 2 * u;
      den += p[size_t(k)];
    }
    for (int64_t i = 0; i < hd; ++i) {
      const double o = std::fabs(double(want[size_t(h * hd + i)]));
      double pert = 0.0, mag = 0.0;
      for (int64_t k = 0; k < n_keys; ++k) {
        const double v = std::fabs(double(keys[size_t(k)][i]));
        pert += rho[size_t(k)] * p[size_t(k)] * (v + o);
        mag += p[size_t(k)] * v;
      }
      const double bound = (pert + tol.lambda * std::sqrt(double(n_keys)) * u * mag) / den + 2 * u * o +
                           tol.abs_floor * double(n_keys + hd) + 0x1p-149;
      const float g = got[size_t(h * hd + i)], w = want[size_t(h * hd + i)];
      if (!(std::fabs(double(g) - double(w)) <= bound)) {
        ADD_FAILURE() << "attention heads " << n_head << " hd " << hd << " keys " << n_keys << " head " << h
                      << " col " << i << ": got " << g << " want " << w << " bound " << bound << " isa "
                      << current_isa();
        ++failures;
      }
    }
  }
}

void check_index_scores(Ops& ops, int64_t n_head, int64_t dim, int64_t n_keys, uint32_t seed) {
  const std::vector<float> q = random_x(n_head * dim, seed), keys = random_x(n_keys * dim, seed + 1),
                           hw = random_x(n_head, seed + 2);
  std::vector<float> got(size_t(n_keys), -1.0f), want(static_cast<size_t>(n_keys));
  ops.index_scores(q.data(), hw.data(), n_head, keys.data(), n_keys, dim, got.data());
  RefOps().index_scores(q.data(), hw.data(), n_head, keys.data(), n_keys, dim, want.data());
  const Tolerance tol = index_tolerance(Numerics::kExact);
  int failures = 0;
  for (int64_t j = 0; j < n_keys && failures < 5; ++j) {
    double mag = 0.0;
    for (int64_t h = 0; h < n_head; ++h) {
      double a = 0.0;
      for (int64_t i = 0; i < dim; ++i) a += std::fabs(double(q[size_t(h * dim + i)]) * double(keys[size_t(j * dim + i)]));
      mag += std::fabs(double(hw[size_t(h)])) * a;
    }
    const double bound = tol.lambda * std::sqrt(double(dim + n_head)) * 0x1p-24 * mag +
                         tol.abs_floor * double(dim * n_head) + 0x1p-149;
    if (!(std::fabs(double(got[size_t(j)]) - double(want[size_t(j)])) <= bound)) {
      ADD_FAILURE() << "index_scores heads " << n_head << " dim " << dim << " keys " << n_keys << " key " << j
                    << ": got " << got[size_t(j)] << " want " << want[size_t(j)] << " bound " << bound
                    << " isa " << current_isa();
      ++failures;
    }
  }
}

TEST(CpuAttention, OddShapesEveryIsa) {
  for (int threads : {1, 3}) {
    CpuOps ops(threads);
    for_each_isa([&](const std::string&) {
      uint32_t seed = 2000;
      for (int64_t n_head : {1, 3, 5, 9})
        for (int64_t hd : {1, 7, 16, 33, 100})
          for (int64_t n_keys : {1, 2, 37}) {
            check_attention(ops, n_head, hd, n_keys, float(1.0 / std::sqrt(double(hd))), 0.0f, seed++);
            check_attention(ops, n_head, hd, n_keys, 1.0f, 3.0f, seed++);  // peaked softmax, heavy sink
          }
    });
  }
}

TEST(CpuAttention, RealShapeEveryIsa) {
  CpuOps ops(2);
  for_each_isa([&](const std::string&) {
    // 64 heads x 512, 640 keys (128 window + compressed entries), V4-Flash scale.
    check_attention(ops, 64, 512, 640, float(1.0 / std::sqrt(512.0)), 0.0f, 3000);
    check_attention(ops, 64, 512, 131, 0.2f, -2.0f, 3001);
  });
}

// A NaN in one key makes that key's logit NaN for every head, and the oracle's softmax
// then NaN everywhere: the vector exp must pass it on, not turn it into a zero weight.
TEST(CpuAttention, NaNKeyReachesEveryOutputEveryIsa) {
  CpuOps ops(2);
  const int64_t n_head = 5, hd = 24;
  for (int64_t n_keys : {1, 9, 20}) {
    const std::vector<float> q = random_x(n_head * hd, 4000), sink = random_x(n_head, 4001);
    std::vector<float> rows = random_x(n_keys * hd, 4002);
    rows[size_t((n_keys / 2) * hd + 5)] = std::numeric_limits<float>::quiet_NaN();
    std::vector<const float*> keys;
    for (int64_t k = 0; k < n_keys; ++k) keys.push_back(rows.data() + k * hd);
    std::vector<float> want(size_t(n_head * hd));
    RefOps().attention(q.data(), keys.data(), n_keys, sink.data(), n_head, hd, 0.3f, want.data());
    ASSERT_TRUE(std::isnan(want[0]));  // the oracle's behaviour this test relies on
    for_each_isa([&](const std::string& isa) {
      std::vector<float> got(size_t(n_head * hd), 0.0f);
      ops.attention(q.data(), keys.data(), n_keys, sink.data(), n_head, hd, 0.3f, got.data());
      int64_t finite = 0;
      for (float v : got) finite += std::isnan(v) ? 0 : 1;
      EXPECT_EQ(finite, 0) << "isa " << isa << " keys " << n_keys;
    });
  }
}

TEST(CpuIndexScores, OddShapesEveryIsa) {
  for (int threads : {1, 3}) {
    CpuOps ops(threads);
    for_each_isa([&](const std::string&) {
      uint32_t seed = 4000;
      for (int64_t n_head : {1, 7, 8, 9, 17})
        for (int64_t dim : {1, 5, 32, 130})
          for (int64_t n_keys : {1, 15, 17, 100}) check_index_scores(ops, n_head, dim, n_keys, seed++);
    });
  }
}

// A key's score does not depend on the other keys of the call: the model scores chunked
// key stores (kv::RowStore) run by run and relies on getting the one-call bits.
TEST(CpuIndexScores, RunsEqualOneCallEveryIsa) {
  const int64_t n_head = 64, dim = 128, n_keys = 300;
  const std::vector<float> q = random_x(n_head * dim, 71), hw = random_x(n_head, 72), keys = random_x(n_keys * dim, 73);
  CpuOps ops(2);
  for_each_isa([&](const std::string& isa) {
    std::vector<float> whole(static_cast<size_t>(n_keys)), runs(static_cast<size_t>(n_keys));
    ops.index_scores(q.data(), hw.data(), n_head, keys.data(), n_keys, dim, whole.data());
    const int64_t bounds[] = {0, 37, 101, 256, n_keys};  // runs of odd lengths
    for (int i = 0; i + 1 < 5; ++i)
      ops.index_scores(q.data(), hw.data(), n_head, keys.data() + bounds[i] * dim, bounds[i + 1] - bounds[i], dim,
                       runs.data() + bounds[i]);
    for (int64_t j = 0; j < n_keys; ++j) ASSERT_EQ(whole[size_t(j)], runs[size_t(j)]) << "key " << j << " isa " << isa;
  });
}

TEST(CpuIndexScores, RealShapeEveryIsa) {
  CpuOps ops(2);
  for_each_isa([&](const std::string&) {
    check_index_scores(ops, 64, 128, 8192, 5000);  // 64 heads x 128 over 8192 compressed keys
    check_index_scores(ops, 64, 128, 255, 5001);
  });
}

// Threads and batch position never change a result: the same query gives bit-identical
// outputs with 1 or 3 threads, and a key's score does not depend on n_keys.
TEST(CpuAttention, ThreadAndLengthInvariantEveryIsa) {
  CpuOps one(1), three(3);
  for_each_isa([&](const std::string& isa) {
    const int64_t H = 9, hd = 40, nk = 70;
    const std::vector<float> q = random_x(H * hd, 1), kbuf = random_x(nk * hd, 2), sink = random_x(H, 3);
    std::vector<const float*> keys;
    for (int64_t k = 0; k < nk; ++k) keys.push_back(kbuf.data() + k * hd);
    std::vector<float> a(static_cast<size_t>(H * hd)), b(static_cast<size_t>(H * hd));
    one.attention(q.data(), keys.data(), nk, sink.data(), H, hd, 0.3f, a.data());
    three.attention(q.data(), keys.data(), nk, sink.data(), H, hd, 0.3f, b.data());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << isa << " " << i;
    const std::vector<float> hw = random_x(H, 4);
    std::vector<float> s1(static_cast<size_t>(nk)), s3(static_cast<size_t>(nk));
    one.index_scores(q.data(), hw.data(), H, kbuf.data(), nk, hd, s1.data());
    for (int64_t n : {int64_t(1), int64_t(23), nk}) {
      three.index_scores(q.data(), hw.data(), H, kbuf.data(), n, hd, s3.data());
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(s1[size_t(j)], s3[size_t(j)]) << isa << " n " << n << " " << j;
    }
  });
}

// ------------------------------------------------------------- real V4-Flash shapes
// n_tok = 1 (decode) on the shapes the model runs; the 129280-row head is checked on
// a 1/16 slice (the full 1 GB matrix is exercised by bench/kernels_bench).
const Shape kRealShapes[] = {
    {WeightFormat::FP4_BLOCK32, 2048, 4096},   // expert w1 / w3
    {WeightFormat::FP4_BLOCK32, 4096, 2048},   // expert w2
    {WeightFormat::FP8_BLOCK128, 1024, 4096},  // wq_a (q_lora_rank 1024)
    {WeightFormat::FP8_BLOCK128, 512, 4096},   // wkv (head_dim 512)
    {WeightFormat::FP8_BLOCK128, 4096, 1024},  // wq_b-like (1024-wide input)
    {WeightFormat::FP8_BLOCK128, 512, 8192},   // wo_b rows (o_groups * o_lora_rank wide)
    {WeightFormat::BF16, 256, 4096},           // router
    {WeightFormat::BF16, 8080, 4096},          // LM head slice (129280 / 16 rows)
    {WeightFormat::F32, 24, 16384},            // mHC
};

TEST(CpuMatmul, RealShapesEveryIsa) {
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string&) {
    uint32_t seed = 100;
    for (const Shape& s : kRealShapes) {
      const OwnedWeight w = random_weight(s.f, s.n_out, s.n_in, seed++);
      // The oracle is slow: check every 7th row (all rows are computed).
      check_matmul(ops, w.view, 1, seed++, 7);
    }
  });
}

TEST(CpuMatmul, RealShapeMatmulTokens) {
  const OwnedWeight w = random_weight(WeightFormat::FP4_BLOCK32, 512, 4096, 300);
  const OwnedWeight w8 = random_weight(WeightFormat::FP8_BLOCK128, 256, 4096, 301);
  const OwnedWeight wb = random_weight(WeightFormat::BF16, 256, 4096, 304);
  for_each_numerics_and_isa([&](CpuOps& ops, const std::string&) {
    check_matmul(ops, w.view, 17, 302, 5);
    check_matmul(ops, w8.view, 9, 303, 5);
    check_matmul(ops, wb.view, 6, 305, 5);
  });
}

// Fast numerics really rounds the activations: on inputs with bits below bf16 precision
// its results differ from exact ones (and check_matmul holds them to the fast oracle).
TEST(CpuMatmul, FastRoundsActivationsToBf16) {
  const OwnedWeight w = random_weight(WeightFormat::FP4_BLOCK32, 64, 512, 310);
  const OwnedWeight wb = random_weight(WeightFormat::BF16, 64, 512, 311);
  const std::vector<float> x = random_x(512, 312);
  for (const OwnedWeight* ow : {&w, &wb}) {
    CpuOps exact(1, Numerics::kExact), fast(1, Numerics::kFast);
    std::vector<float> ye(64), yf(64), yr(64);
    exact.matmul(ow->view, x.data(), 1, ye.data());
    fast.matmul(ow->view, x.data(), 1, yf.data());
    std::vector<float> xr(x);
    for (float& v : xr) v = round_bf16_ftz(v);
    exact.matmul(ow->view, xr.data(), 1, yr.data());
    int differ = 0;
    for (int o = 0; o < 64; ++o) {
      differ += ye[size_t(o)] != yf[size_t(o)];
      // exact kernels on pre-rounded x: the same products, summed in another order
      EXPECT_NEAR(yf[size_t(o)], yr[size_t(o)], 1e-4 * (1.0 + std::fabs(yr[size_t(o)])));
    }
    EXPECT_GT(differ, 32) << weight_format_name(ow->view.format);
  }
}

// Fast numerics multiplies round_bf16_ftz(x): the BF16 dot-product kernels round in prep,
// their tails and scalar fallback rows as they read x, the exact kernels on a rounded
// copy. So rounding x beforehand must change nothing, bit for bit: on column tails, on
// rows whose special scales take the scalar path (one token, a token tile, the FP8
// panels), on every format and target, in matmul and matmul_many.
TEST(CpuMatmul, FastDependsOnlyOnRoundedActivationsEveryIsa) {
  OwnedWeight fp4 = random_weight(WeightFormat::FP4_BLOCK32, 6, 256, 41);
  fp4.scale[0 * 8 + 3] = 0;
  fp4.scale[2 * 8 + 0] = 254;
  OwnedWeight fp8 = random_weight(WeightFormat::FP8_BLOCK128, 300, 256, 42);
  fp8.scale[1 * 2 + 1] = 0;
  fp8.data[size_t(7 * 256 + 9)] = 0x7F;
  const OwnedWeight others[] = {random_weight(WeightFormat::FP4_BLOCK32, 9, 4128, 43),
                                random_weight(WeightFormat::BF16, 9, 70, 44),
                                random_weight(WeightFormat::FP8_BLOCK128, 7, 300, 45),
                                random_weight(WeightFormat::F32, 5, 37, 46)};
  std::vector<const OwnedWeight*> ws = {&fp4, &fp8};
  for (const OwnedWeight& o : others) ws.push_back(&o);
  CpuOps ops(2, Numerics::kFast);
  for_each_isa([&](const std::string& isa) {
    uint32_t seed = 950;
    for (const OwnedWeight* ow : ws) {
      const WeightView& w = ow->view;
      for (int64_t n_tok : {1, 3, 11}) {
        const std::vector<float> x = random_x(n_tok * w.n_in, seed++);
        std::vector<float> xr(x);
        for (float& v : xr) v = round_bf16_ftz(v);
        std::vector<float> y(size_t(n_tok * w.n_out)), yr(y.size()), ym(y.size()), ymr(y.size());
        ops.matmul(w, x.data(), n_tok, y.data());
        ops.matmul(w, xr.data(), n_tok, yr.data());
        const Ops::MatmulJob jobs[] = {{&w, x.data(), n_tok, ym.data()}, {&w, xr.data(), n_tok, ymr.data()}};
        ops.matmul_many(jobs, 2);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(yr[i]))
              << weight_format_name(w.format) << " [" << w.n_out << "," << w.n_in << "] n_tok " << n_tok << " at " << i
              << " isa " << isa;
          ASSERT_EQ(std::bit_cast<uint32_t>(ym[i]), std::bit_cast<uint32_t>(yr[i])) << "matmul_many, at " << i;
          ASSERT_EQ(std::bit_cast<uint32_t>(ymr[i]), std::bit_cast<uint32_t>(yr[i])) << "matmul_many, at " << i;
        }
      }
    }
  });
}

// ------------------------------------------------------------------- int8 numerics
// x with every 32-column block replaced by its quantised value q * step
// (quantize_int8_block), computed here independently of the kernels and the oracle.
std::vector<float> dequantised_int8(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  int8_t q[kInt8Block];
  for (size_t b = 0; b + kInt8Block <= x.size(); b += kInt8Block) {
    const float step = quantize_int8_block(x.data() + b, q);
    for (int64_t i = 0; i < kInt8Block; ++i) out[b + size_t(i)] = float(q[i]) * step;
  }
  return out;
}

// An int8 FP4 product is the exact product of the quantised activations (q * step is
// exact in fp32: 7 significant bits times a float): sum_i w_i q_i step = W . x', up to the
// order of fp32 sums. This checks the kernels against the exact ones on x', independently
// of the oracle's int8 code, on odd widths (a lone last block), special-scale rows, every
// token count and target, and a token whose activations hold a NaN.
// Activation blocks at the edges of the int8 quantisation (the vector prep must give
// quantize_int8_block's codes): all zero, exact ties at two scales (x * 127 / max|x| =
// k + 1/2: nearest-even), subnormals only; the first blocks of a token row of n columns.
// (A block of much larger values would hide them: the tolerance scales with sum |w x|.)
void set_int8_edge_blocks(float* x, int64_t n) {
  for (int64_t i = 0; i < std::min<int64_t>(n, 4 * 32); ++i) {
    const int64_t b = i / 32, k = i % 32;
    switch (b) {
      case 0: x[i] = 0.0f; break;
      case 1: x[i] = k == 0 ? 127.0f : float(k - 16) + 0.5f; break;                // step 1: ties
      case 2: x[i] = std::ldexp(k == 0 ? -127.0f : float(k) - 15.5f, -10); break;  // step 2^-10: ties
      default: x[i] = float(k - 13) * 0x1p-140f; break;                            // subnormal values
    }
  }
}

TEST(CpuMatmul, Int8IsExactOnQuantisedActivationsEveryIsa) {
  OwnedWeight special = random_weight(WeightFormat::FP4_BLOCK32, 6, 256, 61);
  special.scale[0 * 8 + 3] = 0;
  special.scale[1 * 8 + 7] = 0xFF;
  special.scale[2 * 8 + 0] = 254;
  special.scale[3 * 8 + 5] = 1;
  const OwnedWeight others[] = {random_weight(WeightFormat::FP4_BLOCK32, 9, 4128, 62),
                                random_weight(WeightFormat::FP4_BLOCK32, 5, 224, 63),
                                random_weight(WeightFormat::FP4_BLOCK32, 3, 32, 64),
                                random_weight(WeightFormat::FP4_BLOCK32, 33, 2048, 65),
                                random_weight(WeightFormat::FP4_BLOCK32, 4, 320, 74),
                                random_weight(WeightFormat::FP4_BLOCK32, 4, 384, 75)};
  std::vector<const OwnedWeight*> ws = {&special};
  for (const OwnedWeight& o : others) ws.push_back(&o);
  CpuOps int8(2, Numerics::kInt8), exact(2, Numerics::kExact);
  for_each_isa([&](const std::string& isa) {
    uint32_t seed = 970;
    for (const OwnedWeight* ow : ws) {
      const WeightView& w = ow->view;
      for (int64_t n_tok : {1, 3, 6}) {
        std::vector<float> x = random_x(n_tok * w.n_in, seed++);
        if (n_tok == 3) x[size_t(w.n_in + w.n_in / 2)] = std::nanf("");  // token 1
        if (n_tok == 3) x[size_t(2 * w.n_in + w.n_in - 1)] = -INFINITY;    // token 2: its block's step is NaN
        if (n_tok == 6) set_int8_edge_blocks(x.data() + 2 * w.n_in, w.n_in);  // token 2
        const std::vector<float> xq = dequantised_int8(x);
        std::vector<float> y(size_t(n_tok * w.n_out)), ye(y.size());
        int8.matmul(w, x.data(), n_tok, y.data());
        exact.matmul(w, xq.data(), n_tok, ye.data());
        std::vector<float> row(size_t(w.n_in));
        for (int64_t t = 0; t < n_tok; ++t)
          for (int64_t o = 0; o < w.n_out; ++o) {
            const float got = y[size_t(t * w.n_out + o)], want = ye[size_t(t * w.n_out + o)];
            const std::string where = std::string(" [") + std::to_string(w.n_out) + "," + std::to_string(w.n_in) +
                                      "] n_tok " + std::to_string(n_tok) + " tok " + std::to_string(t) + " row " +
                                      std::to_string(o) + " isa " + isa;
            if (n_tok == 3 && t >= 1) {
              EXPECT_TRUE(std::isnan(got)) << "a NaN or inf activation must spoil its token" << where;
              continue;
            }
            w.dequant_row(o, row.data());
            if (!std::all_of(row.begin(), row.end(), [](float v) { return std::isfinite(v); }) &&
                !std::any_of(row.begin(), row.end(), [](float v) { return std::isnan(v); }))
              continue;  // weights that overflow fp32: exact gives inf - inf, int8 sums in double
                         // (SpecialScalesAndNaNCodes holds such rows to the int8 oracle)
            if (std::isnan(want)) {
              EXPECT_TRUE(std::isnan(got)) << where;
              continue;
            }
            const double bound = 8.0 * std::sqrt(double(w.n_in)) * 0x1p-24 * abs_dot(w, o, xq.data() + t * w.n_in, row) +
                                 0x1p-146 * double(w.n_in);
            EXPECT_LE(std::fabs(double(got) - double(want)), bound) << got << " vs " << want << where;
          }
      }
    }
  });
}

// Int8 numerics really quantises (FP4 results move by the quantisation error, far above
// fp32 noise) and touches nothing else: BF16, FP8 and F32 products equal exact ones bit
// for bit.
TEST(CpuMatmul, Int8QuantisesOnlyFp4EveryIsa) {
  const OwnedWeight fp4 = random_weight(WeightFormat::FP4_BLOCK32, 64, 512, 66);
  const OwnedWeight others[] = {random_weight(WeightFormat::BF16, 20, 512, 67),
                                random_weight(WeightFormat::FP8_BLOCK128, 20, 300, 68),
                                random_weight(WeightFormat::F32, 20, 37, 69)};
  CpuOps int8(2, Numerics::kInt8), exact(2, Numerics::kExact);
  for_each_isa([&](const std::string& isa) {
    const std::vector<float> x = random_x(3 * 512, 71);
    std::vector<float> y(3 * 64), ye(3 * 64);
    int8.matmul(fp4.view, x.data(), 3, y.data());
    exact.matmul(fp4.view, x.data(), 3, ye.data());
    int far = 0;
    for (size_t i = 0; i < y.size(); ++i) far += std::fabs(y[i] - ye[i]) > 1e-4 * (1.0 + std::fabs(ye[i]));
    EXPECT_GT(far, int(y.size()) / 2) << "int8 results too close to exact ones: is the quantisation skipped? isa " << isa;
    for (const OwnedWeight& o : others) {
      const WeightView& w = o.view;
      std::vector<float> a(size_t(3 * w.n_out)), b(a.size());
      int8.matmul(w, x.data(), 3, a.data());
      exact.matmul(w, x.data(), 3, b.data());
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i]))
            << weight_format_name(w.format) << " at " << i << " isa " << isa;
    }
  });
}

// Values that exercise every branch of round_bf16_ftz: NaNs with payloads in either half,
// infinities, rounding ties (odd and even), carries into the exponent and to infinity,
// subnormals and the smallest normals, signed zeros, plus ordinary random values.
std::vector<float> rounding_cases(int64_t n, uint32_t seed) {
  const uint32_t bits[] = {0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0x7F810000u, 0xFFFFFFFFu, 0x7F800000u,
                           0xFF800000u, 0x3F808000u, 0x3F818000u, 0x3F80FFFFu, 0x7F7FFFFFu, 0xFF7F8000u,
                           0x00000001u, 0x807FFFFFu, 0x007F8000u, 0x00800000u, 0x80800000u, 0x007FFFFFu,
                           0x00000000u, 0x80000000u, 0x3F7FFFFFu, 0xC0490FDBu, 0x00FF7FFFu, 0x0080FFFFu};
  std::vector<float> x = random_x(n, seed);
  std::mt19937 rng(seed + 1);
  for (int64_t i = 0; i < n; ++i)
    if (rng() % 3 == 0) x[size_t(i)] = std::bit_cast<float>(bits[rng() % (sizeof(bits) / sizeof(bits[0]))]);
    else if (rng() % 5 == 0) x[size_t(i)] = std::bit_cast<float>(uint32_t(rng()));
  return x;
}

// The vector rounding of fast numerics equals the scalar statement bit for bit, on every target.
TEST(CpuRounding, RowsEqualScalarEveryIsa) {
  for_each_isa([&](const std::string& isa) {
    for (int64_t n : {1, 7, 16, 33, 4099}) {
      const std::vector<float> x = rounding_cases(n, uint32_t(n));
      std::vector<float> out(static_cast<size_t>(n));
      cpu::round_bf16_ftz_rows(x.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(out[size_t(i)]), std::bit_cast<uint32_t>(round_bf16_ftz(x[size_t(i)])))
            << "isa " << isa << " n " << n << " i " << i << " x bits " << std::hex << std::bit_cast<uint32_t>(x[size_t(i)]);
    }
  });
}

// The vectorised activation layouts of the BF16 dot-product kernels equal the scalar
// statement word for word (chunks, tails and padding), rounded input or not.
TEST(CpuRounding, Bf16PrepEqualsReference) {
  if (!cpu::bf16dot::available()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  const Shape shapes[] = {{WeightFormat::BF16, 1, 1},       {WeightFormat::BF16, 1, 95},
                          {WeightFormat::BF16, 1, 4096},    {WeightFormat::FP4_BLOCK32, 1, 32},
                          {WeightFormat::FP4_BLOCK32, 1, 704}, {WeightFormat::FP4_BLOCK32, 1, 4096},
                          {WeightFormat::FP8_BLOCK128, 1, 64}, {WeightFormat::FP8_BLOCK128, 1, 1472}};
  uint32_t seed = 900;
  for (const Shape& sh : shapes) {
    const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
    if (!cpu::bf16dot::handles(w.view)) continue;  // FP8 without VBMI: the exact kernels run
    const std::vector<float> x = rounding_cases(sh.n_in, seed++);
    const int64_t words = cpu::bf16dot::prep_words(w.view);
    std::vector<uint16_t> got(size_t(words), 0xAAAA), want(size_t(words), 0x5555);
    cpu::bf16dot::prep(w.view, x.data(), got.data());
    cpu::bf16dot::prep_reference(w.view, x.data(), want.data());
    for (int64_t i = 0; i < words; ++i)
      ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << weight_format_name(sh.f) << " n_in " << sh.n_in << " word " << i;
  }
}

// The weight prefetch hint: DSV4_PREFETCH=nta|l2 overrides the vendor default (NTA on
// AMD, L2 elsewhere); anything else leaves the default.
TEST(CpuPrefetch, HintChoice) {
  EXPECT_TRUE(cpu::prefetch_nta_for(nullptr, true));
  EXPECT_FALSE(cpu::prefetch_nta_for(nullptr, false));
  EXPECT_TRUE(cpu::prefetch_nta_for("nta", false));
  EXPECT_FALSE(cpu::prefetch_nta_for("l2", true));
  EXPECT_TRUE(cpu::prefetch_nta_for("L2", true));
  EXPECT_FALSE(cpu::prefetch_nta_for("", false));
}

// The first multi-token tile prefetches kPrefetchBytes of rows ahead of the row it is at,
// each row once, and never past the end of its row range (the rows beyond belong to
// another thread's piece, or to no tensor at all).
TEST(CpuPrefetch, RowsAheadOnceAndWithinRange) {
  std::vector<uint8_t> bytes(100 * 2048), scales(100 * 128);
  WeightView w;
  w.format = WeightFormat::FP4_BLOCK32;
  w.n_out = 100;
  w.n_in = 4096;  // 2048 bytes a row: 8 rows make kPrefetchBytes
  w.data = bytes.data();
  w.scale = scales.data();
  ASSERT_EQ(backend::cpu::kPrefetchBytes, 8 * 2048);
  backend::cpu::RowPrefetcher pf(w, 10, 40);
  EXPECT_EQ(pf.prefetched_until(), 10);
  pf.before(10);
  EXPECT_EQ(pf.prefetched_until(), 19);  // row 10 and the 8 after it
  pf.before(12);
  EXPECT_EQ(pf.prefetched_until(), 21);
  pf.before(11);  // behind: nothing new
  EXPECT_EQ(pf.prefetched_until(), 21);
  pf.before(35);
  EXPECT_EQ(pf.prefetched_until(), 40);  // capped at the range end
  pf.before(39);
  EXPECT_EQ(pf.prefetched_until(), 40);

  w.format = WeightFormat::BF16;  // 8192-byte rows: two rows make kPrefetchBytes
  backend::cpu::RowPrefetcher wide(w, 0, 3);
  wide.before(0);
  EXPECT_EQ(wide.prefetched_until(), 3);
}

// Decode walks a piece as pairs half the piece apart: every row of [r0, r1) exactly once,
// each pair (r, r + h) with h = (r1 - r0) / 2, the odd row left over last; a pair whose
// kernel declines (returns false) goes to the one-row path, both rows.
TEST(CpuPrefetch, RowPairsApartCoverEachRowOnce) {
  for (bool decline_some : {false, true}) {
    for (int64_t r0 : {0, 5}) {
      for (int64_t len : {0, 1, 2, 3, 8, 9, 127, 128}) {
        const int64_t r1 = r0 + len, h = len / 2;
        std::vector<int> by_pair(static_cast<size_t>(r1), 0), by_one(static_cast<size_t>(r1), 0);
        int64_t pairs = 0, last = -1;
        backend::cpu::for_row_pairs_apart(
            r0, r1,
            [&](int64_t ra, int64_t rb) {
              EXPECT_EQ(rb - ra, h);
              EXPECT_EQ(ra, r0 + pairs);
              ++pairs;
              if (decline_some && ra % 3 == 0) return false;  // nothing written
              ++by_pair[size_t(ra)], ++by_pair[size_t(rb)];
              return true;
            },
            [&](int64_t r) { ++by_one[size_t(r)], last = r; });
        EXPECT_EQ(pairs, h) << "len " << len;
        if (len % 2 == 1) {
          EXPECT_EQ(last, r1 - 1);
        }
        for (int64_t r = 0; r < r1; ++r) {
          EXPECT_EQ(by_pair[size_t(r)] + by_one[size_t(r)], r >= r0 ? 1 : 0) << "row " << r << " len " << len;
          const bool declined_pair = decline_some && r >= r0 && r < r0 + 2 * h && (r - (r - r0 >= h ? h : 0)) % 3 == 0;
          if (declined_pair) {
            EXPECT_EQ(by_one[size_t(r)], 1) << "row " << r << " of a declined pair, len " << len;
          }
        }
      }
    }
  }
}

TEST(CpuOps, NumericsNames) {
  EXPECT_EQ(parse_numerics("exact"), Numerics::kExact);
  EXPECT_EQ(parse_numerics("fast"), Numerics::kFast);
  EXPECT_EQ(parse_numerics("int8"), Numerics::kInt8);
  EXPECT_FALSE(parse_numerics("bf16").has_value());
  EXPECT_FALSE(parse_numerics("INT8").has_value());
  EXPECT_STREQ(numerics_name(Numerics::kFast), "fast");
  EXPECT_STREQ(numerics_name(Numerics::kInt8), "int8");
  for (Numerics n : kAllNumerics) EXPECT_EQ(parse_numerics(numerics_name(n)), n);
  EXPECT_EQ(RefOps(Numerics::kFast).numerics(), Numerics::kFast);
  EXPECT_EQ(make_ops("cpu", Numerics::kFast, 1)->name(), "cpu");
}

}  // namespace
}  // namespace dsv4::backend
