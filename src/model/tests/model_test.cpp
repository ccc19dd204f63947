// Model-level tests beyond the golden data: generated checkpoints with other layer
// schedules (decode must equal prefill everywhere), generator <-> loader round trip,
// deterministic generation, every kind of broken checkpoint, and numerical invariants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <unistd.h>

#include "backend/ops.h"
#include "core/error.h"
#include "core/tests/scratch_dir.h"
#include "io/safetensors.h"
#include "model/hyper_connection.h"
#include "model/inventory.h"
#include "model/model.h"
#include "model/rope.h"
#include "model/tiny_model.h"

namespace dsv4::model {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::path(test::process_scratch().path()) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

// Rewrites one shard through the writer, letting `edit` change or drop tensors.
void rewrite_shard(const std::string& path,
                   const std::function<bool(const std::string&, DType&, std::vector<int64_t>&, std::vector<uint8_t>&)>& edit) {
  io::SafetensorsWriter w;
  {
    auto f = io::SafetensorsFile::open(path);
    for (const auto& t : f->tensors()) {
      DType dt = t.dtype;
      std::vector<int64_t> shape = t.shape;
      std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
      if (edit(t.name, dt, shape, bytes)) w.add(t.name, dt, shape, std::move(bytes));
    }
  }
  w.write(path);
}

std::string shard_of(const std::string& dir, const std::string& tensor) {
  auto ck = io::Checkpoint::open(dir);
  return ck->get(tensor).file;
}

// Expects loading dir to throw a dsv4::Error whose message contains every part.
void expect_load_error(const std::string& dir, const std::vector<std::string>& parts) {
  try {
    Model::load(dir, "ref");
    FAIL() << "loading " << dir << " should have failed";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line error: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = d(rng);
  return t;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

// --- generated models with every preset schedule -------------------------------------

class PresetTest : public testing::TestWithParam<std::string> {};

TEST_P(PresetTest, RoundTripAndDecodeEqualsPrefill) {
  const std::string dir = temp_dir("preset_" + GetParam());
  const io::Config cfg = tiny_config(GetParam());
  TinyModelOptions opt;
  opt.seed = 7;
  opt.n_shards = 3;
  const int64_t n_tensors = write_tiny_model(dir, cfg, opt);

  // Loader sees exactly the inventory (+ one scale per quantised linear).
  auto model = Model::load(dir, "cpu");
  EXPECT_EQ(int64_t(model->weights().checkpoint->size()), n_tensors);
  EXPECT_EQ(model->config().compress_ratios, cfg.compress_ratios);
  EXPECT_EQ(model->config().n_embd, cfg.n_embd);

  // Long enough to wrap the window ring and complete compressed blocks of every ratio.
  int64_t max_ratio = 4;
  for (int64_t r : cfg.compress_ratios) max_ratio = std::max(max_ratio, r);
  const int64_t n_prompt = std::max(cfg.sliding_window, max_ratio) + 13, n_decode = 9;
  const std::vector<int32_t> tokens = random_tokens(n_prompt + n_decode, cfg.vocab_size, 3);
  const int64_t V = cfg.vocab_size;

  kv::SequenceState full = model->new_state();
  const std::vector<float> all = model->forward(full, tokens, LogitRows::kAll);
  for (float v : all) ASSERT_TRUE(std::isfinite(v));

  kv::SequenceState inc = model->new_state();
  std::vector<float> got = model->forward(inc, std::span(tokens.data(), size_t(n_prompt)), LogitRows::kLast);
  for (int64_t i = 0; i < n_decode; ++i) {
    const std::vector<float> row = model->forward(inc, std::span(tokens.data() + n_prompt + i, 1), LogitRows::kLast);
    got.insert(got.end(), row.begin(), row.end());
  }
  EXPECT_LE(max_abs_diff(got.data(), all.data() + (n_prompt - 1) * V, got.size()), 1e-4);
  EXPECT_EQ(inc.n_past, n_prompt + n_decode);
}

// is_routed_expert_tensor (kSplit's streamed tensors) marks exactly the tensors bound as
// routed experts, with their scales, in the main blocks and the MTP blocks; a shared
// expert or a router is read by every token and must be copied.
TEST_P(PresetTest, RoutedExpertTensorsAreExactlyTheBoundExperts) {
  const std::string dir = temp_dir("experts_" + GetParam());
  const io::Config cfg = tiny_config(GetParam());
  TinyModelOptions opt;
  opt.n_shards = 2;
  write_tiny_model(dir, cfg, opt);
  const auto w = load_weights(dir, io::Residency::kSplit);
  std::set<std::string> bound;  // ".weight" names of the routed experts' linears
  auto add_block = [&](const BlockWeights& b) {
    for (const ExpertWeights& e : b.ffn.experts)
      for (const WeightView* v : {&e.w1, &e.w2, &e.w3}) bound.insert(v->name);
  };
  for (const BlockWeights& b : w->layers) add_block(b);
  for (const MtpWeights& m : w->mtp) add_block(m.block);
  ASSERT_FALSE(bound.empty());
  int64_t marked = 0;
  for (const io::TensorInfo* t : w->checkpoint->all()) {
    std::string base = t->name;
    if (base.size() > 6 && base.compare(base.size() - 6, 6, ".scale") == 0) base.replace(base.size() - 6, 6, ".weight");
    EXPECT_EQ(is_routed_expert_tensor(t->name), bound.count(base) == 1) << t->name;
    marked += is_routed_expert_tensor(t->name);
  }
  EXPECT_GE(marked, int64_t(bound.size()));
}

// Every FP8 linear the loader binds carries its normal-code flags (the AVX2 kernels then
// skip their own check), equal to a fresh scan of its codes; a routed expert left in the
// file mapping carries none, so binding does not read every expert.
TEST_P(PresetTest, Fp8WeightsCarryNormalCodeFlags) {
  const std::string dir = temp_dir("fp8flags_" + GetParam());
  write_tiny_model(dir, tiny_config(GetParam()), {5, 1});
  for (io::Residency res : {io::Residency::kCopy, io::Residency::kSplit}) {
    const auto w = load_weights(dir, res);
    std::vector<const WeightView*> views;
    auto add_block = [&](const BlockWeights& b) {
      const AttentionWeights& a = b.attn;
      for (const WeightView* v : {&a.wq_a, &a.wq_b, &a.wkv, &a.wo_a, &a.wo_b, &a.index_wq_b, &a.index_weights_proj,
                                  &a.compressor.wkv, &a.compressor.wgate, &b.ffn.gate})
        views.push_back(v);
      for (const ExpertWeights& e : b.ffn.experts)
        for (const WeightView* v : {&e.w1, &e.w2, &e.w3}) views.push_back(v);
      if (b.ffn.has_shared)
        for (const WeightView* v : {&b.ffn.shared.w1, &b.ffn.shared.w2, &b.ffn.shared.w3}) views.push_back(v);
    };
    for (const BlockWeights& b : w->layers) add_block(b);
    for (const MtpWeights& m : w->mtp) {
      add_block(m.block);
      views.push_back(&m.e_proj);
      views.push_back(&m.h_proj);
    }
    int flagged = 0;
    for (const WeightView* v : views) {
      if (v->format != WeightFormat::FP8_BLOCK128) {
        EXPECT_EQ(v->fp8_normal, nullptr) << v->name;
        continue;
      }
      if (!fp8_flags_at_load(v->name, w->checkpoint->residency())) {  // routed FP8 experts (none in these presets)
        EXPECT_EQ(v->fp8_normal, nullptr) << v->name;
        continue;
      }
      ASSERT_NE(v->fp8_normal, nullptr) << v->name << " " << io::residency_name(res);
      const std::vector<uint64_t> want = fp8_normal_blocks(*v);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), v->fp8_normal)) << v->name;
      ++flagged;
    }
    EXPECT_GT(flagged, 0) << io::residency_name(res);
  }
}

