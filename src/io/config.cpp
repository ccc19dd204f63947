#include "io/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <variant>

#include "core/error.h"
#include "io/util.h"

namespace dsv4::io {

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

using Member = std::variant<int64_t Config::*, double Config::*, bool Config::*, std::string Config::*,
                            std::vector<int64_t> Config::*>;

// One row per JSON key. `key` is a dotted path ("rope_scaling.factor" is a member of the
// nested rope_scaling object). The rows are in the order of the release's config.json,
// which config_to_json reproduces.
struct Field {
  std::string_view key;
  Member member;
  bool required;
};

const Field kFields[] = {
    {"bos_token_id", &Config::bos_token_id, false},
    {"eos_token_id", &Config::eos_token_id, false},
    {"expert_dtype", &Config::expert_dtype, false},
    {"hc_eps", &Config::hc_eps, false},
    {"hc_mult", &Config::hc_mult, false},
    {"hc_sinkhorn_iters", &Config::hc_sinkhorn_iters, false},
    {"head_dim", &Config::head_dim, true},
    {"hidden_size", &Config::n_embd, true},
    {"index_head_dim", &Config::index_head_dim, true},
    {"index_n_heads", &Config::index_n_head, true},
    {"index_topk", &Config::index_topk, true},
    {"max_position_embeddings", &Config::max_position_embeddings, false},
    {"model_type", &Config::model_type, false},
    {"moe_intermediate_size", &Config::n_ff_expert, true},
    {"n_routed_experts", &Config::n_expert, true},
    {"n_shared_experts", &Config::n_shared_expert, false},
    {"norm_topk_prob", &Config::norm_topk_prob, false},
    {"num_attention_heads", &Config::n_head, true},
    {"num_experts_per_tok", &Config::n_expert_used, true},
    {"num_hidden_layers", &Config::n_layer, true},
    {"num_hash_layers", &Config::n_hash_layer, false},
    {"num_key_value_heads", &Config::n_kv_head, false},
    {"num_nextn_predict_layers", &Config::n_mtp, false},
    {"o_groups", &Config::o_groups, true},
    {"o_lora_rank", &Config::o_lora_rank, true},
    {"q_lora_rank", &Config::q_lora_rank, true},
    {"qk_rope_head_dim", &Config::rope_dim, true},
    {"rms_norm_eps", &Config::rms_norm_eps, false},
    {"rope_scaling.beta_fast", &Config::rope_beta_fast, false},
    {"rope_scaling.beta_slow", &Config::rope_beta_slow, false},
    {"rope_scaling.factor", &Config::rope_factor, false},
    {"rope_scaling.original_max_position_embeddings", &Config::rope_original_max_pos, false},
    {"rope_scaling.type", &Config::rope_scaling_type, false},
    {"rope_theta", &Config::rope_theta, false},
    {"routed_scaling_factor", &Config::routed_scaling_factor, false},
    {"scoring_func", &Config::scoring_func, false},
    {"sliding_window", &Config::sliding_window, true},
    {"swiglu_limit", &Config::swiglu_limit, false},
    {"tie_word_embeddings", &Config::tie_word_embeddings, false},
    {"vocab_size", &Config::vocab_size, true},
    {"compress_rope_theta", &Config::compress_rope_theta, false},
    {"compress_ratios", &Config::compress_ratios, true},
};

// Keys the release's config.json carries that the engine does not read; config_to_json
// writes them (with the release's values) so generated checkpoints load in HF tooling.
// Each is written just before the field named by `before`.
struct FixedKey {
  std::string_view key;
  std::string_view json_value;
  std::string_view before;
};
const FixedKey kFixedKeys[] = {
    {"architectures", R"(["DeepseekV4ForCausalLM"])", "bos_token_id"},
    {"attention_bias", "false", "bos_token_id"},
    {"attention_dropout", "0.0", "bos_token_id"},
    {"hidden_act", R"("silu")", "hidden_size"},
    {"initializer_range", "0.02", "max_position_embeddings"},
    {"quantization_config",
     R"({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "scale_fmt": "ue8m0",
         "weight_block_size": [128, 128]})",
     "rms_norm_eps"},
    {"topk_method", R"("noaux_tc")", "vocab_size"},
    {"torch_dtype", R"("bfloat16")", "vocab_size"},
    {"transformers_version", R"("4.57.1")", "vocab_size"},
    {"use_cache", "true", "vocab_size"},
};

