#include "model/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/inventory.h"

namespace dsv4::model {

namespace {

class TensorFactory {
 public:
  explicit TensorFactory(uint64_t seed) : rng_(seed) {}

  // FP8 weight: Gaussian values with a different spread per 128x128 block, scaled by a
  // power of two so the block maximum fits e4m3, rounded to the nearest code.
  void fp8_linear(io::SafetensorsWriter& w, const std::string& name, int64_t n_out, int64_t n_in) {
    const int64_t sb_r = (n_out + 127) / 128, sb_c = (n_in + 127) / 128;
    std::vector<uint8_t> codes(size_t(n_out * n_in)), scales(size_t(sb_r * sb_c));
    std::vector<float> block_std(size_t(sb_r * sb_c));
    std::uniform_real_distribution<float> spread(0.5f, 2.0f);
    for (auto& s : block_std) s = spread(rng_) / std::sqrt(float(n_in));
    std::vector<float> vals(codes.size());
    for (int64_t r = 0; r < n_out; ++r)
      for (int64_t c = 0; c < n_in; ++c) vals[size_t(r * n_in + c)] = gauss() * block_std[size_t((r / 128) * sb_c + c / 128)];
    for (int64_t br = 0; br < sb_r; ++br)
      for (int64_t bc = 0; bc < sb_c; ++bc) {
        float amax = 1e-12f;
        for (int64_t r = br * 128; r < std::min(n_out, br * 128 + 128); ++r)
          for (int64_t c = bc * 128; c < std::min(n_in, bc * 128 + 128); ++c) amax = std::max(amax, std::fabs(vals[size_t(r * n_in + c)]));
        const int e = int(std::ceil(std::log2(amax / 448.0f)));
        scales[size_t(br * sb_c + bc)] = uint8_t(e + 127);
        const float inv = std::ldexp(1.0f, -e);
        for (int64_t r = br * 128; r < std::min(n_out, br * 128 + 128); ++r)
          for (int64_t c = bc * 128; c < std::min(n_in, bc * 128 + 128); ++c)
            codes[size_t(r * n_in + c)] = f32_to_e4m3(vals[size_t(r * n_in + c)] * inv);
      }
    w.add(name, DType::F8_E4M3, {n_out, n_in}, std::move(codes));
    w.add(scale_name(name), DType::F8_E8M0, {sb_r, sb_c}, std::move(scales));
  }

  // FP4 expert weight: uniform codes over all 16 e2m1 values; per-32 scales vary over a few
  // powers of two around the size that keeps activations O(1).
  void fp4_linear(io::SafetensorsWriter& w, const std::string& name, int64_t n_out, int64_t n_in) {
    std::vector<uint8_t> packed(size_t(n_out * n_in / 2)), scales(size_t(n_out * n_in / 32));
    fill_random_bytes(packed);  // every byte = two uniform nibbles: all 16 codes
    const int base = int(std::lround(std::log2(1.0 / (2.6 * std::sqrt(double(n_in))))));
    fill_random_bytes(scales);
    for (auto& s : scales) s = uint8_t(base + int(s & 3) - 2 + 127);  // jitter -2..+1 powers of two
    w.add(name, DType::I8, {n_out, n_in / 2}, std::move(packed));
    w.add(scale_name(name), DType::F8_E8M0, {n_out, n_in / 32}, std::move(scales));
  }

