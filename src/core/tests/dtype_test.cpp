// Exhaustive checks of the narrow-float decoders against formulas written independently
// of dtype.cpp (pow/multiplication instead of ldexp on shifted mantissas), plus known values.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace dsv4 {
namespace {

bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

// E4M3FN by its definition: value = (-1)^s * 2^(e-7) * (1 + m/8), or 2^-6 * (m/8) when e = 0.
double e4m3_reference(unsigned code) {
  const unsigned s = code >> 7, e = (code >> 3) & 15u, m = code & 7u;
  const double sign = s ? -1.0 : 1.0;
  if (e == 15 && m == 7) return std::nan("");
  if (e == 0) return sign * std::pow(2.0, -6) * (m / 8.0);
  return sign * std::pow(2.0, int(e) - 7) * (1.0 + m / 8.0);
}

TEST(DType, E4M3AllCodes) {
  for (unsigned code = 0; code < 256; ++code) {
    const float got = e4m3_to_f32(uint8_t(code));
    const double want = e4m3_reference(code);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << code;
      continue;
    }
    EXPECT_TRUE(same_bits(got, float(want))) << "code " << code << " got " << got << " want " << want;
    EXPECT_EQ(double(got), want) << code;  // exact, not just after rounding to float
  }
}

TEST(DType, E4M3KnownValues) {
  EXPECT_EQ(e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(e4m3_to_f32(0x08), 0.015625f);       // 2^-6, smallest normal
  EXPECT_EQ(e4m3_to_f32(0x01), 0.001953125f);    // 2^-9, smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x07), 7.0f / 512.0f);   // largest subnormal
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x40), 2.0f);
  EXPECT_EQ(e4m3_to_f32(0x3C), 1.5f);
  EXPECT_EQ(e4m3_to_f32(0xB8), -1.0f);
  EXPECT_TRUE(same_bits(e4m3_to_f32(0x00), 0.0f));
  EXPECT_TRUE(same_bits(e4m3_to_f32(0x80), -0.0f));
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xFF)));
  EXPECT_EQ(e4m3_to_f32(0x77), 240.0f);  // e=14, m=7 is finite (no infinities in e4m3fn)
  EXPECT_EQ(e4m3_to_f32(0x78), 256.0f);
}

// The encoder against the decoder: every finite code round-trips, values between two
// codes go to the nearer (ties to the even code), and the ends saturate.
TEST(DType, E4M3EncodeNearest) {
  for (unsigned code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(uint8_t(code))), code) << code;
  }
  for (unsigned code = 0; code < 0x7E; ++code) {  // midpoints and near-midpoints of neighbours
    const double lo = e4m3_reference(code), hi = e4m3_reference(code + 1), mid = (lo + hi) / 2;
    const unsigned even = code % 2 == 0 ? code : code + 1;
    EXPECT_EQ(f32_to_e4m3(float(mid)), even) << code;
    EXPECT_EQ(f32_to_e4m3(-float(mid)), even | 0x80) << code;
    EXPECT_EQ(f32_to_e4m3(std::nextafter(float(mid), 0.0f)), code) << code;
    EXPECT_EQ(f32_to_e4m3(std::nextafter(float(mid), 1e9f)), code + 1) << code;
  }
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7E);
  EXPECT_EQ(f32_to_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(f32_to_e4m3(1e-9f), 0x00);
  EXPECT_EQ(f32_to_e4m3(-1e-9f), 0x80);
  EXPECT_EQ(f32_to_e4m3(std::nanf("")), 0x7F);
}

TEST(DType, E8M0AllCodes) {
  for (unsigned code = 0; code < 255; ++code) {
    const float got = e8m0_to_f32(uint8_t(code));
    double want = 1.0;
    for (int i = 127; i > int(code); --i) want /= 2;
    for (int i = 127; i < int(code); ++i) want *= 2;
    EXPECT_EQ(double(got), want) << code;
  }
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(128), 2.0f);
  EXPECT_EQ(e8m0_to_f32(120), 1.0f / 128);
  EXPECT_EQ(e8m0_to_f32(254), std::ldexp(1.0f, 127));
  EXPECT_EQ(std::bit_cast<uint32_t>(e8m0_to_f32(0)), 0x00400000u);  // 2^-127: an fp32 subnormal
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xFF)));
}

TEST(DType, E2M1AllCodes) {
  for (unsigned code = 0; code < 16; ++code) {
    const unsigned s = code >> 3, e = (code >> 1) & 3u, m = code & 1u;
    const double mag = e == 0 ? 0.5 * m : std::pow(2.0, int(e) - 1) * (1.0 + 0.5 * m);
    const float want = float(s ? -mag : mag);
    EXPECT_TRUE(same_bits(e2m1_to_f32(uint8_t(code)), want)) << code;
    EXPECT_TRUE(same_bits(e2m1_to_f32(uint8_t(code | 0xF0)), want)) << "high bits ignored, code " << code;
  }
  EXPECT_EQ(e2m1_to_f32(7), 6.0f);
  EXPECT_EQ(e2m1_to_f32(15), -6.0f);
  EXPECT_TRUE(std::signbit(e2m1_to_f32(8)));
}

