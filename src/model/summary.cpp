#include "model/summary.h"

namespace dsv4::model {

ModelSummary summarize(const ModelWeights& w) {
  const io::Config& c = w.config;
  ModelSummary s;
  for (const io::TensorInfo* t : w.checkpoint->all()) {
    ++s.n_tensors;
    s.bytes_by_dtype[std::string(dtype_name(t->dtype))] += t->nbytes;
    s.total_bytes += t->nbytes;
    if (t->dtype == DType::F8_E8M0) continue;  // scales are not parameters
    const int64_t n = t->dtype == DType::I8 ? 2 * t->numel() : t->numel();  // I8 holds two FP4 values
    s.params_total += n;
    const bool mtp = t->name.rfind("mtp.", 0) == 0;
    if (mtp) { s.params_mtp += n; continue; }
    s.params_main += n;
    if (t->name.find(".ffn.experts.") != std::string::npos) s.params_routed_experts += n;
    if (t->name == "embed.weight") s.params_embed += n;
    if (t->name == "head.weight") s.params_head += n;
  }
  s.params_active = s.params_main - s.params_routed_experts +
                    (c.n_expert > 0 ? s.params_routed_experts * c.n_expert_used / c.n_expert : 0);
  return s;
}

}  // namespace dsv4::model
