// Every fast CPU kernel against the scalar oracle (RefOps), on every SIMD target this CPU
// and binary can run, on odd shapes and on the real V4-Flash shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
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
  }
  return {4.0, 0x1p-146};
}

// ----------------------------------------------------------------- random weights
struct OwnedWeight {
  std::vector<uint8_t> data, scale;
  WeightView view;
};

// Varied E8M0 scales around 2^0 (2^-9 .. 2^6) and every code of the element format
// (all 16 E2M1 nibbles; all 254 finite E4M3 bytes, subnormals included).
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
      for (auto& b : w.data) {
        do b = uint8_t(byte(rng));
        while ((b & 0x7F) == 0x7F);
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

// Runs ops.matmul and RefOps.matmul on rows `check_rows` (all rows when empty) and
// compares within the tolerance table.
void check_matmul(Ops& ops, const WeightView& w, int64_t n_tok, uint32_t seed,
                  int64_t row_stride = 1) {
  const std::vector<float> x = random_x(n_tok * w.n_in, seed);
  std::vector<float> y(size_t(n_tok * w.n_out), -12345.0f);
  ops.matmul(w, x.data(), n_tok, y.data());
  RefOps ref;
  const Tolerance tol = tolerance(Numerics::kExact, w.format);
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
      const double bound = tol.lambda * std::sqrt(double(w.n_in)) * 0x1p-24 *
                               abs_dot(w, o, x.data() + t * w.n_in, row) +
                           tol.abs_floor * double(w.n_in) + 0x1p-149;
      if (!(std::fabs(double(got) - double(want)) <= bound)) {
        ADD_FAILURE() << weight_format_name(w.format) << " [" << w.n_out << "," << w.n_in
                      << "] n_tok " << n_tok << " tok " << t << " row " << o << ": got " << got
                      << " want " << want << " bound " << bound << " isa " << current_isa();
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
    {WeightFormat::FP8_BLOCK128, 5, 1000},  {WeightFormat::FP4_BLOCK32, 1, 32},
    {WeightFormat::FP4_BLOCK32, 7, 96},  {WeightFormat::FP4_BLOCK32, 33, 160},
    {WeightFormat::FP4_BLOCK32, 3, 4128}, {WeightFormat::FP4_BLOCK32, 5, 256},
};

TEST(CpuMatmul, OddShapesEveryIsa) {
  for (int threads : {1, 3}) {
    CpuOps ops(threads);
    for_each_isa([&](const std::string&) {
      uint32_t seed = 1;
      for (const Shape& s : kOddShapes) {
        const OwnedWeight w = random_weight(s.f, s.n_out, s.n_in, seed++);
        for (int64_t n_tok : {1, 3, 17}) check_matmul(ops, w.view, n_tok, seed++);
      }
    });
  }
}

// FP8 views that start mid scale block (row_offset), as one wo_a group does.
TEST(CpuMatmul, Fp8RowOffsetViews) {
  CpuOps ops(2);
  const OwnedWeight w = random_weight(WeightFormat::FP8_BLOCK128, 300, 200, 7);
  for_each_isa([&](const std::string&) {
    check_matmul(ops, weight_rows(w.view, 37, 200), 1, 11);
    check_matmul(ops, weight_rows(weight_rows(w.view, 100, 150), 60, 90), 3, 12);
  });
}

// Scales that the fast paths do not take (0 = 2^-127 subnormal, 0xFF = NaN, FP8 scales
// too large for the folded 2^8) and E4M3 NaN codes fall back to the exact row path.
TEST(CpuMatmul, SpecialScalesAndNaNCodes) {
  CpuOps ops(2);
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
  for_each_isa([&](const std::string&) {
    check_matmul(ops, fp8b.view, 1, 28);
    check_matmul(ops, fp8b.view, 6, 29);
    check_matmul(ops, fp4.view, 1, 23);
    check_matmul(ops, fp4.view, 5, 24);
    check_matmul(ops, fp8.view, 1, 25);
    check_matmul(ops, fp8.view, 4, 26);
  });
}

// Batch invariance: row o of token t is computed in the same order whatever n_tok and
// thread count, so a token's result does not depend on its batch (the model's batched
// forward relies on it). Compared exactly (== treats -0 and +0 alike).
TEST(CpuMatmul, BatchInvariantEveryIsa) {
  const Shape shapes[] = {{WeightFormat::F32, 9, 37},           {WeightFormat::BF16, 9, 70},
                          {WeightFormat::FP8_BLOCK128, 9, 300}, {WeightFormat::FP8_BLOCK128, 9, 256},
                          {WeightFormat::FP4_BLOCK32, 9, 4128}, {WeightFormat::FP4_BLOCK32, 10, 512}};
  CpuOps batched(2), single(1);
  for_each_isa([&](const std::string& isa) {
    uint32_t seed = 500;
    for (const Shape& sh : shapes) {
      const OwnedWeight w = random_weight(sh.f, sh.n_out, sh.n_in, seed++);
      const int64_t n_tok = 6;
      const std::vector<float> x = random_x(n_tok * sh.n_in, seed++);
      std::vector<float> yb(static_cast<size_t>(n_tok * sh.n_out)), y1(static_cast<size_t>(sh.n_out));
      batched.matmul(w.view, x.data(), n_tok, yb.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        single.matmul(w.view, x.data() + t * sh.n_in, 1, y1.data());
        for (int64_t o = 0; o < sh.n_out; ++o)
          ASSERT_EQ(yb[size_t(t * sh.n_out + o)], y1[size_t(o)])
              << weight_format_name(sh.f) << " [" << sh.n_out << "," << sh.n_in << "] tok " << t
              << " row " << o << " isa " << isa;
      }
    }
  });
}

// matmul_many runs a group in one parallel region; every job must equal its own matmul
// bit for bit (same row kernels, same summation order), whatever the grouping, the
// sharing of activations between jobs and the thread count.
TEST(CpuMatmul, ManyEqualsMatmulEveryIsa) {
  const Shape shapes[] = {{WeightFormat::FP4_BLOCK32, 300, 512},  {WeightFormat::FP4_BLOCK32, 64, 512},
                          {WeightFormat::FP8_BLOCK128, 130, 512}, {WeightFormat::BF16, 77, 512},
                          {WeightFormat::F32, 9, 512},            {WeightFormat::FP8_BLOCK128, 3, 300},
                          {WeightFormat::FP4_BLOCK32, 1, 4128},   {WeightFormat::BF16, 700, 96}};
  std::vector<OwnedWeight> ws;
  uint32_t seed = 900;
  for (const Shape& sh : shapes) ws.push_back(random_weight(sh.f, sh.n_out, sh.n_in, seed++));
  const int64_t max_tok = 5;
  const std::vector<float> x512 = random_x(max_tok * 512, seed++);  // shared by the 512-wide jobs
  for (int threads : {1, 2, 3}) {
    CpuOps ops(threads);
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

// ------------------------------------------------------------- real V4-Flash shapes
// n_tok = 1 (decode) on the shapes the model runs; the 129280-row head is checked on
// a 1/16 slice (the full 1 GB matrix is exercised by bench/kernels_bench).
const Shape kRealShapes[] = {
    {WeightFormat::FP4_BLOCK32, 2048, 4096},   // expert w1 / w3
    {WeightFormat::FP4_BLOCK32, 4096, 2048},   // expert w2
    {WeightFormat::FP8_BLOCK128, 1024, 4096},  // wq_a (q_lora_rank 1024)
    {WeightFormat::FP8_BLOCK128, 512, 4096},   // wkv (head_dim 512)
    {WeightFormat::FP8_BLOCK128, 4096, 1024},  // wo_b-like (1024-wide input)
    {WeightFormat::BF16, 256, 4096},           // router
    {WeightFormat::BF16, 8080, 4096},          // LM head slice (129280 / 16 rows)
    {WeightFormat::F32, 24, 16384},            // mHC
};

TEST(CpuMatmul, RealShapesEveryIsa) {
  CpuOps ops(2);
  for_each_isa([&](const std::string&) {
    uint32_t seed = 100;
    for (const Shape& s : kRealShapes) {
      const OwnedWeight w = random_weight(s.f, s.n_out, s.n_in, seed++);
      // The oracle is slow: check every 7th row (all rows are computed).
      check_matmul(ops, w.view, 1, seed++, 7);
    }
  });
}

TEST(CpuMatmul, RealShapeMatmulTokens) {
  CpuOps ops(2);
  const OwnedWeight w = random_weight(WeightFormat::FP4_BLOCK32, 512, 4096, 300);
  const OwnedWeight w8 = random_weight(WeightFormat::FP8_BLOCK128, 256, 4096, 301);
  for_each_isa([&](const std::string&) {
    check_matmul(ops, w.view, 17, 302, 5);
    check_matmul(ops, w8.view, 9, 303, 5);
  });
}

}  // namespace
}  // namespace dsv4::backend
