#include "model/weights.h"

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "model/inventory.h"

namespace dsv4::model {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Looks tensors up by name, checks them against the inventory, and produces views.
class Binder {
 public:
  // fp8_flags: where the FP8 weights' normal-code flags are kept (they must outlive the views).
  Binder(const io::Config& c, const io::Checkpoint& ckpt, std::vector<std::vector<uint64_t>>& fp8_flags)
      : ckpt_(ckpt), fp8_flags_(fp8_flags) {
    for (auto& s : expected_tensors(c)) specs_.emplace(s.name, std::move(s));
  }

  WeightView linear(const std::string& name) {
    const TensorSpec& spec = spec_of(name, TensorRole::kLinear);
    const int64_t n_out = spec.shape[0], n_in = spec.shape[1];
    const io::TensorInfo& t = ckpt_.get(name);
    WeightView w;
    w.name = name;
    w.n_out = n_out;
    w.n_in = n_in;
    w.data = t.data;
    switch (t.dtype) {
      case DType::F32: w.format = WeightFormat::F32; expect_shape(t, {n_out, n_in}); break;
      case DType::BF16: w.format = WeightFormat::BF16; expect_shape(t, {n_out, n_in}); break;
      case DType::F8_E4M3: {
        w.format = WeightFormat::FP8_BLOCK128;
        expect_shape(t, {n_out, n_in});
        w.scale = scale(name, {ceil_div(n_out, 128), ceil_div(n_in, 128)});
        attach_fp8_flags(w);
        break;
      }
      case DType::I8: {  // packed FP4 e2m1, two values per byte along the input dimension
        check(n_in % 32 == 0, t.file + ": tensor '" + name + "' is packed FP4 but its input width " +
                                  std::to_string(n_in) + " is not a multiple of 32");
        w.format = WeightFormat::FP4_BLOCK32;
        expect_shape(t, {n_out, n_in / 2});
        w.scale = scale(name, {n_out, n_in / 32});
        break;
      }
      default:
        throw Error(t.file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t.dtype)) +
                    ", expected F8_E4M3, I8 (packed FP4), BF16 or F32");
    }
    return w;
  }

  std::vector<float> vec(const std::string& name) {
    const TensorSpec& spec = spec_of(name, TensorRole::kVector);
    const io::TensorInfo& t = ckpt_.get(name);
    expect_shape(t, spec.shape);
    std::vector<float> out(size_t(t.numel()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = decode_float(t, i);
    return out;
  }

  std::vector<int32_t> index_table(const std::string& name, int64_t n_values) {
    const TensorSpec& spec = spec_of(name, TensorRole::kIndexTable);
    const io::TensorInfo& t = ckpt_.get(name);
    expect_shape(t, spec.shape);
    check(t.dtype == DType::I64 || t.dtype == DType::I32,
          t.file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t.dtype)) + ", expected I64 or I32");
    std::vector<int32_t> out(size_t(t.numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      if (t.dtype == DType::I64) std::memcpy(&v, t.data + 8 * i, 8);
      else { int32_t v32; std::memcpy(&v32, t.data + 4 * i, 4); v = v32; }
      check(v >= 0 && v < n_values, t.file + ": tensor '" + name + "' holds expert id " + std::to_string(v) +
                                        " outside [0, " + std::to_string(n_values) + ")");
      out[i] = int32_t(v);
    }
    return out;
  }

  // Every inventory entry must have been bound: catches a binder that forgets a tensor.
  void check_all_bound() const {
    for (const auto& [name, spec] : specs_)
      check(bound_.count(name) > 0, "internal: inventory tensor '" + name + "' was never bound");
  }

 private:
  const TensorSpec& spec_of(const std::string& name, TensorRole role) {
    auto it = specs_.find(name);
    check(it != specs_.end() && it->second.role == role, "internal: no inventory entry for '" + name + "'");
    bound_.insert(name);
    return it->second;
  }

  // The flags read every code once (fp8_flags_at_load says which weights get them).
  void attach_fp8_flags(WeightView& w) {
    if (!fp8_flags_at_load(w.name, ckpt_.residency())) return;
    fp8_flags_.push_back(fp8_normal_blocks(w));
    w.fp8_normal = fp8_flags_.back().data();
  }

  const uint8_t* scale(const std::string& weight_name, const std::vector<int64_t>& shape) {
    const std::string name = scale_name(weight_name);
    const io::TensorInfo& t = ckpt_.get(name);
    check(t.dtype == DType::F8_E8M0, t.file + ": tensor '" + name + "' has dtype " +
                                         std::string(dtype_name(t.dtype)) + ", expected F8_E8M0");
    expect_shape(t, shape);
    return t.data;
  }

  static void expect_shape(const io::TensorInfo& t, const std::vector<int64_t>& shape) {
    check(t.shape == shape, t.file + ": tensor '" + t.name + "' has shape " + shape_str(t.shape) +
                                ", expected " + shape_str(shape) + " from config.json");
  }

  static float decode_float(const io::TensorInfo& t, size_t i) {
    switch (t.dtype) {
      case DType::F32: return load_f32(t.data + 4 * i);
      case DType::BF16: return bf16_to_f32(load_u16(t.data + 2 * i));
      case DType::F16: return f16_to_f32(load_u16(t.data + 2 * i));
      default:
        throw Error(t.file + ": tensor '" + t.name + "' has dtype " + std::string(dtype_name(t.dtype)) +
                    ", expected BF16, F16 or F32");
    }
  }

  const io::Checkpoint& ckpt_;
  std::vector<std::vector<uint64_t>>& fp8_flags_;
  std::map<std::string, TensorSpec> specs_;
  std::set<std::string> bound_;
};

