// Writes random DeepSeek-V4 checkpoints in the exact official on-disk layout
// (config.json, model.safetensors.index.json, sharded safetensors with FP8 E4M3 + E8M0
// 128x128 block scales, packed FP4 E2M1 experts + per-32 E8M0 scales, BF16/F32 rest), so
// the engine can be demonstrated and tested on any machine without downloading weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/config.h"

namespace dsv4::model {

// Named configurations: "tiny" (every feature, small window/ratios so short prompts
// compress), "tiny-realwin" (the release's window 128 / ratio 128 / top-k 512 at tiny width),
// "tiny-pro" (V4-Pro's layer schedule: HCA first layers, no window-only main layers),
// "flash-<K>" (K layers at the exact V4-Flash widths, CSA/HCA alternating, no MTP: for
// benchmarks; about 3.4 GB per layer plus 2.1 GB of embedding and head).
std::vector<std::string> tiny_presets();
io::Config tiny_config(const std::string& preset);  // throws dsv4::Error for an unknown preset
io::Config flash_layers_config(int64_t n_layers);

struct TinyModelOptions {
  uint64_t seed = 1;
  int64_t n_shards = 2;  // main tensors spread over n_shards-1 files, MTP in the last (1 = single shard)
};

// Writes the checkpoint into dir (created if missing). Returns the number of tensors.
int64_t write_tiny_model(const std::string& dir, const io::Config& config, const TinyModelOptions& opt);

}  // namespace dsv4::model