// The rule itself, for the FP8 routed experts a checkpoint may hold (the generated tiny
// models keep their experts in FP4): mapped ones are left to the kernels' own check.
TEST(Fp8FlagsAtLoad, AllButMappedRoutedExperts) {
  const std::string routed = "layers.3.ffn.experts.17.w1.weight", shared = "layers.3.ffn.shared_experts.w1.weight",
                    attn = "layers.0.attn.wq_b.weight";
  for (io::Residency r : {io::Residency::kCopy, io::Residency::kSplit, io::Residency::kMap}) {
    EXPECT_TRUE(fp8_flags_at_load(shared, r)) << io::residency_name(r);
    EXPECT_TRUE(fp8_flags_at_load(attn, r)) << io::residency_name(r);
    EXPECT_EQ(fp8_flags_at_load(routed, r), r == io::Residency::kCopy) << io::residency_name(r);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, PresetTest, testing::ValuesIn(tiny_presets()),
                         [](const auto& info) { std::string n = info.param; for (auto& c : n) if (c == '-') c = '_'; return n; });

class BatchTest : public testing::TestWithParam<std::string> {};

// Sequences batched together give exactly the logits they give alone: a request's output
// must not depend on what else the server is running.
TEST_P(BatchTest, BatchedEqualsSeparate) {
  const std::string dir = temp_dir("batch_" + GetParam());
  write_tiny_model(dir, tiny_config("tiny"), {9, 2});
  auto model = Model::load(dir, GetParam());
  const int64_t V = model->config().vocab_size;
  // Three sequences at different points: fresh prompt, mid-stream decode, long prefill chunk.
  const std::vector<int32_t> a = random_tokens(23, V, 1), b = random_tokens(40, V, 2), c = random_tokens(70, V, 3);
  kv::SequenceState sa = model->new_state(), sb = model->new_state(), sc = model->new_state();
  kv::SequenceState ra = model->new_state(), rb = model->new_state(), rc = model->new_state();
  model->forward(sb, std::span(b.data(), 37), LogitRows::kNone);
  model->forward(rb, std::span(b.data(), 37), LogitRows::kNone);
  model->forward(sc, std::span(c.data(), 20), LogitRows::kNone);
  model->forward(rc, std::span(c.data(), 20), LogitRows::kNone);

  const std::vector<SeqInput> batch = {{&sa, std::span(a), LogitRows::kAll},
                                       {&sb, std::span(b.data() + 37, 1), LogitRows::kLast},
                                       {&sc, std::span(c.data() + 20, 50), LogitRows::kLast}};
  const auto batched = model->forward_batch(batch);
  const std::vector<float> alone_a = model->forward(ra, a, LogitRows::kAll);
  const std::vector<float> alone_b = model->forward(rb, std::span(b.data() + 37, 1), LogitRows::kLast);
  const std::vector<float> alone_c = model->forward(rc, std::span(c.data() + 20, 50), LogitRows::kLast);
  EXPECT_EQ(batched[0], alone_a);
  EXPECT_EQ(batched[1], alone_b);
  EXPECT_EQ(batched[2], alone_c);
  EXPECT_EQ(sa.n_past, 23);
  EXPECT_EQ(sb.n_past, 38);
  EXPECT_EQ(sc.n_past, 70);
  EXPECT_EQ(sc.layers[1].comp_kv, rc.layers[1].comp_kv);

  kv::SequenceState* same = &sa;
  const std::vector<SeqInput> dup = {{same, std::span(a.data(), 1)}, {same, std::span(a.data(), 1)}};
  EXPECT_THROW(model->forward_batch(dup), Error);
}

// Both backends are batch-invariant: a row's result never depends on the other rows.
INSTANTIATE_TEST_SUITE_P(Backends, BatchTest, testing::Values("ref", "cpu"));

TEST(TinyModel, SameSeedSameBytesOtherSeedOtherBytes) {
  const std::string a = temp_dir("seed_a"), b = temp_dir("seed_b"), c = temp_dir("seed_c");
  const io::Config cfg = tiny_config("tiny");
  write_tiny_model(a, cfg, {5, 2});
  write_tiny_model(b, cfg, {5, 2});
  write_tiny_model(c, cfg, {6, 2});
  const std::string shard = "/model-00001-of-00002.safetensors";
  EXPECT_EQ(read_file(a + shard), read_file(b + shard));
  EXPECT_NE(read_file(a + shard), read_file(c + shard));
}

TEST(TinyModel, UsesEveryFp4CodeAndVariedScales) {
  const std::string dir = temp_dir("codes");
  write_tiny_model(dir, tiny_config("tiny"), {1, 1});
  auto ck = io::Checkpoint::open(dir);
  const io::TensorInfo& w = ck->get("layers.0.ffn.experts.0.w1.weight");
  const io::TensorInfo& s = ck->get("layers.0.ffn.experts.0.w1.scale");
  std::set<int> nibbles, scales;
  for (uint64_t i = 0; i < w.nbytes; ++i) nibbles.insert(w.data[i] & 0xF), nibbles.insert(w.data[i] >> 4);
  for (uint64_t i = 0; i < s.nbytes; ++i) scales.insert(s.data[i]);
  EXPECT_EQ(nibbles.size(), 16u);
  EXPECT_GE(scales.size(), 3u);
}

TEST(TinyModel, UnknownPresetIsAnError) { EXPECT_THROW(tiny_config("huge"), Error); }

// Rotating all heads of a position at once gives the per-vector rotation's bits.
// hc_post in place (out = residual, as the block runs it) equals hc_post into another
// buffer and the formula summed in double in the stated order, bit for bit, for the V4
// stream count (4, the vectorised path) and others (the generic path), on 1 and 2 threads.
TEST(HyperConnection, PostInPlaceEqualsFormula) {
  for (int64_t hc : {4, 3, 1, 6}) {
    for (int threads : {1, 2}) {
      io::Config c = tiny_config("tiny");
      c.hc_mult = hc;
      const int64_t d = c.n_embd, n_tok = 5;
      std::mt19937 rng(uint32_t(hc * 10 + threads));
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> f(size_t(n_tok * d)), res(size_t(n_tok * hc * d));
      for (auto& v : f) v = nd(rng);
      for (auto& v : res) v = nd(rng);
      HcMix mix;
      mix.post.resize(size_t(n_tok * hc));
      mix.comb.resize(size_t(n_tok * hc * hc));
      for (auto& v : mix.post) v = nd(rng);
      for (auto& v : mix.comb) v = nd(rng);
      auto ops = backend::make_ops("cpu", backend::Numerics::kExact, threads);
      std::vector<float> out(res.size()), inplace(res);
      hc_post(*ops, c, f.data(), res.data(), mix, n_tok, out.data());
      hc_post(*ops, c, f.data(), inplace.data(), mix, n_tok, inplace.data());
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t k = 0; k < hc; ++k)
          for (int64_t i = 0; i < d; ++i) {
            double acc = double(mix.post[size_t(t * hc + k)]) * double(f[size_t(t * d + i)]);
            for (int64_t j = 0; j < hc; ++j)
              acc += double(mix.comb[size_t(t * hc * hc + j * hc + k)]) * double(res[size_t((t * hc + j) * d + i)]);
            const size_t at = size_t((t * hc + k) * d + i);
            ASSERT_EQ(out[at], float(acc)) << "hc " << hc << " t " << t << " k " << k << " i " << i;
            ASSERT_EQ(inplace[at], out[at]) << "hc " << hc << " in place, t " << t << " k " << k << " i " << i;
          }
    }
  }
}

