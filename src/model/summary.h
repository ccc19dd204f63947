// Parameter and byte counts of a bound model, for `dsv4 inspect`.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model/weights.h"

namespace dsv4::model {

struct ModelSummary {
  int64_t n_tensors = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;  // safetensors dtype name -> bytes
  uint64_t total_bytes = 0;
  // Parameters (an FP4 value counts as one parameter; quantisation scales are not counted).
  int64_t params_total = 0;           // everything, MTP included
  int64_t params_main = 0;            // main model without MTP
  int64_t params_routed_experts = 0;  // main model routed experts
  int64_t params_mtp = 0;
  int64_t params_embed = 0, params_head = 0;
  int64_t params_active = 0;          // per token in the main model: n_expert_used of n_expert experts
};

ModelSummary summarize(const ModelWeights& w);

}  // namespace dsv4::model
