// Golden tests: the engine against an independent float64 reference of the official
// DeepSeek-V4 code, on every case under tests/data/golden/ (tiny random models in the
// exact on-disk format). Tolerances are those recommended in tests/data/golden/README.md
// for a float32 engine on exactly dequantised weights; never loosen them to pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "io/npy.h"
#include "model/model.h"

namespace dsv4::model {
namespace {

namespace fs = std::filesystem;

constexpr double kLogitTol = 1e-3;         // max abs error of any logit
constexpr double kHiddenRelRms = 1e-4;     // hidden streams: relative RMS error
constexpr double kHiddenRelMax = 1e-4;     //   and max abs error / max abs(reference)
constexpr double kCompressedRelRms = 1e-4; // compressed KV and indexer keys
constexpr double kSelfConsistency = 1e-4;  // engine decode vs engine prefill of the longer sequence

std::vector<std::string> golden_cases() {
  std::vector<std::string> cases;
  const fs::path root = fs::path(DSV4_TEST_DATA_DIR) / "golden";
  if (fs::exists(root))
    for (const auto& e : fs::directory_iterator(root))
      if (fs::exists(e.path() / "manifest.json")) cases.push_back(e.path().filename().string());
  std::sort(cases.begin(), cases.end());
  return cases;
}

struct ErrorStats {
  double max_abs = 0, rms = 0, ref_rms = 0, ref_max = 0;
};

ErrorStats compare(const float* got, const float* want, int64_t n) {
  ErrorStats s;
  double se = 0, sr = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = double(got[i]) - double(want[i]);
    s.max_abs = std::max(s.max_abs, std::fabs(e));
    s.ref_max = std::max(s.ref_max, std::fabs(double(want[i])));
    se += e * e;
    sr += double(want[i]) * double(want[i]);
  }
  s.rms = std::sqrt(se / double(n));
  s.ref_rms = std::sqrt(sr / double(n));
  return s;
}

class GoldenTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    dir_ = (fs::path(DSV4_TEST_DATA_DIR) / "golden" / std::get<0>(GetParam())).string();
    model_ = Model::load(dir_, std::get<1>(GetParam()));
    prompt_ = ids("prompt_ids");
    if (exists("hidden_positions")) {
      for (int64_t p : io::read_npy(path("hidden_positions")).to_i64()) positions_.push_back(p);
    } else {
      for (int64_t p = 0; p < int64_t(prompt_.size()); ++p) positions_.push_back(p);
    }
  }

  std::string path(const std::string& name) const { return dir_ + "/expected/" + name + ".npy"; }
  bool exists(const std::string& name) const { return fs::exists(path(name)); }
  std::vector<float> floats(const std::string& name) const { return io::read_npy(path(name)).to_f32(); }
  std::vector<int32_t> ids(const std::string& name) const {
    std::vector<int32_t> out;
    for (int64_t v : io::read_npy(path(name)).to_i64()) out.push_back(int32_t(v));
    return out;
  }
  const io::Config& cfg() const { return model_->config(); }
  int64_t vocab() const { return cfg().vocab_size; }

  // Compares the rows of `got` ([n_rows_all, width]) at positions_ with `want` ([positions, width]).
  void expect_rows_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                         int64_t width, double tol) {
    ASSERT_EQ(int64_t(want.size()), int64_t(positions_.size()) * width) << what;
    double worst = 0;
    for (size_t r = 0; r < positions_.size(); ++r) {
      const ErrorStats s = compare(got.data() + positions_[r] * width, want.data() + r * width, width);
      worst = std::max(worst, s.max_abs);
    }
    EXPECT_LE(worst, tol) << what << ": max abs error " << worst;
  }

  void expect_hidden_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
    const int64_t width = cfg().hc_mult * cfg().n_embd;
    std::vector<float> picked;
    for (int64_t p : positions_) picked.insert(picked.end(), got.begin() + p * width, got.begin() + (p + 1) * width);
    ASSERT_EQ(picked.size(), want.size()) << what;
    const ErrorStats s = compare(picked.data(), want.data(), int64_t(want.size()));
    EXPECT_LE(s.rms / s.ref_rms, kHiddenRelRms) << what << ": relative RMS error " << s.rms / s.ref_rms;
    EXPECT_LE(s.max_abs, kHiddenRelMax * s.ref_max) << what << ": max abs error " << s.max_abs;
  }

  std::string dir_;
  std::unique_ptr<Model> model_;
  std::vector<int32_t> prompt_;
  std::vector<int64_t> positions_;
};

TEST_P(GoldenTest, RopeFrequencies) {
  const Rope sliding(cfg(), cfg().rope_theta, false), compressed(cfg(), cfg().compress_rope_theta, true);
  for (auto [name, rope] : {std::pair{"rope_inv_freq_sliding", &sliding}, std::pair{"rope_inv_freq_compressed", &compressed}}) {
    const std::vector<float> want = floats(name);
    ASSERT_EQ(want.size(), rope->inv_freq().size()) << name;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(rope->inv_freq()[i], want[i], 1e-6 * std::fabs(want[i])) << name << "[" << i << "]";
  }
}

