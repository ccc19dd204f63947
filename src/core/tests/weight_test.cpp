// WeightView dequantisation, row slicing and byte accounting for every format.
#include "core/weight.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv4 {
namespace {

// Independent decoders (definitions, not the library's code paths).
double e4m3_ref(uint8_t b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  const double mag = e == 0 ? m / 512.0 : std::pow(2.0, e - 7) * (1 + m / 8.0);
  return s ? -mag : mag;
}
double e8m0_ref(uint8_t b) { return std::pow(2.0, int(b) - 127); }
double e2m1_ref(uint8_t n) {
  static const double mags[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (n & 8) ? -mags[n & 7] : mags[n & 7];
}

// Finite e4m3 code for (r, c): avoids 0x7F/0xFF and covers subnormals.
uint8_t fp8_code(int64_t r, int64_t c) {
  const uint8_t b = uint8_t(r * 31 + c * 7 + 3);
  return (b & 0x7F) == 0x7F ? uint8_t(b - 1) : b;
}

struct Fp8Weight {
  int64_t n_out, n_in;
  std::vector<uint8_t> data, scale;
  Fp8Weight(int64_t out, int64_t in) : n_out(out), n_in(in) {
    data.resize(size_t(out * in));
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) data[size_t(r * in + c)] = fp8_code(r, c);
    const int64_t sb_rows = (out + 127) / 128, sb_cols = (in + 127) / 128;
    for (int64_t i = 0; i < sb_rows * sb_cols; ++i) scale.push_back(uint8_t(120 + 3 * i));  // distinct per block
  }
  WeightView view() const {
    WeightView w;
    w.format = WeightFormat::FP8_BLOCK128;
    w.n_out = n_out;
    w.n_in = n_in;
    w.data = data.data();
    w.scale = scale.data();
    w.name = "fp8";
    return w;
  }
  double expect(int64_t r, int64_t c) const {
    const int64_t sb_cols = (n_in + 127) / 128;
    return e4m3_ref(data[size_t(r * n_in + c)]) * e8m0_ref(scale[size_t((r / 128) * sb_cols + c / 128)]);
  }
};

struct Fp4Weight {
  int64_t n_out, n_in;
  std::vector<uint8_t> data, scale;
  Fp4Weight(int64_t out, int64_t in) : n_out(out), n_in(in) {
    for (int64_t i = 0; i < out * in / 2; ++i) data.push_back(uint8_t(i * 37 + 5));
    for (int64_t i = 0; i < out * in / 32; ++i) scale.push_back(uint8_t(118 + i % 19));
  }
  WeightView view() const {
    WeightView w;
    w.format = WeightFormat::FP4_BLOCK32;
    w.n_out = n_out;
    w.n_in = n_in;
    w.data = data.data();
    w.scale = scale.data();
    w.name = "fp4";
    return w;
  }
  double expect(int64_t r, int64_t c) const {
    const uint8_t byte = data[size_t(r * (n_in / 2) + c / 2)];
    const uint8_t nibble = (c % 2 == 0) ? (byte & 15) : (byte >> 4);
    return e2m1_ref(nibble) * e8m0_ref(scale[size_t(r * (n_in / 32) + c / 32)]);
  }
};

// Checks dequant_row and at() of w against expect(r, c) for every element.
template <typename Expect>
void check_all(const WeightView& w, Expect expect) {
  std::vector<float> row(size_t(w.n_in));
  for (int64_t r = 0; r < w.n_out; ++r) {
    w.dequant_row(r, row.data());
    for (int64_t c = 0; c < w.n_in; ++c) {
      const double want = expect(r, c);
      ASSERT_EQ(double(row[size_t(c)]), want) << w.name << " (" << r << ", " << c << ")";
      ASSERT_EQ(double(w.at(r, c)), want) << w.name << " (" << r << ", " << c << ")";
    }
  }
}

TEST(Weight, F32) {
  std::vector<float> v(15);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.25f - 1;
  WeightView w;
  w.format = WeightFormat::F32;
  w.n_out = 3;
  w.n_in = 5;
  w.data = reinterpret_cast<const uint8_t*>(v.data());
  check_all(w, [&](int64_t r, int64_t c) { return double(v[size_t(r * 5 + c)]); });
  EXPECT_EQ(w.row_bytes(), 20);
  EXPECT_EQ(w.total_bytes(), 60);
  const WeightView tail = weight_rows(w, 1, 2);
  check_all(tail, [&](int64_t r, int64_t c) { return double(v[size_t((r + 1) * 5 + c)]); });
  EXPECT_EQ(tail.total_bytes(), 40);
}

TEST(Weight, Bf16) {
  std::vector<uint16_t> v;
  for (int i = 0; i < 4 * 6; ++i) v.push_back(f32_to_bf16(float(i) * 1.5f - 7.0f));
  WeightView w;
  w.format = WeightFormat::BF16;
  w.n_out = 4;
  w.n_in = 6;
  w.data = reinterpret_cast<const uint8_t*>(v.data());
  check_all(w, [&](int64_t r, int64_t c) { return double(r * 6 + c) * 1.5 - 7.0; });
  EXPECT_EQ(w.row_bytes(), 12);
  EXPECT_EQ(w.total_bytes(), 48);
  const WeightView mid = weight_rows(w, 2, 1);
  check_all(mid, [&](int64_t r, int64_t c) { return double((r + 2) * 6 + c) * 1.5 - 7.0; });
}

TEST(Weight, Fp8NonMultipleOf128) {
  const Fp8Weight m(130, 200);  // 2x2 scale blocks, both partial
  const WeightView w = m.view();
  check_all(w, [&](int64_t r, int64_t c) { return m.expect(r, c); });
  EXPECT_EQ(w.row_bytes(), 200);
  EXPECT_EQ(w.total_bytes(), 130 * 200 + 2 * 2);
  const Fp8Weight small(5, 3);  // a single partial block
  check_all(small.view(), [&](int64_t r, int64_t c) { return small.expect(r, c); });
  EXPECT_EQ(small.view().total_bytes(), 15 + 1);
}

TEST(Weight, Fp8SliceStartingMidBlock) {
  const Fp8Weight m(300, 260);  // scale grid 3x3
  const WeightView w = m.view();
  const WeightView s = weight_rows(w, 100, 60);  // rows 100..159 cross the block edge at 128
  EXPECT_EQ(s.row_offset, 100);
  EXPECT_EQ(s.scale, w.scale);  // the scale grid stays the stored tensor's
  check_all(s, [&](int64_t r, int64_t c) { return m.expect(r + 100, c); });
  EXPECT_EQ(s.total_bytes(), 60 * 260 + 2 * 3);  // touches scale rows 0 and 1
  // A slice of a slice accumulates the offset.
  const WeightView s2 = weight_rows(s, 30, 20);  // stored rows 130..149: scale row 1 only
  EXPECT_EQ(s2.row_offset, 130);
  check_all(s2, [&](int64_t r, int64_t c) { return m.expect(r + 130, c); });
  EXPECT_EQ(s2.total_bytes(), 20 * 260 + 1 * 3);
  const WeightView last = weight_rows(w, 256, 44);  // the partial last block
  check_all(last, [&](int64_t r, int64_t c) { return m.expect(r + 256, c); });
  EXPECT_EQ(last.total_bytes(), 44 * 260 + 3);
}

// fp8_normal_blocks: bit (row * n_blocks + block) is set exactly when every code of the
// block's row segment is a normal number, here by the definition (finite, |v| >= 2^-6,
// the smallest normal E4M3), on a shape whose blocks are partial and whose rows' bits
// cross word boundaries; slices read the stored tensor's bits through row_offset.
TEST(Weight, Fp8NormalBlocks) {
  const int64_t n_out = 70, n_in = 300, nb = 3;  // 210 bits: four words, rows straddling them
  Fp8Weight m(n_out, n_in);
  std::vector<uint8_t>& data = m.data;  // normal codes only, then the placed ones
  for (int64_t r = 0; r < n_out; ++r)
    for (int64_t c = 0; c < n_in; ++c) data[size_t(r * n_in + c)] = uint8_t(0x08 + (r * 7 + c * 13) % 0x70) | (c % 2 ? 0x80 : 0);
  // One special code in some (row, block) segments: zero, -zero, subnormals, NaN, at the
  // first and last column of a block and in the partial last block.
  const struct {
    int64_t row, col;
    uint8_t code;
  } placed[] = {{0, 0, 0x00},   {1, 127, 0x80}, {2, 128, 0x01}, {3, 255, 0x87}, {4, 256, 0x7F}, {5, 299, 0xFF},
                {9, 200, 0x07}, {21, 5, 0x05},  {42, 130, 0x00}, {63, 299, 0x81}, {69, 0, 0x7F}};
  for (const auto& p : placed) data[size_t(p.row * n_in + p.col)] = p.code;
  WeightView w = m.view();
  const std::vector<uint64_t> bits = fp8_normal_blocks(w);
  ASSERT_EQ(bits.size(), 4u);
  EXPECT_EQ(bits[3] >> (210 - 192), 0u) << "bits past the last block stay clear";
  int specials = 0;
  for (int64_t r = 0; r < n_out; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      bool normal = true;
      for (int64_t c = b * 128; c < std::min(n_in, b * 128 + 128); ++c) {
        const double v = e4m3_ref(data[size_t(r * n_in + c)]);
        const bool nan = (data[size_t(r * n_in + c)] & 0x7F) == 0x7F;
        normal = normal && !nan && std::fabs(v) >= 0x1p-6;
      }
      specials += !normal;
      const int64_t i = r * nb + b;
      EXPECT_EQ((bits[size_t(i / 64)] >> (i % 64)) & 1, uint64_t(normal)) << "row " << r << " block " << b;
      EXPECT_EQ(fp8_normal_bit(w, r, b), uint64_t(i));
      EXPECT_EQ(fp8_normal_test(bits.data(), fp8_normal_bit(w, r, b)), normal);
    }
  EXPECT_EQ(specials, 11);
  // Views keep the stored tensor's bits; the flag words count as bytes read.
  w.fp8_normal = bits.data();
  const WeightView s = weight_rows(w, 21, 30);  // stored rows 21..50: bits 63..152, words 0..2
  EXPECT_EQ(s.fp8_normal, bits.data());
  EXPECT_EQ(s.total_bytes(), 30 * 300 + 3 + 8 * 3);
  EXPECT_EQ(w.total_bytes(), 70 * 300 + 3 + 8 * 4);
  // Only a whole FP8 tensor has its own flags.
  EXPECT_THROW(fp8_normal_blocks(s), Error);
  WeightView f32 = w;
  f32.format = WeightFormat::F32;
  EXPECT_THROW(fp8_normal_blocks(f32), Error);
}

TEST(Weight, Fp4NibbleOrder) {
  // One row of 32 columns: byte 0 = 0x71 holds col 0 (low nibble, code 1 = 0.5) and
  // col 1 (high nibble, code 7 = 6); scale 2^0.
  std::vector<uint8_t> data(16, 0);
  data[0] = 0x71;
  data[1] = 0xF8;  // col 2: -0, col 3: -6
  const uint8_t scale[1] = {128};  // 2
  WeightView w;
  w.format = WeightFormat::FP4_BLOCK32;
  w.n_out = 1;
  w.n_in = 32;
  w.data = data.data();
  w.scale = scale;
  std::vector<float> row(32);
  w.dequant_row(0, row.data());
  EXPECT_EQ(row[0], 1.0f);
  EXPECT_EQ(row[1], 12.0f);
  EXPECT_TRUE(row[2] == 0.0f && std::signbit(row[2]));
  EXPECT_EQ(row[3], -12.0f);
  EXPECT_EQ(w.at(0, 1), 12.0f);
  EXPECT_EQ(w.total_bytes(), 16 + 1);
}

TEST(Weight, Fp4AllCodesAndSlices) {
  const Fp4Weight m(5, 96);  // 3 scale blocks per row
  const WeightView w = m.view();
  check_all(w, [&](int64_t r, int64_t c) { return m.expect(r, c); });
  EXPECT_EQ(w.row_bytes(), 48);
  EXPECT_EQ(w.total_bytes(), 5 * 48 + 5 * 3);
  const WeightView s = weight_rows(w, 2, 3);
  check_all(s, [&](int64_t r, int64_t c) { return m.expect(r + 2, c); });
  EXPECT_EQ(s.total_bytes(), 3 * 48 + 3 * 3);
}

TEST(Weight, SliceOutOfRangeThrows) {
  const Fp8Weight m(10, 10);
  const WeightView w = m.view();
  EXPECT_THROW(weight_rows(w, 5, 6), Error);
  EXPECT_THROW(weight_rows(w, -1, 2), Error);
  EXPECT_THROW(weight_rows(w, 0, -1), Error);
  EXPECT_NO_THROW(weight_rows(w, 10, 0));
  try {
    weight_rows(w, 5, 6);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp8"), std::string::npos);
  }
}

TEST(Weight, FormatNames) {
  EXPECT_STREQ(weight_format_name(WeightFormat::F32), "f32");
  EXPECT_STREQ(weight_format_name(WeightFormat::BF16), "bf16");
  EXPECT_STREQ(weight_format_name(WeightFormat::FP8_BLOCK128), "fp8_e4m3_block128");
  EXPECT_STREQ(weight_format_name(WeightFormat::FP4_BLOCK32), "fp4_e2m1_block32");
}

}  // namespace
}  // namespace dsv4
