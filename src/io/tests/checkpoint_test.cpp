// Checkpoint: golden sharded checkpoints, write_index round trip, index errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/tests/test_util.h"

namespace dsv4::io {
namespace {

using test::expect_error;
using test::TempDir;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class GoldenCheckpoint : public testing::TestWithParam<std::string> {};

TEST_P(GoldenCheckpoint, TensorCountMatchesIndex) {
  const std::string dir = test::golden_dir(GetParam());
  const auto ck = Checkpoint::open(dir);
  const auto index = read_json(dir + "/model.safetensors.index.json");
  EXPECT_EQ(ck->size(), index["weight_map"].size());
  uint64_t total = 0;
  for (const TensorInfo* t : ck->all()) {
    total += t->nbytes;
    EXPECT_EQ(index["weight_map"][t->name].get<std::string>(),
              t->file.substr(t->file.find_last_of('/') + 1));
  }
  EXPECT_EQ(total, index["metadata"]["total_size"].get<uint64_t>());
  // all() is sorted by name
  const auto all = ck->all();
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1]->name, all[i]->name);
}

TEST_P(GoldenCheckpoint, DtypesAndShapes) {
  const std::string dir = test::golden_dir(GetParam());
  const auto ck = Checkpoint::open(dir);
  const auto cfg = read_json(dir + "/config.json");
  const int64_t hidden = cfg["hidden_size"], inter = cfg["moe_intermediate_size"], vocab = cfg["vocab_size"];

  const TensorInfo& w1 = ck->get("layers.0.ffn.experts.0.w1.weight");
  EXPECT_EQ(w1.dtype, DType::I8);
  EXPECT_EQ(w1.shape, (std::vector<int64_t>{inter, hidden / 2}));
  EXPECT_EQ(w1.nbytes, uint64_t(inter * hidden / 2));
  const TensorInfo& w1s = ck->get("layers.0.ffn.experts.0.w1.scale");
  EXPECT_EQ(w1s.dtype, DType::F8_E8M0);
  EXPECT_EQ(w1s.shape, (std::vector<int64_t>{inter, hidden / 32}));

  const TensorInfo& embed = ck->get("embed.weight");
  EXPECT_EQ(embed.dtype, DType::BF16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{vocab, hidden}));
  EXPECT_EQ(embed.shape_str(), "[" + std::to_string(vocab) + ", " + std::to_string(hidden) + "]");

  const TensorInfo& wq_a = ck->get("layers.1.attn.wq_a.weight");
  EXPECT_EQ(wq_a.dtype, DType::F8_E4M3);
  const TensorInfo& wq_a_s = ck->get("layers.1.attn.wq_a.scale");
  EXPECT_EQ(wq_a_s.dtype, DType::F8_E8M0);
  EXPECT_EQ(wq_a_s.shape, (std::vector<int64_t>{(wq_a.shape[0] + 127) / 128, (wq_a.shape[1] + 127) / 128}));

  const TensorInfo& tid2eid = ck->get("layers.0.ffn.gate.tid2eid");
  EXPECT_EQ(tid2eid.dtype, DType::I64);
  EXPECT_EQ(tid2eid.shape, (std::vector<int64_t>{vocab, cfg["num_experts_per_tok"].get<int64_t>()}));

  EXPECT_EQ(ck->get("hc_head_fn").dtype, DType::F32);
  EXPECT_NE(ck->find("mtp.0.e_proj.weight"), nullptr);
  EXPECT_TRUE(ck->get("mtp.0.e_proj.weight").file.ends_with("model-00002-of-00002.safetensors"));
  EXPECT_EQ(ck->find("no.such.tensor"), nullptr);
  expect_error([&] { ck->get("no.such.tensor"); }, {dir, "missing tensor", "no.such.tensor"});
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenCheckpoint, testing::Values("tiny_shrunk_p64", "tiny_realwin_p502"));

}  // namespace
}  // namespace dsv4::io