TEST(DType, E2M1DoubledIsTwiceTheValue) {
  for (unsigned code = 0; code < 16; ++code) EXPECT_EQ(double(kE2M1Doubled[code]), 2.0 * e2m1_to_f32(uint8_t(code))) << code;
}

// The int8 activation quantisation: largest element at +-127, every element within half a
// step of its value, nearest-even ties, zero / NaN / infinite blocks, subnormal blocks.
TEST(DType, QuantizeInt8Block) {
  float x[kInt8Block];
  int8_t q[kInt8Block];
  for (int64_t i = 0; i < kInt8Block; ++i) x[i] = std::sin(float(i) * 0.7f) * 3.0f - 0.25f;
  x[5] = -4.5f;  // amax, negative
  const float d = quantize_int8_block(x, q);
  EXPECT_EQ(d, 4.5f / 127.0f);
  EXPECT_EQ(q[5], -127);
  for (int64_t i = 0; i < kInt8Block; ++i) {
    EXPECT_LE(std::fabs(double(x[i]) - double(q[i]) * 4.5 / 127.0), 0.5 * 4.5 / 127.0 * (1 + 1e-6)) << i;
    EXPECT_GE(q[i], -127);
    EXPECT_LE(q[i], 127);
  }
  // Ties: with amax = 127 the step is 1, so x = 2.5 and 3.5 are exact ties.
  std::fill(x, x + kInt8Block, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  x[4] = 0.49f;
  EXPECT_EQ(quantize_int8_block(x, q), 1.0f);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], 4);
  EXPECT_EQ(q[3], -2);
  EXPECT_EQ(q[4], 0);
  // All zero (signed zeros too).
  std::fill(x, x + kInt8Block, -0.0f);
  EXPECT_EQ(quantize_int8_block(x, q), 0.0f);
  for (int8_t v : q) EXPECT_EQ(v, 0);
  // A NaN or an infinity poisons the scale, never the codes.
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    std::fill(x, x + kInt8Block, 1.0f);
    x[7] = bad;
    q[0] = 9;
    EXPECT_TRUE(std::isnan(quantize_int8_block(x, q)));
    for (int8_t v : q) EXPECT_EQ(v, 0);
  }
  // A subnormal amax: 127 / amax overflows fp32, the codes must not.
  std::fill(x, x + kInt8Block, 0.0f);
  x[0] = std::bit_cast<float>(0x00000040u);
  x[1] = -std::bit_cast<float>(0x00000020u);
  quantize_int8_block(x, q);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -64);  // 63.5 ties to even
}

TEST(DType, Bf16RoundTripAllCodes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    EXPECT_EQ(std::bit_cast<uint32_t>(f), h << 16);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      ASSERT_EQ(f32_to_bf16(f), h);
    }
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  auto from_bits = [](uint32_t u) { return std::bit_cast<float>(u); };
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F800000u)), 0x3F80);  // 1.0 exact
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F807FFFu)), 0x3F80);  // below half: down
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808001u)), 0x3F81);  // above half: up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F818000u)), 0x3F82);  // tie, odd rounds up to even
  EXPECT_EQ(f32_to_bf16(from_bits(0xBF818000u)), 0xBF82);  // negative tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x7F7FFFFFu)), 0x7F80);  // max float rounds to +inf
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xFF80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7F800001u)))));  // NaN payload in low bits stays NaN
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);  // subnormal tie to even (0)
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);
}

TEST(DType, F16AllCodes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const unsigned s = h >> 15, e = (h >> 10) & 31u, m = h & 1023u;
    const float got = f16_to_f32(uint16_t(h));
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(got) : std::isinf(got)) << h;
      if (!m) {
        EXPECT_EQ(std::signbit(got), bool(s));
      }
      continue;
    }
    const double mag = e == 0 ? std::pow(2.0, -14) * (m / 1024.0) : std::pow(2.0, int(e) - 15) * (1.0 + m / 1024.0);
    ASSERT_TRUE(same_bits(got, float(s ? -mag : mag))) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(same_bits(f16_to_f32(0x8000), -0.0f));
}

TEST(DType, NamesAndSizes) {
  const std::pair<DType, size_t> all[] = {
      {DType::BOOL, 1}, {DType::U8, 1},  {DType::I8, 1},   {DType::I16, 2},  {DType::I32, 4},     {DType::I64, 8},
      {DType::F16, 2},  {DType::BF16, 2}, {DType::F32, 4}, {DType::F64, 8}, {DType::F8_E4M3, 1}, {DType::F8_E8M0, 1},
  };
  for (const auto& [t, size] : all) {
    EXPECT_EQ(dtype_size(t), size);
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  }
  EXPECT_EQ(dtype_name(DType::F8_E4M3), "F8_E4M3");
  EXPECT_EQ(dtype_name(DType::BF16), "BF16");
  EXPECT_FALSE(dtype_from_name("F4").has_value());
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
}

}  // namespace
}  // namespace dsv4
