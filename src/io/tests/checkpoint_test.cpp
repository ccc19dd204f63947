// Checkpoint: golden sharded checkpoints, write_index round trip, index errors.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
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

// A checkpoint copied into (huge-page) anonymous memory holds the same tensors and bytes
// as the file mapping, on its own memory, read-only.
TEST_P(GoldenCheckpoint, CopyResidencyEqualsMapping) {
  const std::string dir = test::golden_dir(GetParam());
  const auto mapped = Checkpoint::open(dir, Residency::kMap);
  const auto copied = Checkpoint::open(dir, Residency::kCopy);
  EXPECT_EQ(mapped->residency(), Residency::kMap);
  EXPECT_EQ(copied->residency(), Residency::kCopy);
  EXPECT_EQ(mapped->file_bytes(), copied->file_bytes());
  EXPECT_GT(copied->file_bytes(), 0u);
  ASSERT_EQ(mapped->size(), copied->size());
  const auto a = mapped->all(), b = copied->all();
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]->name, b[i]->name);
    ASSERT_EQ(a[i]->shape, b[i]->shape);
    ASSERT_EQ(a[i]->nbytes, b[i]->nbytes);
    EXPECT_NE(a[i]->data, b[i]->data) << a[i]->name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b[i]->data) % 64, 0u) << a[i]->name;  // cache-line aligned
    EXPECT_EQ(std::memcmp(a[i]->data, b[i]->data, a[i]->nbytes), 0) << a[i]->name;
  }
  // Huge-page accounting (Linux: /proc/self/smaps): never more than the shards' memory.
  for (const Checkpoint* ck : {mapped.get(), copied.get()}) {
    const std::optional<uint64_t> huge = ck->huge_page_bytes();
    ASSERT_TRUE(huge.has_value());
    EXPECT_LE(*huge, ck->file_bytes() + 64 * ck->size() + (uint64_t(2) << 20));
  }
  // kAuto resolves to one of the two, never stays kAuto.
  EXPECT_NE(Checkpoint::open(dir, Residency::kAuto)->residency(), Residency::kAuto);
}

// kSplit: the streamed tensors stay in the file mapping (same address as kMap's would
// be: inside the mapping), every other tensor is a 64-byte aligned copy; all bytes equal.
TEST_P(GoldenCheckpoint, SplitResidencyCopiesAllButStreamed) {
  const std::string dir = test::golden_dir(GetParam());
  const auto mapped = Checkpoint::open(dir, Residency::kMap);
  const auto streamed = [](const std::string& name) { return name.find(".ffn.experts.") != std::string::npos; };
  const auto split = Checkpoint::open(dir, Residency::kSplit, streamed);
  EXPECT_EQ(split->residency(), Residency::kSplit);
  const auto a = mapped->all(), b = split->all();
  ASSERT_EQ(a.size(), b.size());
  int n_streamed = 0, n_copied = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]->name, b[i]->name);
    ASSERT_EQ(a[i]->nbytes, b[i]->nbytes);
    EXPECT_EQ(std::memcmp(a[i]->data, b[i]->data, a[i]->nbytes), 0) << a[i]->name;
    if (streamed(b[i]->name)) {
      // In the split's own mapping: the file's bytes at the same offset within a page.
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b[i]->data) % 4096, reinterpret_cast<uintptr_t>(a[i]->data) % 4096)
          << b[i]->name;
      ++n_streamed;
    } else {
      ++n_copied;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b[i]->data) % 64, 0u) << b[i]->name;
    }
  }
  EXPECT_GT(n_streamed, 0);
  EXPECT_GT(n_copied, 0);
  // Without a streamed mark, kSplit is kCopy: every tensor aligned.
  const auto unmarked = Checkpoint::open(dir, Residency::kSplit);  // alive while its tensors are read
  for (const TensorInfo* t : unmarked->all())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 64, 0u) << t->name;
}

