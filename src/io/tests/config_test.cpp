// load_config / parse_config / validate / config_to_json.
#include "io/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/tests/test_util.h"

namespace dsv4::io {
namespace {

using test::expect_error;
using json = nlohmann::json;

std::string golden_config_path(const std::string& c) { return test::golden_dir(c) + "/config.json"; }

json golden_json(const std::string& c) {
  std::ifstream in(golden_config_path(c));
  return json::parse(in);
}

Config parse(const json& j) { return parse_config(j.dump(), "test_config.json"); }

TEST(Config, LoadsShrunkGolden) {
  const Config c = load_config(golden_config_path("tiny_shrunk_p64"));
  EXPECT_EQ(c.source, golden_config_path("tiny_shrunk_p64"));
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_kv_head, 1);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_dim, 64);
  EXPECT_EQ(c.q_lora_rank, 128);
  EXPECT_EQ(c.o_groups, 2);
  EXPECT_EQ(c.o_lora_rank, 64);
  EXPECT_EQ(c.sliding_window, 16);
  EXPECT_EQ(c.n_expert, 8);
  EXPECT_EQ(c.n_expert_used, 2);
  EXPECT_EQ(c.n_shared_expert, 1);
  EXPECT_EQ(c.n_ff_expert, 128);
  EXPECT_EQ(c.n_hash_layer, 2);
  EXPECT_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.swiglu_limit, 10.0);
  EXPECT_EQ(c.expert_dtype, "fp4");
  EXPECT_EQ(c.index_n_head, 8);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 8);
  EXPECT_EQ(c.hc_mult, 4);
  EXPECT_EQ(c.hc_sinkhorn_iters, 20);
  EXPECT_EQ(c.hc_eps, 1e-6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.compress_rope_theta, 160000.0);
  EXPECT_EQ(c.rope_scaling_type, "yarn");
  EXPECT_EQ(c.rope_factor, 16.0);
  EXPECT_EQ(c.rope_original_max_pos, 65536);
  EXPECT_EQ(c.rope_beta_fast, 32.0);
  EXPECT_EQ(c.rope_beta_slow, 1.0);
  EXPECT_EQ(c.max_position_embeddings, 1048576);
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{0, 4, 16, 4, 16, 0}));
  EXPECT_EQ(c.n_mtp, 1);
  EXPECT_EQ(c.compress_ratio(2), 16);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.model_type, "deepseek_v4");
}

TEST(Config, LoadsRealwinGolden) {
  const Config c = load_config(golden_config_path("tiny_realwin_p502"));
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.head_dim, 192);
  EXPECT_EQ(c.o_groups, 4);
  EXPECT_EQ(c.o_lora_rank, 32);
  EXPECT_EQ(c.sliding_window, 128);
  EXPECT_EQ(c.index_n_head, 4);
  EXPECT_EQ(c.index_topk, 512);
  EXPECT_EQ(c.n_expert, 6);
  EXPECT_EQ(c.n_expert_used, 3);
  EXPECT_EQ(c.rope_factor, 16.0);
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{0, 4, 128, 4, 0}));
  EXPECT_EQ(c.n_mtp, 1);
}

TEST(Config, RoundTripGivesEqualConfig) {
  for (const char* name : {"tiny_shrunk_p64", "tiny_realwin_p502"}) {
    const Config a = load_config(golden_config_path(name));
    Config b = parse_config(config_to_json(a), a.source);
    EXPECT_TRUE(a == b) << name;
    // The written JSON carries the same keys, in the same order, as the release's config.json.
    const auto written = nlohmann::ordered_json::parse(config_to_json(a));
    std::ifstream in(golden_config_path(name));
    const auto golden = nlohmann::ordered_json::parse(in);
    std::vector<std::string> wk, gk;
    for (const auto& [k, v] : written.items()) wk.push_back(k);
    for (const auto& [k, v] : golden.items()) gk.push_back(k);
    EXPECT_EQ(wk, gk) << name;
    EXPECT_EQ(json::parse(written.dump()), json::parse(golden.dump())) << name;
  }
}

TEST(Config, RoundTripOfNonDefaultValues) {
  Config a = load_config(golden_config_path("tiny_shrunk_p64"));
  a.tie_word_embeddings = true;
  a.norm_topk_prob = false;
  a.rope_scaling_type.clear();
  a.expert_dtype.clear();
  a.hc_eps = 0.1 + 0.2;  // not exactly representable in short decimal
  a.n_mtp = 0;
  a.compress_ratios.pop_back();
  a.validate();
  const Config b = parse_config(config_to_json(a), a.source);
  EXPECT_TRUE(a == b);
}

TEST(Config, UnknownKeysIgnoredAndDefaultsApply) {
  json j = golden_json("tiny_shrunk_p64");
  j["some_future_key"] = {{"x", 1}};
  for (const char* k : {"hc_mult", "hc_sinkhorn_iters", "rope_scaling", "scoring_func", "num_key_value_heads",
                        "n_shared_experts", "rope_theta", "compress_rope_theta", "model_type", "expert_dtype"})
    j.erase(k);
  const Config c = parse(j);
  const Config defaults;
  EXPECT_EQ(c.hc_mult, defaults.hc_mult);
  EXPECT_EQ(c.hc_sinkhorn_iters, defaults.hc_sinkhorn_iters);
  EXPECT_EQ(c.rope_scaling_type, "");
  EXPECT_EQ(c.rope_factor, 1.0);
  EXPECT_EQ(c.rope_beta_fast, 32.0);
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.compress_rope_theta, 160000.0);
  EXPECT_EQ(c.model_type, "");
}