struct Reader {
  const json& root;
  const std::string& source;

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw Error(source + ": " + std::string(key) + ": " + what);
  }

  // The value at a dotted key, or nullptr when absent (a JSON null counts as absent).
  const json* lookup(std::string_view key) const {
    const json* node = &root;
    size_t start = 0;
    while (true) {
      const size_t dot = key.find('.', start);
      const std::string part(key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
      if (!node->is_object()) {
        if (node->is_null()) return nullptr;
        fail(key.substr(0, start ? start - 1 : 0), "expected an object");
      }
      const auto it = node->find(part);
      if (it == node->end() || it->is_null()) return nullptr;
      node = &*it;
      if (dot == std::string_view::npos) return node;
      start = dot + 1;
    }
  }

  int64_t to_int(std::string_view key, const json& v) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) fail(key, "integer out of range");
      return int64_t(v.get<uint64_t>());
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    fail(key, "expected an integer, got " + one_line(v.dump()));
  }

  void set(Config& c, const Field& f, const json& v) const {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            // HF writes eos_token_id as a list when there are several; the first is the primary.
            if (v.is_array() && f.key == "eos_token_id" && !v.empty()) c.*member = to_int(f.key, v[0]);
            else c.*member = to_int(f.key, v);
          } else if constexpr (std::is_same_v<T, double>) {
            if (!v.is_number()) fail(f.key, "expected a number, got " + one_line(v.dump()));
            c.*member = v.get<double>();
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!v.is_boolean()) fail(f.key, "expected true or false, got " + one_line(v.dump()));
            c.*member = v.get<bool>();
          } else if constexpr (std::is_same_v<T, std::string>) {
            if (!v.is_string()) fail(f.key, "expected a string, got " + one_line(v.dump()));
            c.*member = v.get<std::string>();
          } else {
            if (!v.is_array()) fail(f.key, "expected a list of integers, got " + one_line(v.dump()));
            T list;
            for (const json& e : v) list.push_back(to_int(f.key, e));
            c.*member = std::move(list);
          }
        },
        f.member);
  }
};

void require(bool cond, const Config& c, std::string_view key, const std::string& what) {
  if (!cond) throw Error(c.source + ": " + std::string(key) + ": " + what);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

void write_field(ordered_json& out, const Config& c, const Field& f) {
  std::visit(
      [&](auto member) {
        const auto& value = c.*member;
        using T = std::remove_cvref_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (value.empty()) return;  // optional strings are written only when set
        }
        const size_t dot = f.key.find('.');
        if (dot == std::string_view::npos) {
          out[std::string(f.key)] = value;
        } else {
          out[std::string(f.key.substr(0, dot))][std::string(f.key.substr(dot + 1))] = value;
        }
      },
      f.member);
}

}  // namespace

Config parse_config(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source + ": malformed JSON: " + one_line(e.what()));
  }
  if (!root.is_object()) throw Error(source + ": config is not a JSON object");

  Config c;
  c.source = source;
  const Reader reader{root, source};
  bool has_mtp_key = false;
  for (const Field& f : kFields) {
    const json* v = reader.lookup(f.key);
    if (!v) {
      if (f.required) throw Error(source + ": missing required key '" + std::string(f.key) + "'");
      continue;
    }
    reader.set(c, f, *v);
    if (f.key == "num_nextn_predict_layers") has_mtp_key = true;
  }
  // Older configs omit the MTP count; one extra compress_ratios entry means one MTP block.
  if (!has_mtp_key && int64_t(c.compress_ratios.size()) == c.n_layer + 1) c.n_mtp = 1;
  c.validate();
  return c;
}

Config load_config(const std::string& path) { return parse_config(read_text(path), path); }