TEST(Residency, NamesAndAutoPolicy) {
  for (Residency r : {Residency::kAuto, Residency::kMap, Residency::kCopy, Residency::kSplit})
    EXPECT_EQ(parse_residency(residency_name(r)), r);
  EXPECT_FALSE(parse_residency("mapped").has_value());
  EXPECT_FALSE(parse_residency("").has_value());
  EXPECT_EQ(resolve_residency(Residency::kMap, 1), Residency::kMap);
  EXPECT_EQ(resolve_residency(Residency::kCopy, uint64_t(1) << 62), Residency::kCopy);
  EXPECT_EQ(resolve_residency(Residency::kAuto, 1), Residency::kCopy);             // tiny: copy
  EXPECT_EQ(resolve_residency(Residency::kAuto, uint64_t(1) << 62), Residency::kMap);  // 4 EiB: map
  // Too large to copy whole: split when the copied part fits, else map.
  EXPECT_EQ(resolve_residency(Residency::kAuto, uint64_t(1) << 62, 1), Residency::kSplit);
  EXPECT_EQ(resolve_residency(Residency::kAuto, uint64_t(1) << 62, uint64_t(1) << 61), Residency::kMap);
  EXPECT_EQ(resolve_residency(Residency::kAuto, 1, 1), Residency::kCopy);  // fits whole: copy
  EXPECT_EQ(resolve_residency(Residency::kSplit, 1), Residency::kSplit);
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

// ---------------------------------------------------------------- written checkpoints

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed * 7 + i);
  return v;
}

// Two shards + index in `dir`: a.* in shard 1, b.* in shard 2. Returns the weight map.
std::map<std::string, std::string> write_sharded(const std::string& dir) {
  SafetensorsWriter s1, s2;
  s1.add("a.weight", DType::BF16, {4, 8}, bytes_of(64, 1));
  s1.add("a.scale", DType::F8_E8M0, {1, 1}, bytes_of(1, 2));
  s2.add("b.weight", DType::F32, {3}, bytes_of(12, 3));
  s2.add("b.tid2eid", DType::I64, {2, 2}, bytes_of(32, 4));
  s1.write(dir + "/model-00001-of-00002.safetensors");
  s2.write(dir + "/model-00002-of-00002.safetensors");
  std::map<std::string, std::string> wm;
  for (const auto& n : s1.names()) wm[n] = "model-00001-of-00002.safetensors";
  for (const auto& n : s2.names()) wm[n] = "model-00002-of-00002.safetensors";
  write_index(dir + "/model.safetensors.index.json", s1.data_bytes() + s2.data_bytes(), wm);
  return wm;
}

TEST(Checkpoint, WriteIndexAndOpenSharded) {
  TempDir tmp;
  const auto wm = write_sharded(tmp.path());
  const auto index = read_json(tmp.file("model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 64u + 1 + 12 + 32);
  EXPECT_EQ(index["weight_map"].size(), 4u);
  EXPECT_EQ(index["weight_map"]["b.weight"], "model-00002-of-00002.safetensors");

  const auto ck = Checkpoint::open(tmp.path());
  EXPECT_EQ(ck->dir(), tmp.path());
  EXPECT_EQ(ck->size(), 4u);
  const TensorInfo& a = ck->get("a.weight");
  EXPECT_EQ(a.dtype, DType::BF16);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(std::vector<uint8_t>(a.data, a.data + a.nbytes), bytes_of(64, 1));
  const TensorInfo& t = ck->get("b.tid2eid");
  EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.nbytes), bytes_of(32, 4));
  EXPECT_TRUE(t.file.ends_with("model-00002-of-00002.safetensors"));
  std::vector<std::string> names;
  for (const TensorInfo* x : ck->all()) names.push_back(x->name);
  EXPECT_EQ(names, (std::vector<std::string>{"a.scale", "a.weight", "b.tid2eid", "b.weight"}));
}