HcWeights bind_hc(Binder& b, const std::string& p, const std::string& which) {
  HcWeights hc;
  hc.fn = b.linear(p + ".hc_" + which + "_fn");
  hc.base = b.vec(p + ".hc_" + which + "_base");
  hc.scale = b.vec(p + ".hc_" + which + "_scale");
  return hc;
}

HcHeadWeights bind_hc_head(Binder& b, const std::string& p) {
  HcHeadWeights h;
  h.fn = b.linear(p + "hc_head_fn");
  h.base = b.vec(p + "hc_head_base");
  h.scale = b.vec(p + "hc_head_scale");
  return h;
}

CompressorWeights bind_compressor(Binder& b, const std::string& p, int64_t ratio, int64_t dim) {
  CompressorWeights cw;
  cw.ratio = ratio;
  cw.dim = dim;
  cw.overlap = ratio == 4;
  cw.wkv = b.linear(p + ".wkv.weight");
  cw.wgate = b.linear(p + ".wgate.weight");
  cw.ape = b.vec(p + ".ape");
  cw.norm = b.vec(p + ".norm.weight");
  return cw;
}

AttentionWeights bind_attention(Binder& b, const io::Config& c, const std::string& p, int64_t ratio) {
  AttentionWeights a;
  a.ratio = ratio;
  a.sink = b.vec(p + ".attn_sink");
  a.wq_a = b.linear(p + ".wq_a.weight");
  a.q_norm = b.vec(p + ".q_norm.weight");
  a.wq_b = b.linear(p + ".wq_b.weight");
  a.wkv = b.linear(p + ".wkv.weight");
  a.kv_norm = b.vec(p + ".kv_norm.weight");
  a.wo_a = b.linear(p + ".wo_a.weight");
  a.wo_b = b.linear(p + ".wo_b.weight");
  if (ratio != 0) a.compressor = bind_compressor(b, p + ".compressor", ratio, c.head_dim);
  if (ratio == 4) {
    a.index_wq_b = b.linear(p + ".indexer.wq_b.weight");
    a.index_weights_proj = b.linear(p + ".indexer.weights_proj.weight");
    a.index_compressor = bind_compressor(b, p + ".indexer.compressor", 4, c.index_head_dim);
  }
  return a;
}