TEST(Rope, ApplyAllEqualsApplyPerVector) {
  const io::Config cfg = tiny_config("tiny");
  for (bool yarn : {false, true}) {
    const Rope rope(cfg, 10000.0, yarn);
    const int64_t n_vec = 5, dim = cfg.head_dim;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> a(size_t(n_vec * dim));
    for (auto& v : a) v = nd(rng);
    for (bool inverse : {false, true})
      for (int64_t pos : {int64_t(0), int64_t(3), int64_t(70001)}) {
        std::vector<float> one = a, all = a;
        for (int64_t v = 0; v < n_vec; ++v) rope.apply(one.data() + v * dim, dim, pos, inverse);
        rope.apply_all(all.data(), n_vec, dim, pos, inverse);
        ASSERT_EQ(0, std::memcmp(one.data(), all.data(), one.size() * sizeof(float))) << pos << " " << inverse;
        if (pos != 0) {
          EXPECT_NE(0, std::memcmp(one.data(), a.data(), a.size() * sizeof(float)));  // it rotated
        }
      }
  }
}

// --- broken checkpoints: one clear error naming the file and tensor ------------------

class BrokenCheckpoint : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir(testing::UnitTest::GetInstance()->current_test_info()->name());
    write_tiny_model(dir_, tiny_config("tiny"), {3, 2});
  }
  std::string dir_;
};