TEST(Config, NullCountsAsAbsent) {
  json j = golden_json("tiny_shrunk_p64");
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse(j).rope_factor, 1.0);
}

TEST(Config, MtpCountInferredFromCompressRatios) {
  json j = golden_json("tiny_shrunk_p64");
  j.erase("num_nextn_predict_layers");
  EXPECT_EQ(parse(j).n_mtp, 1);  // 6 ratios for 5 layers
  j["compress_ratios"] = {0, 4, 16, 4, 16};
  EXPECT_EQ(parse(j).n_mtp, 0);
}

TEST(Config, EosAsListTakesFirst) {
  json j = golden_json("tiny_shrunk_p64");
  j["eos_token_id"] = {1, 2};
  EXPECT_EQ(parse(j).eos_token_id, 1);
}

TEST(Config, EveryRequiredKeyIsRequired) {
  for (const char* key : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim",
                          "qk_rope_head_dim", "q_lora_rank", "o_groups", "o_lora_rank", "sliding_window",
                          "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "index_n_heads",
                          "index_head_dim", "index_topk", "compress_ratios"}) {
    json j = golden_json("tiny_shrunk_p64");
    j.erase(key);
    expect_error([&] { parse(j); }, {"test_config.json", "missing", key});
  }
}

TEST(Config, MissingKeyFromFileNamesFile) {
  test::TempDir tmp;
  json j = golden_json("tiny_shrunk_p64");
  j.erase("hidden_size");
  test::write_bytes(tmp.file("config.json"), j.dump());
  expect_error([&] { load_config(tmp.file("config.json")); }, {tmp.file("config.json"), "hidden_size"});
}

TEST(Config, WrongTypes) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", "256"},          {"hidden_size", 256.5},       {"hidden_size", true},
      {"norm_topk_prob", 1},           {"scoring_func", 3},          {"rms_norm_eps", "1e-6"},
      {"compress_ratios", 4},          {"compress_ratios", {0, "4"}}, {"num_hash_layers", {1}},
      {"vocab_size", json::array()},   {"hidden_size", 18446744073709551615ull},
  };
  for (const auto& [key, value] : cases) {
    json j = golden_json("tiny_shrunk_p64");
    j[key] = value;
    expect_error([&] { parse(j); }, {"test_config.json", key});
  }
  json j = golden_json("tiny_shrunk_p64");
  j["rope_scaling"]["factor"] = "16";
  expect_error([&] { parse(j); }, {"test_config.json", "rope_scaling.factor"});
  j["rope_scaling"] = "yarn";
  expect_error([&] { parse(j); }, {"test_config.json", "rope_scaling", "object"});
}

TEST(Config, MalformedJson) {
  expect_error([] { parse_config("{\"vocab_size\": ", "bad.json"); }, {"bad.json", "malformed JSON"});
  expect_error([] { parse_config("[1, 2]", "bad.json"); }, {"bad.json", "not a JSON object"});
  expect_error([] { load_config("/nonexistent/dir/config.json"); }, {"/nonexistent/dir/config.json"});
}

TEST(Config, InconsistentValues) {
  struct Case { std::string key; json value; std::string expect_key; };
  const std::vector<Case> cases = {
      {"compress_ratios", {0, 4, 16}, "compress_ratios"},          // wrong length
      {"compress_ratios", {0, 4, -1, 4, 16, 0}, "compress_ratios"},  // negative
      {"qk_rope_head_dim", 130, "qk_rope_head_dim"},                // > head_dim
      {"qk_rope_head_dim", 63, "qk_rope_head_dim"},                 // odd
      {"o_groups", 3, "o_groups"},                                  // does not divide heads
      {"hidden_size", 0, "hidden_size"},
      {"num_experts_per_tok", 9, "num_experts_per_tok"},
      {"num_hash_layers", 6, "num_hash_layers"},
      {"scoring_func", "softmax", "scoring_func"},
      {"hc_mult", 0, "hc_mult"},
      {"num_key_value_heads", 2, "num_key_value_heads"},
      {"num_nextn_predict_layers", 2, "compress_ratios"},
  };
  for (const Case& c : cases) {
    json j = golden_json("tiny_shrunk_p64");
    j[c.key] = c.value;
    expect_error([&] { parse(j); }, {"test_config.json", c.expect_key});
  }
  json j = golden_json("tiny_shrunk_p64");
  j["scoring_func"] = "softmax";
  expect_error([&] { parse(j); }, {"unsupported", "softmax"});
  // index_head_dim must hold the rope part only when a CSA (ratio 4) layer exists.
  j = golden_json("tiny_shrunk_p64");
  j["index_head_dim"] = 32;
  expect_error([&] { parse(j); }, {"index_head_dim"});
  j["compress_ratios"] = {0, 16, 16, 0, 16, 0};
  EXPECT_EQ(parse(j).index_head_dim, 32);
}

}  // namespace
}  // namespace dsv4::io
