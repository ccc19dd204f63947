// Typed views of every model weight, bound by published name from a checkpoint and
// checked against the config at load. Matrices stay in the mapped checkpoint in their
// native formats (WeightView); only small vectors (norm weights, biases, sinks, ape,
// hc scale/base) are decoded into float vectors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/weight.h"
#include "io/config.h"
#include "io/safetensors.h"

namespace dsv4::model {

// Hyper-connection mixing parameters of one sub-layer (attention or FFN).
struct HcWeights {
  WeightView fn;              // F32 [(2+hc)*hc, hc*n_embd]
  std::vector<float> base;    // [(2+hc)*hc]
  std::vector<float> scale;   // [3]: pre, post, comb
};

// The final hyper-connection head (main model and each MTP block).
struct HcHeadWeights {
  WeightView fn;              // F32 [hc, hc*n_embd]
  std::vector<float> base;    // [hc]
  std::vector<float> scale;   // [1]
};

struct CompressorWeights {
  int64_t ratio = 0;          // tokens per compressed entry
  int64_t dim = 0;            // d_c: head_dim (main) or index_head_dim (indexer)
  bool overlap = false;       // ratio 4: two halves per token, entries span 2 blocks
  WeightView wkv;             // [coff*dim, n_embd]
  WeightView wgate;           // [coff*dim, n_embd]
  std::vector<float> ape;     // [ratio, coff*dim] additive gate bias by slot in block
  std::vector<float> norm;    // [dim]
};

struct AttentionWeights {
  int64_t ratio = 0;          // 0 = sliding window only, 4 = CSA (indexer), other = HCA
  std::vector<float> sink;    // [n_head]
  WeightView wq_a;            // [q_lora_rank, n_embd]
  std::vector<float> q_norm;  // [q_lora_rank]
  WeightView wq_b;            // [n_head*head_dim, q_lora_rank]
  WeightView wkv;             // [head_dim, n_embd]
  std::vector<float> kv_norm; // [head_dim]
  WeightView wo_a;            // [o_groups*o_lora_rank, n_head*head_dim/o_groups]
  WeightView wo_b;            // [n_embd, o_groups*o_lora_rank]
  CompressorWeights compressor;        // ratio != 0
  WeightView index_wq_b;               // ratio == 4: [index_n_head*index_head_dim, q_lora_rank]
  WeightView index_weights_proj;       // ratio == 4: [index_n_head, n_embd]
  CompressorWeights index_compressor;  // ratio == 4
};

struct ExpertWeights {
  WeightView w1;              // gate projection [n_ff, n_embd]
  WeightView w2;              // down projection [n_embd, n_ff]
  WeightView w3;              // up projection [n_ff, n_embd]
};

struct MoeWeights {
  bool hash_routed = false;
  WeightView gate;                 // router [n_expert, n_embd]
  std::vector<float> gate_bias;    // score-routed: [n_expert] (selection only)
  std::vector<int32_t> tid2eid;    // hash-routed: [vocab_size, n_expert_used]
  std::vector<ExpertWeights> experts;  // [n_expert]
  bool has_shared = false;
  ExpertWeights shared;
};

struct BlockWeights {
  int64_t layer = 0;               // index in compress_ratios (MTP blocks follow the main ones)
  HcWeights hc_attn, hc_ffn;
  std::vector<float> attn_norm;    // [n_embd]
  std::vector<float> ffn_norm;     // [n_embd]
  AttentionWeights attn;
  MoeWeights ffn;
};

struct MtpWeights {
  BlockWeights block;
  WeightView e_proj;               // [n_embd, n_embd]
  WeightView h_proj;               // [n_embd, n_embd]
  std::vector<float> enorm, hnorm, norm;  // [n_embd]
  HcHeadWeights hc_head;
};

struct ModelWeights {
  io::Config config;
  std::unique_ptr<io::Checkpoint> checkpoint;  // owns the mappings the views point into
  WeightView embed;                // [vocab_size, n_embd]
  std::vector<BlockWeights> layers;
  std::vector<float> norm;         // [n_embd]
  HcHeadWeights hc_head;
  WeightView head;                 // [vocab_size, n_embd]
  std::vector<MtpWeights> mtp;     // [n_mtp]
  // The FP8 views' fp8_normal bits (WeightView): one word array per FP8 weight, made as
  // it is bound. The views point into these buffers, which stay put when the outer
  // vector grows or the struct moves.
  std::vector<std::vector<uint64_t>> fp8_normal_flags;
};

// Opens a checkpoint directory (config.json + safetensors), binds and checks every tensor.
// Throws dsv4::Error naming the file and tensor on any missing tensor, wrong dtype or shape,
// or inconsistent config.
// residency: where the checkpoint bytes live (io::Residency; kAuto copies a checkpoint
// that fits comfortably in RAM into huge pages, else copies all but the routed experts
// if those fit, else maps the files; see docs/performance.md). kSplit leaves exactly the
// routed experts (is_routed_expert_tensor) in the mapping.
std::unique_ptr<ModelWeights> load_weights(const std::string& dir, io::Residency residency = io::Residency::kAuto);

// A routed expert's tensor ("layers.3.ffn.experts.17.w1.weight"): each token reads only
// the few its router picks, so kSplit streams these from the file mapping.
bool is_routed_expert_tensor(const std::string& name);

// Whether the loader scans an FP8 linear for its normal-code flags (WeightView::fp8_normal)
// under the resolved residency: every one but a routed expert left in the file mapping
// (read only when the router picks it; the kernels check its blocks as they decode them).
bool fp8_flags_at_load(const std::string& name, io::Residency resolved);

// Binds weights from an already opened checkpoint and parsed config.
std::unique_ptr<ModelWeights> bind_weights(io::Config config, std::unique_ptr<io::Checkpoint> ckpt);

}  // namespace dsv4::model
