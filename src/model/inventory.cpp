#include "model/inventory.h"

namespace dsv4::model {

namespace {

struct Lister {
  std::vector<TensorSpec>& out;
  // A projection "<prefix>.weight" (+ "<prefix>.scale" when quantised).
  void linear(const std::string& prefix, DType dt, int64_t n_out, int64_t n_in) {
    out.push_back({prefix + ".weight", TensorRole::kLinear, dt, {n_out, n_in}});
  }
  // A matrix used as a projection but stored under a bare name (hc_*_fn), always F32.
  void matrix(const std::string& name, int64_t n_out, int64_t n_in) {
    out.push_back({name, TensorRole::kLinear, DType::F32, {n_out, n_in}});
  }
  void vec(const std::string& name, DType dt, std::vector<int64_t> shape) {
    out.push_back({name, TensorRole::kVector, dt, std::move(shape)});
  }
};

// The compressor of a CSA/HCA layer (main: d_c = head_dim) or of an indexer (d_c = index_head_dim).
// With ratio 4 each token projects to two halves (overlapping windows), hence coff = 2.
void list_compressor(Lister& l, const std::string& p, const io::Config& c, int64_t ratio, int64_t d_c) {
  const int64_t coff = ratio == 4 ? 2 : 1;
  l.vec(p + ".ape", DType::F32, {ratio, coff * d_c});
  l.linear(p + ".wkv", DType::BF16, coff * d_c, c.n_embd);
  l.linear(p + ".wgate", DType::BF16, coff * d_c, c.n_embd);
  l.vec(p + ".norm.weight", DType::BF16, {d_c});
}

void list_attention(Lister& l, const std::string& p, const io::Config& c, int64_t ratio) {
  const int64_t group_in = c.n_head * c.head_dim / c.o_groups;
  l.vec(p + ".attn_sink", DType::F32, {c.n_head});
  l.linear(p + ".wq_a", DType::F8_E4M3, c.q_lora_rank, c.n_embd);
  l.vec(p + ".q_norm.weight", DType::BF16, {c.q_lora_rank});
  l.linear(p + ".wq_b", DType::F8_E4M3, c.n_head * c.head_dim, c.q_lora_rank);
  l.linear(p + ".wkv", DType::F8_E4M3, c.head_dim, c.n_embd);
  l.vec(p + ".kv_norm.weight", DType::BF16, {c.head_dim});
  l.linear(p + ".wo_a", DType::F8_E4M3, c.o_groups * c.o_lora_rank, group_in);
  l.linear(p + ".wo_b", DType::F8_E4M3, c.n_embd, c.o_groups * c.o_lora_rank);
  if (ratio == 0) return;
  list_compressor(l, p + ".compressor", c, ratio, c.head_dim);
  if (ratio != 4) return;
  l.linear(p + ".indexer.wq_b", DType::F8_E4M3, c.index_n_head * c.index_head_dim, c.q_lora_rank);
  l.linear(p + ".indexer.weights_proj", DType::BF16, c.index_n_head, c.n_embd);
  list_compressor(l, p + ".indexer.compressor", c, 4, c.index_head_dim);
}

void list_moe(Lister& l, const std::string& p, const io::Config& c, bool hash_routed) {
  l.linear(p + ".gate", DType::BF16, c.n_expert, c.n_embd);
  if (hash_routed)
    l.out.push_back({p + ".gate.tid2eid", TensorRole::kIndexTable, DType::I64, {c.vocab_size, c.n_expert_used}});
  else
    l.vec(p + ".gate.bias", DType::F32, {c.n_expert});
  for (int64_t e = 0; e < c.n_expert; ++e) {
    const std::string ep = p + ".experts." + std::to_string(e);
    l.linear(ep + ".w1", DType::I8, c.n_ff_expert, c.n_embd);
    l.linear(ep + ".w2", DType::I8, c.n_embd, c.n_ff_expert);
    l.linear(ep + ".w3", DType::I8, c.n_ff_expert, c.n_embd);
  }
  if (c.n_shared_expert > 0) {
    const int64_t n_ff_shared = c.n_shared_expert * c.n_ff_expert;
    l.linear(p + ".shared_experts.w1", DType::F8_E4M3, n_ff_shared, c.n_embd);
    l.linear(p + ".shared_experts.w2", DType::F8_E4M3, c.n_embd, n_ff_shared);
    l.linear(p + ".shared_experts.w3", DType::F8_E4M3, n_ff_shared, c.n_embd);
  }
}

void list_hc(Lister& l, const std::string& p, const io::Config& c, const std::string& which) {
  const int64_t n_mix = (2 + c.hc_mult) * c.hc_mult;  // pre (hc) + post (hc) + comb (hc*hc)
  l.matrix(p + ".hc_" + which + "_fn", n_mix, c.hc_mult * c.n_embd);
  l.vec(p + ".hc_" + which + "_base", DType::F32, {n_mix});
  l.vec(p + ".hc_" + which + "_scale", DType::F32, {3});
}

void list_hc_head(Lister& l, const std::string& p, const io::Config& c) {
  l.matrix(p + "hc_head_fn", c.hc_mult, c.hc_mult * c.n_embd);
  l.vec(p + "hc_head_base", DType::F32, {c.hc_mult});
  l.vec(p + "hc_head_scale", DType::F32, {1});
}

void list_block(Lister& l, const io::Config& c, int64_t layer) {
  const std::string p = block_prefix(c, layer);
  list_hc(l, p, c, "attn");
  list_hc(l, p, c, "ffn");
  l.vec(p + ".attn_norm.weight", DType::BF16, {c.n_embd});
  l.vec(p + ".ffn_norm.weight", DType::BF16, {c.n_embd});
  list_attention(l, p + ".attn", c, c.compress_ratio(layer));
  list_moe(l, p + ".ffn", c, layer < c.n_hash_layer);
}

}  // namespace

std::string scale_name(const std::string& weight_name) {
  const std::string suffix = ".weight";
  if (weight_name.size() > suffix.size() &&
      weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weight_name.substr(0, weight_name.size() - suffix.size()) + ".scale";
  return weight_name + ".scale";
}

std::string block_prefix(const io::Config& c, int64_t layer) {
  if (layer < c.n_layer) return "layers." + std::to_string(layer);
  return "mtp." + std::to_string(layer - c.n_layer);
}

std::vector<TensorSpec> expected_tensors(const io::Config& c) {
  std::vector<TensorSpec> out;
  Lister l{out};
  l.linear("embed", DType::BF16, c.vocab_size, c.n_embd);
  for (int64_t i = 0; i < c.n_layer; ++i) list_block(l, c, i);
  l.vec("norm.weight", DType::BF16, {c.n_embd});
  l.linear("head", DType::BF16, c.vocab_size, c.n_embd);
  list_hc_head(l, "", c);
  for (int64_t m = 0; m < c.n_mtp; ++m) {
    const int64_t layer = c.n_layer + m;
    const std::string p = block_prefix(c, layer);
    list_block(l, c, layer);
    l.linear(p + ".e_proj", DType::F8_E4M3, c.n_embd, c.n_embd);
    l.linear(p + ".h_proj", DType::F8_E4M3, c.n_embd, c.n_embd);
    l.vec(p + ".enorm.weight", DType::BF16, {c.n_embd});
    l.vec(p + ".hnorm.weight", DType::BF16, {c.n_embd});
    l.vec(p + ".norm.weight", DType::BF16, {c.n_embd});
    list_hc_head(l, p + ".", c);
  }
  return out;
}

}  // namespace dsv4::model
