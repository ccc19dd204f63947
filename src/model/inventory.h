// The tensor inventory of a DeepSeek-V4 checkpoint as a function of its config: every
// published tensor name with its dtype and shape. One list drives both the loader's
// shape checks and the tiny-model generator, so the two can never disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/config.h"

namespace dsv4::model {

// What kind of tensor an inventory entry is; decides which dtypes the loader accepts.
enum class TensorRole : uint8_t {
  kLinear,     // a [out, in] projection: FP8 (+ .scale), FP4 in I8 (+ .scale), BF16 or F32
  kVector,     // small float vector/matrix (norm weights, biases, ape, sink, hc params): BF16/F16/F32
  kIndexTable, // tid2eid: I64 or I32
};

struct TensorSpec {
  std::string name;              // full tensor name; for kLinear the weight tensor
  TensorRole role = TensorRole::kVector;
  DType dtype = DType::F32;      // the dtype the official checkpoint uses
  std::vector<int64_t> shape;    // logical shape ([out, in] for linears, unpacked)
};

// Linear layers are listed once by their weight tensor ("layers.0.attn.wq_a.weight"); FP8
// and FP4 ones also have a scale tensor (scale_name()). Official dtypes: F8_E4M3 for FP8
// linears, I8 for FP4 experts, BF16 for plain ones, F32 for the hc_*_fn mixing matrices.
std::vector<TensorSpec> expected_tensors(const io::Config& c);

// "<prefix>.scale" for "<prefix>.weight", else "<name>.scale".
std::string scale_name(const std::string& weight_name);

// Prefix of block `layer` ("layers.3" or, for layer >= n_layer, "mtp.<layer - n_layer>").
std::string block_prefix(const io::Config& c, int64_t layer);

}  // namespace dsv4::model
