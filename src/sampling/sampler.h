// Token sampling from logits: greedy at temperature 0, otherwise softmax at temperature T
// with optional nucleus (top-p) truncation, from a seeded generator (reproducible).
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace dsv4::sampling {

struct SamplerOptions {
  double temperature = 0.0;  // 0 = greedy (argmax, ties to the lower id)
  double top_p = 1.0;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& opt);  // throws dsv4::Error on invalid options
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace dsv4::sampling