TEST_F(BrokenCheckpoint, WrongShapeNamesTensorAndFile) {
  const std::string shard = shard_of(dir_, "layers.1.attn.kv_norm.weight");
  rewrite_shard(shard, [](const std::string& n, DType&, std::vector<int64_t>& shape, std::vector<uint8_t>& bytes) {
    if (n == "layers.1.attn.kv_norm.weight") { shape = {shape[0] - 1}; bytes.resize(bytes.size() - 2); }
    return true;
  });
  expect_load_error(dir_, {"layers.1.attn.kv_norm.weight", fs::path(shard).filename().string(), "shape"});
}

TEST_F(BrokenCheckpoint, MissingTensorNamesTensor) {
  const std::string shard = shard_of(dir_, "layers.2.attn.compressor.ape");
  rewrite_shard(shard, [](const std::string& n, DType&, std::vector<int64_t>&, std::vector<uint8_t>&) {
    return n != "layers.2.attn.compressor.ape";
  });
  // The index still names it: the error says which shard lacks it.
  expect_load_error(dir_, {"layers.2.attn.compressor.ape"});
}

TEST_F(BrokenCheckpoint, WrongDtypeNamesTensor) {
  const std::string shard = shard_of(dir_, "embed.weight");
  rewrite_shard(shard, [](const std::string& n, DType& dt, std::vector<int64_t>&, std::vector<uint8_t>&) {
    if (n == "embed.weight") dt = DType::F16;
    return true;
  });
  expect_load_error(dir_, {"embed.weight", "dtype F16"});
}