  void bf16(io::SafetensorsWriter& w, const std::string& name, const std::vector<int64_t>& shape, float mean, float std) {
    std::vector<uint8_t> bytes(size_t(numel(shape) * 2));
    for (int64_t i = 0; i < numel(shape); ++i) {
      const uint16_t h = f32_to_bf16(mean + std * gauss());
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    w.add(name, DType::BF16, shape, std::move(bytes));
  }

  void f32(io::SafetensorsWriter& w, const std::string& name, const std::vector<int64_t>& shape, float mean, float std) {
    std::vector<uint8_t> bytes(size_t(numel(shape) * 4));
    for (int64_t i = 0; i < numel(shape); ++i) {
      const float v = mean + std * gauss();
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
    w.add(name, DType::F32, shape, std::move(bytes));
  }

  // tid2eid: for every token, n_used distinct experts.
  void hash_table(io::SafetensorsWriter& w, const std::string& name, int64_t vocab, int64_t n_used, int64_t n_expert) {
    std::vector<uint8_t> bytes(size_t(vocab * n_used * 8));
    std::vector<int64_t> ids(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < vocab; ++t) {
      for (int64_t e = 0; e < n_expert; ++e) ids[size_t(e)] = e;
      std::shuffle(ids.begin(), ids.end(), rng_);
      std::memcpy(bytes.data() + t * n_used * 8, ids.data(), size_t(n_used * 8));
    }
    w.add(name, DType::I64, {vocab, n_used}, std::move(bytes));
  }

 private:
  static int64_t numel(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (auto v : s) n *= v;
    return n;
  }
  float gauss() { return dist_(rng_); }
  // 8 random bytes per generator call: expert tensors of full-width models are gigabytes.
  void fill_random_bytes(std::vector<uint8_t>& v) {
    size_t i = 0;
    for (; i + 8 <= v.size(); i += 8) {
      const uint64_t r = rng_();
      std::memcpy(v.data() + i, &r, 8);
    }
    for (; i < v.size(); ++i) v[i] = uint8_t(rng_());
  }
  std::mt19937_64 rng_;
  std::normal_distribution<float> dist_{0.0f, 1.0f};
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Value distribution for each small float tensor, chosen so a random model stays numerically tame.
void write_vector(TensorFactory& f, io::SafetensorsWriter& w, const TensorSpec& s) {
  const std::string& n = s.name;
  float mean = 0.0f, std = 0.02f;
  if (ends_with(n, "norm.weight")) mean = 1.0f, std = 0.1f;
  else if (ends_with(n, "attn_sink")) std = 1.0f;
  else if (ends_with(n, "_base")) std = 0.5f;
  else if (ends_with(n, "_scale")) mean = 0.5f, std = 0.1f;
  else if (ends_with(n, ".ape")) std = 0.5f;
  else if (ends_with(n, "gate.bias")) std = 0.1f;
  if (s.dtype == DType::BF16) f.bf16(w, n, s.shape, mean, std);
  else f.f32(w, n, s.shape, mean, std);
}

void write_tensor(TensorFactory& f, io::SafetensorsWriter& w, const io::Config& c, const TensorSpec& s) {
  switch (s.role) {
    case TensorRole::kIndexTable: f.hash_table(w, s.name, c.vocab_size, c.n_expert_used, c.n_expert); return;
    case TensorRole::kVector: write_vector(f, w, s); return;
    case TensorRole::kLinear: break;
  }
  const int64_t n_out = s.shape[0], n_in = s.shape[1];
  switch (s.dtype) {
    case DType::F8_E4M3: f.fp8_linear(w, s.name, n_out, n_in); return;
    case DType::I8: f.fp4_linear(w, s.name, n_out, n_in); return;
    case DType::F32: f.f32(w, s.name, s.shape, 0.0f, 0.02f); return;  // hc mixing matrices
    default: f.bf16(w, s.name, s.shape, 0.0f, s.name == "embed.weight" ? 1.0f : 1.0f / std::sqrt(float(n_in))); return;
  }
}

io::Config base_tiny() {
  io::Config c;
  c.model_type = "deepseek_v4";
  c.vocab_size = 1024;
  c.n_embd = 256;
  c.n_layer = 5;
  c.n_head = 4;
  c.head_dim = 128;
  c.rope_dim = 64;
  c.q_lora_rank = 128;
  c.o_groups = 2;
  c.o_lora_rank = 64;
  c.sliding_window = 16;
  c.n_expert = 8;
  c.n_expert_used = 2;
  c.n_shared_expert = 1;
  c.n_ff_expert = 128;
  c.n_hash_layer = 2;
  c.routed_scaling_factor = 1.5;
  c.swiglu_limit = 10.0;
  c.expert_dtype = "fp4";
  c.index_n_head = 8;
  c.index_head_dim = 128;
  c.index_topk = 8;
  c.rope_scaling_type = "yarn";
  c.rope_factor = 16;
  c.rope_original_max_pos = 65536;
  c.max_position_embeddings = 1048576;
  c.n_mtp = 1;
  c.compress_ratios = {0, 4, 16, 4, 16, 0};
  return c;
}

}  // namespace

std::vector<std::string> tiny_presets() { return {"tiny", "tiny-realwin", "tiny-pro"}; }

io::Config flash_layers_config(int64_t n_layers) {
  check(n_layers >= 1 && n_layers <= 43, "flash-<K>: K must be between 1 and 43");
  io::Config c = base_tiny();
  c.vocab_size = 129280;
  c.n_embd = 4096;
  c.n_head = 64;
  c.head_dim = 512;
  c.q_lora_rank = 1024;
  c.o_groups = 8;
  c.o_lora_rank = 1024;
  c.sliding_window = 128;
  c.n_expert = 256;
  c.n_expert_used = 6;
  c.n_ff_expert = 2048;
  c.n_hash_layer = 0;  // score routing everywhere, like 40 of Flash's 43 layers
  c.index_n_head = 64;
  c.index_topk = 512;
  c.n_layer = n_layers;
  c.n_mtp = 0;
  c.compress_ratios.clear();
  for (int64_t l = 0; l < n_layers; ++l) c.compress_ratios.push_back(l % 2 == 0 ? 4 : 128);  // CSA, HCA, ...
  return c;
}

io::Config tiny_config(const std::string& preset) {
  io::Config c = base_tiny();
  if (preset == "tiny") return c;
  if (preset == "tiny-realwin") {
    c.n_layer = 4;
    c.n_head = 8;
    c.head_dim = 192;
    c.o_groups = 4;
    c.o_lora_rank = 32;
    c.sliding_window = 128;
    c.index_n_head = 4;
    c.index_topk = 512;
    c.n_expert = 6;
    c.n_expert_used = 3;
    c.compress_ratios = {0, 4, 128, 4, 0};
    return c;
  }
  if (preset == "tiny-pro") {  // V4-Pro schedule: [128, 128, 4, 128, 4, ..., 0] at tiny width
    c.n_layer = 6;
    c.n_hash_layer = 3;
    c.n_head = 8;
    c.o_groups = 4;
    c.routed_scaling_factor = 2.5;
    c.compress_ratios = {16, 16, 4, 16, 4, 16, 0};
    return c;
  }
  if (preset.rfind("flash-", 0) == 0) {
    size_t used = 0;
    int64_t k = -1;
    try { k = std::stoll(preset.substr(6), &used); } catch (...) { used = 0; }
    check(used > 0 && used == preset.size() - 6, "preset '" + preset + "': expected flash-<number of layers>");
    return flash_layers_config(k);
  }
  std::string names;
  for (const auto& p : tiny_presets()) names += (names.empty() ? "" : ", ") + p;
  throw Error("unknown preset '" + preset + "' (available: " + names + ")");
}

int64_t write_tiny_model(const std::string& dir, const io::Config& config, const TinyModelOptions& opt) {
  config.validate();
  check(opt.n_shards >= 1 && opt.n_shards <= 99, "--shards must be between 1 and 99");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  check(!ec, dir + ": cannot create directory: " + ec.message());

  const std::vector<TensorSpec> specs = expected_tensors(config);
  // Main tensors are spread evenly over the first shards; MTP tensors go to the last one,
  // like the release (which keeps mtp.0.* in its own final shard).
  const int64_t n_main_shards = opt.n_shards > 1 && config.n_mtp > 0 ? opt.n_shards - 1 : opt.n_shards;
  int64_t n_main = 0;
  for (const auto& s : specs) n_main += s.name.rfind("mtp.", 0) != 0;
  // Assign every tensor to a shard first, then generate and write one shard at a time so
  // at most one shard's bytes are in memory (full-width bench models are many gigabytes).
  std::vector<int64_t> shard_of(specs.size());
  int64_t i_main = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const bool is_mtp = specs[i].name.rfind("mtp.", 0) == 0;
    shard_of[i] = is_mtp && opt.n_shards > 1
                      ? opt.n_shards - 1
                      : std::min(n_main_shards - 1, i_main++ * n_main_shards / std::max<int64_t>(n_main, 1));
  }
  TensorFactory factory(opt.seed);
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  int64_t n_tensors = 0;
  char fname[64];
  for (int64_t k = 0; k < opt.n_shards; ++k) {
    io::SafetensorsWriter shard;
    for (size_t i = 0; i < specs.size(); ++i)
      if (shard_of[i] == k) write_tensor(factory, shard, config, specs[i]);
    std::snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)(k + 1), (long long)opt.n_shards);
    shard.write(dir + "/" + fname);
    for (const auto& n : shard.names()) weight_map[n] = fname;
    total += shard.data_bytes();
    n_tensors += int64_t(shard.names().size());
  }
  io::write_index(dir + "/model.safetensors.index.json", total, weight_map);
  std::ofstream cfg(dir + "/config.json");
  cfg << io::config_to_json(config);
  check(bool(cfg), dir + "/config.json: write failed");
  return n_tensors;
}

}  // namespace dsv4::model
