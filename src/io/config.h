// The model configuration, read from a Hugging Face config.json. One table in config.cpp
// maps JSON keys to fields; unknown keys are ignored, a missing required key or a value
// of the wrong type is an error naming the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::io {

struct Config {
  // Sizes
  int64_t vocab_size = 0;               // vocab_size
  int64_t n_embd = 0;                   // hidden_size
  int64_t n_layer = 0;                  // num_hidden_layers (main blocks, MTP excluded)
  int64_t n_head = 0;                   // num_attention_heads
  int64_t n_kv_head = 1;                // num_key_value_heads (must be 1: one shared K=V latent)
  int64_t head_dim = 0;                 // head_dim
  int64_t rope_dim = 0;                 // qk_rope_head_dim: last rope_dim dims of each head are rotated
  int64_t q_lora_rank = 0;              // q_lora_rank
  int64_t o_groups = 0;                 // o_groups
  int64_t o_lora_rank = 0;              // o_lora_rank
  int64_t sliding_window = 0;           // sliding_window
  // MoE
  int64_t n_expert = 0;                 // n_routed_experts
  int64_t n_expert_used = 0;            // num_experts_per_tok
  int64_t n_shared_expert = 1;          // n_shared_experts
  int64_t n_ff_expert = 0;              // moe_intermediate_size
  int64_t n_hash_layer = 0;             // num_hash_layers
  double routed_scaling_factor = 1.0;   // routed_scaling_factor
  std::string scoring_func = "sqrtsoftplus";  // scoring_func
  bool norm_topk_prob = true;           // norm_topk_prob
  double swiglu_limit = 0.0;            // swiglu_limit (0 = no clamp)
  std::string expert_dtype;             // expert_dtype ("fp4"; optional, detected from dtypes anyway)
  // Indexer
  int64_t index_n_head = 0;             // index_n_heads
  int64_t index_head_dim = 0;           // index_head_dim
  int64_t index_topk = 0;               // index_topk
  // Hyper-connections
  int64_t hc_mult = 4;                  // hc_mult
  int64_t hc_sinkhorn_iters = 20;       // hc_sinkhorn_iters
  double hc_eps = 1e-6;                 // hc_eps
  double rms_norm_eps = 1e-6;           // rms_norm_eps
  // Positions
  double rope_theta = 10000.0;          // rope_theta (sliding-window layers, no YaRN)
  double compress_rope_theta = 160000.0;  // compress_rope_theta (compressed layers, with YaRN)
  std::string rope_scaling_type;        // rope_scaling.type ("yarn" or empty)
  double rope_factor = 1.0;             // rope_scaling.factor
  int64_t rope_original_max_pos = 0;    // rope_scaling.original_max_position_embeddings
  double rope_beta_fast = 32.0;         // rope_scaling.beta_fast
  double rope_beta_slow = 1.0;          // rope_scaling.beta_slow
  int64_t max_position_embeddings = 0;  // max_position_embeddings
  // Layer schedule: n_layer + n_mtp entries; 0 = sliding window only, 4 = CSA, other = HCA
  std::vector<int64_t> compress_ratios;  // compress_ratios
  int64_t n_mtp = 0;                    // num_nextn_predict_layers
  // Tokens
  int64_t bos_token_id = 0;             // bos_token_id
  int64_t eos_token_id = 1;             // eos_token_id
  bool tie_word_embeddings = false;     // tie_word_embeddings
  std::string model_type;               // model_type

  std::string source;                   // path it was read from (for error messages)

  // Checks internal consistency (compress_ratios length = n_layer + n_mtp, head_dim >= rope_dim,
  // rope_dim even, n_head divisible by o_groups, n_expert_used <= n_expert, n_kv_head == 1,
  // n_hash_layer <= n_layer, positive sizes, ...). Throws dsv4::Error naming the key.
  void validate() const;
  int64_t compress_ratio(int64_t layer) const { return compress_ratios.at(size_t(layer)); }
  // Field-by-field equality (source included), e.g. for config_to_json round trips.
  friend bool operator==(const Config&, const Config&) = default;
};

// Reads and validates a config.json (throws dsv4::Error naming the file and key).
Config load_config(const std::string& path);
// Parses config JSON text (source names it in errors); validates.
Config parse_config(const std::string& json_text, const std::string& source);
// Serialises back to the HF key layout (used by the tiny-model generator).
std::string config_to_json(const Config& c);

}  // namespace dsv4::io