TEST_F(BrokenCheckpoint, ScaleWithWrongShape) {
  const std::string shard = shard_of(dir_, "layers.0.ffn.experts.3.w2.scale");
  rewrite_shard(shard, [](const std::string& n, DType&, std::vector<int64_t>& shape, std::vector<uint8_t>& bytes) {
    if (n == "layers.0.ffn.experts.3.w2.scale") { shape = {shape[0] / 2, shape[1]}; bytes.resize(bytes.size() / 2); }
    return true;
  });
  expect_load_error(dir_, {"layers.0.ffn.experts.3.w2.scale", "shape"});
}

TEST_F(BrokenCheckpoint, HashTableWithExpertOutOfRange) {
  const std::string shard = shard_of(dir_, "layers.0.ffn.gate.tid2eid");
  rewrite_shard(shard, [](const std::string& n, DType&, std::vector<int64_t>&, std::vector<uint8_t>& bytes) {
    if (n == "layers.0.ffn.gate.tid2eid") { const int64_t bad = 99; std::memcpy(bytes.data() + 8 * 5, &bad, 8); }
    return true;
  });
  expect_load_error(dir_, {"layers.0.ffn.gate.tid2eid", "99"});
}

TEST_F(BrokenCheckpoint, ConfigInconsistentWithTensors) {
  std::string cfg = read_file(dir_ + "/config.json");
  const std::string from = "\"hidden_size\": 256", to = "\"hidden_size\": 384";
  ASSERT_NE(cfg.find(from), std::string::npos) << cfg;
  cfg.replace(cfg.find(from), from.size(), to);
  write_file(dir_ + "/config.json", cfg);
  expect_load_error(dir_, {"shape", "expected"});
}