void Config::validate() const {
  const Config& c = *this;
  const std::pair<std::string_view, int64_t> positive[] = {
      {"vocab_size", vocab_size},       {"hidden_size", n_embd},
      {"num_hidden_layers", n_layer},   {"num_attention_heads", n_head},
      {"head_dim", head_dim},           {"q_lora_rank", q_lora_rank},
      {"o_groups", o_groups},           {"o_lora_rank", o_lora_rank},
      {"sliding_window", sliding_window}, {"n_routed_experts", n_expert},
      {"num_experts_per_tok", n_expert_used}, {"moe_intermediate_size", n_ff_expert},
      {"index_n_heads", index_n_head},  {"index_head_dim", index_head_dim},
      {"index_topk", index_topk},       {"hc_mult", hc_mult},
  };
  for (const auto& [key, v] : positive) require(v > 0, c, key, "must be positive, got " + std::to_string(v));
  const std::pair<std::string_view, int64_t> non_negative[] = {
      {"qk_rope_head_dim", rope_dim},          {"n_shared_experts", n_shared_expert},
      {"num_hash_layers", n_hash_layer},       {"num_nextn_predict_layers", n_mtp},
      {"hc_sinkhorn_iters", hc_sinkhorn_iters}, {"max_position_embeddings", max_position_embeddings},
      {"rope_scaling.original_max_position_embeddings", rope_original_max_pos},
  };
  for (const auto& [key, v] : non_negative) require(v >= 0, c, key, "must be >= 0, got " + std::to_string(v));

  require(n_kv_head == 1, c, "num_key_value_heads", "must be 1 (one shared K=V latent), got " + std::to_string(n_kv_head));
  require(head_dim - rope_dim >= 0, c, "qk_rope_head_dim",
          "exceeds head_dim (" + std::to_string(rope_dim) + " > " + std::to_string(head_dim) + ")");
  require(rope_dim % 2 == 0, c, "qk_rope_head_dim", "must be even, got " + std::to_string(rope_dim));
  require(n_head % o_groups == 0, c, "o_groups",
          std::to_string(o_groups) + " does not divide num_attention_heads " + std::to_string(n_head));
  require(n_expert_used <= n_expert, c, "num_experts_per_tok",
          std::to_string(n_expert_used) + " exceeds n_routed_experts " + std::to_string(n_expert));
  require(n_hash_layer <= n_layer, c, "num_hash_layers",
          std::to_string(n_hash_layer) + " exceeds num_hidden_layers " + std::to_string(n_layer));
  require(scoring_func == "sqrtsoftplus", c, "scoring_func",
          "unsupported value " + quoted(scoring_func) + " (only 'sqrtsoftplus' is supported)");
  require(rope_scaling_type.empty() || rope_scaling_type == "yarn", c, "rope_scaling.type",
          "unsupported value " + quoted(rope_scaling_type) + " (only 'yarn' is supported)");
  require(rms_norm_eps > 0, c, "rms_norm_eps", "must be positive");
  require(hc_eps >= 0, c, "hc_eps", "must be >= 0");
  require(rope_theta > 0, c, "rope_theta", "must be positive");
  require(compress_rope_theta > 0, c, "compress_rope_theta", "must be positive");
  require(rope_factor > 0, c, "rope_scaling.factor", "must be positive");
  require(swiglu_limit >= 0, c, "swiglu_limit", "must be >= 0");
  require(routed_scaling_factor > 0, c, "routed_scaling_factor", "must be positive");
  require(bos_token_id >= 0 && bos_token_id < vocab_size, c, "bos_token_id", "outside the vocabulary");
  require(eos_token_id >= 0 && eos_token_id < vocab_size, c, "eos_token_id", "outside the vocabulary");

  require(int64_t(compress_ratios.size()) == n_layer + n_mtp, c, "compress_ratios",
          "has " + std::to_string(compress_ratios.size()) + " entries, expected num_hidden_layers + "
          "num_nextn_predict_layers = " + std::to_string(n_layer + n_mtp));
  bool any_csa = false;
  for (size_t i = 0; i < compress_ratios.size(); ++i) {
    require(compress_ratios[i] >= 0, c, "compress_ratios",
            "entry " + std::to_string(i) + " is negative (" + std::to_string(compress_ratios[i]) + ")");
    any_csa |= compress_ratios[i] == 4;
  }
  if (any_csa)
    require(index_head_dim >= rope_dim, c, "index_head_dim",
            std::to_string(index_head_dim) + " is smaller than qk_rope_head_dim " + std::to_string(rope_dim));
}

std::string config_to_json(const Config& c) {
  ordered_json out = ordered_json::object();
  auto write_fixed_before = [&](std::string_view key) {
    for (const FixedKey& k : kFixedKeys)
      if (k.before == key) out[std::string(k.key)] = ordered_json::parse(k.json_value);
  };
  for (const Field& f : kFields) {
    write_fixed_before(f.key);
    write_field(out, c, f);
  }
  return out.dump(2) + "\n";
}

}  // namespace dsv4::io
