// Dequantising golden checkpoint tensors through a WeightView built from the TensorInfo
// must reproduce the reference's expected/dequant_*.npy bit for bit.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>

#include "core/weight.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/tests/test_util.h"

namespace dsv4::io {
namespace {

// The view of a 2-D weight `name` (".weight") and, for FP8/FP4, its ".scale" companion.
WeightView view_of(const Checkpoint& ck, const std::string& name) {
  const TensorInfo& t = ck.get(name);
  EXPECT_EQ(t.shape.size(), 2u);
  WeightView w;
  w.name = name;
  w.n_out = t.shape[0];
  w.data = t.data;
  const std::string scale_name = name.substr(0, name.size() - std::string("weight").size()) + "scale";
  switch (t.dtype) {
    case DType::F32: w.format = WeightFormat::F32; w.n_in = t.shape[1]; break;
    case DType::BF16: w.format = WeightFormat::BF16; w.n_in = t.shape[1]; break;
    case DType::F8_E4M3: {
      w.format = WeightFormat::FP8_BLOCK128;
      w.n_in = t.shape[1];
      const TensorInfo& s = ck.get(scale_name);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{(w.n_out + 127) / 128, (w.n_in + 127) / 128}));
      w.scale = s.data;
      break;
    }
    case DType::I8: {
      w.format = WeightFormat::FP4_BLOCK32;
      w.n_in = t.shape[1] * 2;
      const TensorInfo& s = ck.get(scale_name);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{w.n_out, w.n_in / 32}));
      w.scale = s.data;
      break;
    }
    default: ADD_FAILURE() << "unexpected dtype for " << name;
  }
  return w;
}

class GoldenDequant : public testing::TestWithParam<const char*> {};

TEST_P(GoldenDequant, MatchesReferenceBitExactly) {
  const std::string dir = test::golden_dir("tiny_shrunk_p64");
  const auto ck = Checkpoint::open(dir);
  const std::string name = GetParam();
  std::string file = name;
  for (char& c : file) if (c == '.') c = '_';
  const NpyArray expected = read_npy(dir + "/expected/dequant_" + file + ".npy");
  const WeightView w = view_of(*ck, name);
  ASSERT_EQ(expected.shape, (std::vector<int64_t>{w.n_out, w.n_in}));
  const std::vector<float> ref = expected.to_f32();
  std::vector<float> row(size_t(w.n_in));
  int64_t mismatches = 0;
  for (int64_t r = 0; r < w.n_out; ++r) {
    w.dequant_row(r, row.data());
    for (int64_t c = 0; c < w.n_in; ++c) {
      const uint32_t want = std::bit_cast<uint32_t>(ref[size_t(r * w.n_in + c)]);
      mismatches += std::bit_cast<uint32_t>(row[size_t(c)]) != want;
      mismatches += std::bit_cast<uint32_t>(w.at(r, c)) != want;
    }
  }
  EXPECT_EQ(mismatches, 0) << name;
  // Row slices see the same values (FP8 slices may start mid-block).
  const WeightView tail = weight_rows(w, 37, w.n_out - 37);
  tail.dequant_row(100, row.data());
  EXPECT_EQ(std::memcmp(row.data(), ref.data() + 137 * w.n_in, size_t(w.n_in) * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(Tensors, GoldenDequant,
                         testing::Values("layers.0.ffn.experts.3.w2.weight", "layers.1.attn.wq_b.weight",
                                         "mtp.0.e_proj.weight"));

}  // namespace
}  // namespace dsv4::io