TEST_F(BrokenCheckpoint, MoreExpertsInConfigThanOnDisk) {
  std::string cfg = read_file(dir_ + "/config.json");
  const std::string from = "\"n_routed_experts\": 8", to = "\"n_routed_experts\": 9";
  ASSERT_NE(cfg.find(from), std::string::npos);
  cfg.replace(cfg.find(from), from.size(), to);
  write_file(dir_ + "/config.json", cfg);
  // The router is checked first: its [n_expert, hidden] shape no longer matches.
  expect_load_error(dir_, {"layers.0.ffn.gate.weight", "[9, 256]"});
}

TEST_F(BrokenCheckpoint, CompressRatiosOfWrongLength) {
  std::string cfg = read_file(dir_ + "/config.json");
  const std::string key = "\"compress_ratios\"";
  const size_t at = cfg.find(key), open = cfg.find('[', at), close = cfg.find(']', open);
  cfg.replace(open, close - open + 1, "[0, 4, 16]");
  write_file(dir_ + "/config.json", cfg);
  expect_load_error(dir_, {"compress_ratios"});
}

TEST_F(BrokenCheckpoint, TruncatedShard) {
  const std::string shard = dir_ + "/model-00002-of-00002.safetensors";
  const std::string bytes = read_file(shard);
  write_file(shard, bytes.substr(0, bytes.size() / 2));
  expect_load_error(dir_, {"model-00002-of-00002.safetensors"});
}

TEST_F(BrokenCheckpoint, MissingShard) {
  fs::remove(dir_ + "/model-00002-of-00002.safetensors");
  expect_load_error(dir_, {"model-00002-of-00002.safetensors"});
}

TEST(LoadErrors, UnreadableDirectory) {
  expect_load_error("/nonexistent/dsv4/model", {"/nonexistent/dsv4/model"});
}

TEST(ForwardErrors, TokenOutsideVocabulary) {
  const std::string dir = temp_dir("vocab");
  write_tiny_model(dir, tiny_config("tiny"), {1, 2});
  auto m = Model::load(dir, "ref");
  kv::SequenceState st = m->new_state();
  const std::vector<int32_t> bad = {1, 2, int32_t(m->config().vocab_size)};
  EXPECT_THROW(m->forward(st, bad, LogitRows::kLast), Error);
}

// --- numerical invariants -------------------------------------------------------------

// Largest |row sum - 1| of a [4, 4] matrix.
double row_error(const std::vector<double>& m) {
  double worst = 0;
  for (int j = 0; j < 4; ++j) worst = std::max(worst, std::fabs(m[size_t(4 * j)] + m[size_t(4 * j + 1)] + m[size_t(4 * j + 2)] + m[size_t(4 * j + 3)] - 1.0));
  return worst;
}