TEST_P(GoldenTest, PrefillLogitsHiddenRoutesAndIndexer) {
  kv::SequenceState st = model_->new_state();
  ForwardTrace trace;
  std::vector<float> final_streams;
  const std::vector<float> logits = model_->forward(st, prompt_, LogitRows::kAll, &trace, &final_streams);
  expect_rows_close("prefill_logits", logits, floats("prefill_logits"), vocab(), kLogitTol);

  const int64_t S = int64_t(prompt_.size());
  for (int64_t l = 0; l < cfg().n_layer; ++l) {
    const std::string L = std::to_string(l);
    if (exists("hidden_layer" + L)) expect_hidden_close("hidden_layer" + L, trace.hidden[size_t(l)], floats("hidden_layer" + L));
    if (exists("routes_layer" + L)) {
      const std::vector<int32_t> routes = ids("routes_layer" + L);
      const std::vector<float> weights = floats("route_weights_layer" + L);
      const int64_t k = cfg().n_expert_used;
      int64_t mismatches = 0;
      double worst_w = 0;
      for (int64_t t = 0; t < S; ++t) {
        std::map<int32_t, float> got;
        const Route& r = trace.routes[size_t(l)][size_t(t)];
        for (size_t i = 0; i < r.experts.size(); ++i) got[r.experts[i]] = r.weights[i];
        for (int64_t i = 0; i < k; ++i) {
          auto it = got.find(routes[size_t(t * k + i)]);
          if (it == got.end()) { ++mismatches; continue; }
          worst_w = std::max(worst_w, std::fabs(double(it->second) - double(weights[size_t(t * k + i)])));
        }
      }
      EXPECT_EQ(mismatches, 0) << "routes_layer" << l;
      EXPECT_LE(worst_w, 1e-5) << "route_weights_layer" << l;
    }
    if (exists("indexer_topk_prefill_layer" + L)) {
      const io::NpyArray want = io::read_npy(path("indexer_topk_prefill_layer" + L));
      const std::vector<int64_t> w = want.to_i64();
      const int64_t width = want.shape[1];
      int64_t mismatched_rows = 0;
      for (int64_t t = 0; t < S; ++t) {
        std::set<int64_t> expect;
        for (int64_t i = 0; i < width; ++i) if (w[size_t(t * width + i)] >= 0) expect.insert(w[size_t(t * width + i)]);
        const auto& chosen = trace.attention[size_t(l)].index_topk[size_t(t)];
        if (std::set<int64_t>(chosen.begin(), chosen.end()) != expect) ++mismatched_rows;
      }
      EXPECT_EQ(mismatched_rows, 0) << "indexer_topk_prefill_layer" << l;
    }
    if (exists("compressed_kv_layer" + L)) {
      const std::vector<float> want = floats("compressed_kv_layer" + L);
      const auto& got = st.layers[size_t(l)].comp_kv;
      ASSERT_EQ(got.size(), want.size()) << "compressed_kv_layer" << l;
      const ErrorStats s = compare(got.data(), want.data(), int64_t(want.size()));
      EXPECT_LE(s.rms / s.ref_rms, kCompressedRelRms) << "compressed_kv_layer" << l;
    }
    if (exists("indexer_compressed_k_layer" + L)) {
      const std::vector<float> want = floats("indexer_compressed_k_layer" + L);
      const auto& got = st.layers[size_t(l)].index_keys;
      ASSERT_EQ(got.size(), want.size()) << "indexer_compressed_k_layer" << l;
      const ErrorStats s = compare(got.data(), want.data(), int64_t(want.size()));
      EXPECT_LE(s.rms / s.ref_rms, kCompressedRelRms) << "indexer_compressed_k_layer" << l;
    }
  }

  // MTP: fed the main model's final streams and the token that follows each position.
  if (exists("mtp_logits")) {
    const std::vector<int32_t> mtp_in = ids("mtp_input_ids");
    ForwardTrace mtp_trace;
    const std::vector<float> mtp_logits = model_->forward_mtp(st, final_streams.data(), mtp_in, LogitRows::kAll, &mtp_trace);
    expect_rows_close("mtp_logits", mtp_logits, floats("mtp_logits"), vocab(), kLogitTol);
    if (exists("hidden_mtp")) expect_hidden_close("hidden_mtp", mtp_trace.hidden[size_t(cfg().n_layer)], floats("hidden_mtp"));
  }
}