TEST(Checkpoint, SingleFileDirectoryAndPath) {
  TempDir tmp;
  SafetensorsWriter w;
  w.add("x", DType::U8, {2}, {9, 8});
  w.write(tmp.file("model.safetensors"));
  const auto ck = Checkpoint::open(tmp.path());
  EXPECT_EQ(ck->size(), 1u);
  EXPECT_EQ(ck->get("x").data[1], 8);
  const auto direct = Checkpoint::open(tmp.file("model.safetensors"));
  EXPECT_EQ(direct->size(), 1u);
}

TEST(Checkpoint, IndexWinsOverTensorsOutsideIt) {
  TempDir tmp;
  auto wm = write_sharded(tmp.path());
  wm.erase("b.weight");  // still in shard 2, but the index does not list it
  write_index(tmp.file("model.safetensors.index.json"), 0, wm);
  const auto ck = Checkpoint::open(tmp.path());
  EXPECT_EQ(ck->size(), 3u);
  EXPECT_EQ(ck->find("b.weight"), nullptr);
}

TEST(CheckpointErrors, UnreadableDirectory) {
  TempDir tmp;
  const std::string missing = tmp.file("nope");
  expect_error([&] { Checkpoint::open(missing); }, {missing});
  expect_error([&] { Checkpoint::open(tmp.path()); }, {tmp.path(), "model.safetensors"});  // empty dir
}

TEST(CheckpointErrors, MalformedIndex) {
  TempDir tmp;
  write_sharded(tmp.path());
  const std::string index = tmp.file("model.safetensors.index.json");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"weight_map\": {", "malformed JSON"},
      {"[]", "not a JSON object"},
      {"{\"metadata\": {}}", "weight_map"},
      {"{\"weight_map\": []}", "weight_map"},
      {"{\"weight_map\": {\"a.weight\": 3}}", "'a.weight'"},
      {"{\"weight_map\": {\"a.weight\": \"../model-00001-of-00002.safetensors\"}}", "invalid shard"},
      {"{\"weight_map\": {\"a.weight\": \"\"}}", "invalid shard"},
  };
  for (const auto& [text, part] : cases) {
    test::write_bytes(index, text);
    expect_error([&] { Checkpoint::open(tmp.path()); }, {index, part});
  }
}

TEST(CheckpointErrors, IndexNamesMissingShard) {
  TempDir tmp;
  auto wm = write_sharded(tmp.path());
  wm["c.weight"] = "model-00003-of-00003.safetensors";
  const std::string index = tmp.file("model.safetensors.index.json");
  write_index(index, 0, wm);
  expect_error([&] { Checkpoint::open(tmp.path()); }, {index, "model-00003-of-00003.safetensors", "missing"});
}

TEST(CheckpointErrors, IndexNamesTensorShardLacks) {
  TempDir tmp;
  auto wm = write_sharded(tmp.path());
  wm["b.weight"] = "model-00001-of-00002.safetensors";  // it lives in shard 2
  const std::string index = tmp.file("model.safetensors.index.json");
  write_index(index, 0, wm);
  expect_error([&] { Checkpoint::open(tmp.path()); }, {index, "'b.weight'", "model-00001-of-00002.safetensors"});
}

TEST(CheckpointErrors, CorruptShardNamesShard) {
  TempDir tmp;
  write_sharded(tmp.path());
  const std::string shard = tmp.file("model-00002-of-00002.safetensors");
  test::write_bytes(shard, "junk");
  expect_error([&] { Checkpoint::open(tmp.path()); }, {shard, "too short"});
}

TEST(CheckpointErrors, ShardIsDirectory) {
  TempDir tmp;
  auto wm = write_sharded(tmp.path());
  std::filesystem::create_directory(tmp.file("sub"));
  wm["a.weight"] = "sub";
  write_index(tmp.file("model.safetensors.index.json"), 0, wm);
  expect_error([&] { Checkpoint::open(tmp.path()); }, {"'sub'"});
}

}  // namespace
}  // namespace dsv4::io