TEST(Sinkhorn, ColumnsNormalisedRowsConvergeEntriesPositive) {
  std::mt19937_64 rng(11);
  for (double spread : {0.5, 1.0, 3.0}) {
    std::normal_distribution<double> d(0.0, spread);
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<double> logits(16);
      for (auto& v : logits) v = d(rng);
      std::vector<double> m20 = logits, m60 = logits;
      sinkhorn(m20.data(), 4, 20, 1e-6);
      sinkhorn(m60.data(), 4, 60, 1e-6);
      for (int64_t k = 0; k < 4; ++k) {
        double col = 0;
        for (int64_t j = 0; j < 4; ++j) col += m20[size_t(j * 4 + k)];
        EXPECT_NEAR(col, 1.0, 1e-5);  // the last step normalises columns (sum/(sum+eps))
      }
      for (double v : m20) EXPECT_GT(v, 0.0);
      // Rows are only approximately normalised after a fixed 20 iterations (the reference
      // does not iterate to convergence); more iterations bring them closer.
      EXPECT_LE(row_error(m60), row_error(m20) + 1e-12);
      if (spread <= 1.0) {
        EXPECT_LE(row_error(m20), 1e-3) << "spread " << spread;
      }
    }
  }
}

TEST(Sinkhorn, UniformLogitsGiveUniformMatrix) {
  std::vector<double> m(16, 0.7);
  sinkhorn(m.data(), 4, 20, 1e-6);
  for (double v : m) EXPECT_NEAR(v, 0.25, 1e-5);
}

TEST(TopK, TiesGoToLowerIndexAndResultIsSorted) {
  const std::vector<float> s = {1.0f, 3.0f, 3.0f, 0.5f, 3.0f, 2.0f};
  EXPECT_EQ(top_k_entries(s.data(), 6, 2), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(top_k_entries(s.data(), 6, 4), (std::vector<int32_t>{1, 2, 4, 5}));
  EXPECT_EQ(top_k_entries(s.data(), 6, 99).size(), 6u);
  EXPECT_TRUE(top_k_entries(s.data(), 0, 3).empty());
}

TEST(Routing, ScoreRoutingTiesAndNormalisation) {
  io::Config c = tiny_config("tiny");
  c.n_expert = 5;
  c.n_expert_used = 2;
  c.routed_scaling_factor = 2.0;
  MoeWeights w;
  w.hash_routed = false;
  w.gate_bias = {0.0f, 0.5f, 0.0f, 0.5f, 0.0f};
  const std::vector<float> scores = {1.0f, 0.5f, 1.0f, 0.5f, 0.2f};  // biased: 1, 1, 1, 1, 0.2
  const Route r = route_token(c, w, scores.data(), 0);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{0, 1}));  // four-way tie -> lowest ids
  EXPECT_NEAR(r.weights[0], 1.0 / 1.5 * 2.0, 1e-6);     // unbiased scores, normalised, scaled
  EXPECT_NEAR(r.weights[1], 0.5 / 1.5 * 2.0, 1e-6);
}

TEST(Inventory, NamesAreUniqueAndScalesDerive) {
  const auto specs = expected_tensors(tiny_config("tiny-pro"));
  std::set<std::string> names;
  for (const auto& s : specs) EXPECT_TRUE(names.insert(s.name).second) << s.name;
  EXPECT_EQ(scale_name("layers.0.attn.wq_a.weight"), "layers.0.attn.wq_a.scale");
  EXPECT_TRUE(names.count("layers.0.attn.compressor.ape"));   // Pro schedule: HCA from layer 0
  EXPECT_FALSE(names.count("layers.0.attn.indexer.wq_b.weight"));
  EXPECT_TRUE(names.count("layers.2.attn.indexer.wq_b.weight"));
  EXPECT_TRUE(names.count("layers.2.ffn.gate.tid2eid"));      // 3 hash layers
  EXPECT_TRUE(names.count("layers.3.ffn.gate.bias"));
  EXPECT_TRUE(names.count("mtp.0.e_proj.weight"));
}

}  // namespace
}  // namespace dsv4::model