TEST_P(GoldenTest, TeacherForcedDecodeMatchesReferenceAndOwnPrefill) {
  const std::vector<int32_t> cont = ids("continuation_ids");
  const std::vector<float> want = floats("decode_logits");
  kv::SequenceState st = model_->new_state();
  model_->forward(st, prompt_, LogitRows::kNone);
  std::vector<float> decoded;
  std::vector<std::vector<int32_t>> decode_topk;
  for (int32_t tok : cont) {
    ForwardTrace trace;
    const std::vector<float> row = model_->forward(st, std::span(&tok, 1), LogitRows::kLast, &trace);
    decoded.insert(decoded.end(), row.begin(), row.end());
    for (int64_t l = 0; l < cfg().n_layer; ++l)
      if (cfg().compress_ratio(l) == 4 && !trace.attention[size_t(l)].index_topk.empty()) {
        if (decode_topk.size() <= size_t(l)) decode_topk.resize(size_t(l + 1));
        const auto& ch = trace.attention[size_t(l)].index_topk[0];
        decode_topk[size_t(l)].insert(decode_topk[size_t(l)].end(), ch.begin(), ch.end());
        decode_topk[size_t(l)].push_back(-2);  // row separator
      }
  }
  const ErrorStats s = compare(decoded.data(), want.data(), int64_t(want.size()));
  EXPECT_LE(s.max_abs, kLogitTol) << "decode_logits";

  // The indexer's decode-time choices.
  for (int64_t l = 0; l < int64_t(decode_topk.size()); ++l) {
    const std::string name = "indexer_topk_decode_layer" + std::to_string(l);
    if (!exists(name)) continue;
    const io::NpyArray arr = io::read_npy(path(name));
    const std::vector<int64_t> w = arr.to_i64();
    const int64_t width = arr.shape[1];
    std::vector<std::set<int64_t>> got(1);
    for (int32_t v : decode_topk[size_t(l)]) { if (v == -2) got.emplace_back(); else got.back().insert(v); }
    for (int64_t i = 0; i < arr.shape[0]; ++i) {
      std::set<int64_t> expect;
      for (int64_t k = 0; k < width; ++k) if (w[size_t(i * width + k)] >= 0) expect.insert(w[size_t(i * width + k)]);
      EXPECT_EQ(got[size_t(i)], expect) << name << " step " << i;
    }
  }

  // Self-consistency: one prefill over prompt + continuation gives the same logits.
  std::vector<int32_t> full = prompt_;
  full.insert(full.end(), cont.begin(), cont.end());
  kv::SequenceState st2 = model_->new_state();
  const std::vector<float> all = model_->forward(st2, full, LogitRows::kAll);
  const int64_t S = int64_t(prompt_.size());
  const ErrorStats self = compare(decoded.data(), all.data() + S * vocab(), int64_t(decoded.size()));
  EXPECT_LE(self.max_abs, kSelfConsistency) << "decode vs prefill of the longer sequence";
}

TEST_P(GoldenTest, GreedyContinuation) {
  const std::vector<int32_t> want_tokens = ids("greedy_tokens");
  const std::vector<float> want_logits = floats("greedy_logits");
  kv::SequenceState st = model_->new_state();
  std::vector<float> row = model_->forward(st, prompt_, LogitRows::kLast);
  std::vector<int32_t> got_tokens;
  std::vector<float> got_logits;
  for (size_t i = 0; i < want_tokens.size(); ++i) {
    got_logits.insert(got_logits.end(), row.begin(), row.end());
    const int32_t tok = int32_t(std::max_element(row.begin(), row.end()) - row.begin());
    got_tokens.push_back(tok);
    if (i + 1 < want_tokens.size()) row = model_->forward(st, std::span(&tok, 1), LogitRows::kLast);
  }
  EXPECT_EQ(got_tokens, want_tokens);
  const ErrorStats s = compare(got_logits.data(), want_logits.data(), int64_t(want_logits.size()));
  EXPECT_LE(s.max_abs, kLogitTol) << "greedy_logits";
}

TEST_P(GoldenTest, ChunkedPrefillEqualsOnePrefill) {
  // Any split of the prompt into chunks must give the same state and logits.
  kv::SequenceState one = model_->new_state();
  const std::vector<float> whole = model_->forward(one, prompt_, LogitRows::kAll);
  kv::SequenceState chunked = model_->new_state();
  std::vector<float> parts;
  const int64_t S = int64_t(prompt_.size());
  for (int64_t start = 0, chunk = 7; start < S; start += chunk, chunk = chunk * 2 + 3) {
    const int64_t n = std::min(chunk, S - start);
    const std::vector<float> part = model_->forward(chunked, std::span(prompt_.data() + start, size_t(n)), LogitRows::kAll);
    parts.insert(parts.end(), part.begin(), part.end());
  }
  const ErrorStats s = compare(parts.data(), whole.data(), int64_t(whole.size()));
  EXPECT_LE(s.max_abs, kSelfConsistency);
}

std::string case_name(const ::testing::TestParamInfo<GoldenTest::ParamType>& info) {
  std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
  for (auto& ch : n) if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest,
                         ::testing::Combine(::testing::ValuesIn(golden_cases()), ::testing::Values("ref", "cpu")),
                         case_name);

TEST(GoldenData, CasesArePresent) {
  // Guards against a test run that silently finds no cases.
  EXPECT_GE(golden_cases().size(), 2u);
}

}  // namespace
}  // namespace dsv4::model