ExpertWeights bind_expert(Binder& b, const std::string& p) {
  return {b.linear(p + ".w1.weight"), b.linear(p + ".w2.weight"), b.linear(p + ".w3.weight")};
}

MoeWeights bind_moe(Binder& b, const io::Config& c, const std::string& p, bool hash_routed) {
  MoeWeights m;
  m.hash_routed = hash_routed;
  m.gate = b.linear(p + ".gate.weight");
  if (hash_routed) m.tid2eid = b.index_table(p + ".gate.tid2eid", c.n_expert);
  else m.gate_bias = b.vec(p + ".gate.bias");
  for (int64_t e = 0; e < c.n_expert; ++e) m.experts.push_back(bind_expert(b, p + ".experts." + std::to_string(e)));
  m.has_shared = c.n_shared_expert > 0;
  if (m.has_shared) m.shared = bind_expert(b, p + ".shared_experts");
  return m;
}

BlockWeights bind_block(Binder& b, const io::Config& c, int64_t layer) {
  const std::string p = block_prefix(c, layer);
  BlockWeights w;
  w.layer = layer;
  w.hc_attn = bind_hc(b, p, "attn");
  w.hc_ffn = bind_hc(b, p, "ffn");
  w.attn_norm = b.vec(p + ".attn_norm.weight");
  w.ffn_norm = b.vec(p + ".ffn_norm.weight");
  w.attn = bind_attention(b, c, p + ".attn", c.compress_ratio(layer));
  w.ffn = bind_moe(b, c, p + ".ffn", layer < c.n_hash_layer);
  return w;
}

}  // namespace

std::unique_ptr<ModelWeights> bind_weights(io::Config config, std::unique_ptr<io::Checkpoint> ckpt) {
  auto mw = std::make_unique<ModelWeights>();
  mw->config = std::move(config);
  mw->checkpoint = std::move(ckpt);
  const io::Config& c = mw->config;
  Binder b(c, *mw->checkpoint, mw->fp8_normal_flags);
  mw->embed = b.linear("embed.weight");
  for (int64_t i = 0; i < c.n_layer; ++i) mw->layers.push_back(bind_block(b, c, i));
  mw->norm = b.vec("norm.weight");
  mw->head = b.linear("head.weight");
  mw->hc_head = bind_hc_head(b, "");
  for (int64_t m = 0; m < c.n_mtp; ++m) {
    const int64_t layer = c.n_layer + m;
    const std::string p = block_prefix(c, layer);
    MtpWeights mtp;
    mtp.block = bind_block(b, c, layer);
    mtp.e_proj = b.linear(p + ".e_proj.weight");
    mtp.h_proj = b.linear(p + ".h_proj.weight");
    mtp.enorm = b.vec(p + ".enorm.weight");
    mtp.hnorm = b.vec(p + ".hnorm.weight");
    mtp.norm = b.vec(p + ".norm.weight");
    mtp.hc_head = bind_hc_head(b, p + ".");
    mw->mtp.push_back(std::move(mtp));
  }
  b.check_all_bound();
  return mw;
}

bool is_routed_expert_tensor(const std::string& name) {
  return name.find(".ffn.experts.") != std::string::npos;
}

bool fp8_flags_at_load(const std::string& name, io::Residency resolved) {
  return resolved == io::Residency::kCopy || !is_routed_expert_tensor(name);
}

std::unique_ptr<ModelWeights> load_weights(const std::string& dir, io::Residency residency) {
  io::Config config = io::load_config(dir + "/config.json");
  return bind_weights(std::move(config), io::Checkpoint::open(dir, residency, is_routed_expert_tensor));
}

}  // namespace dsv4::model
