#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace dsv4::sampling {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplerOptions& opt) : opt_(opt), rng_(opt.seed) {
  check(std::isfinite(opt.temperature) && opt.temperature >= 0, "temperature must be a finite number >= 0");
  check(opt.top_p > 0 && opt.top_p <= 1, "top_p must be in (0, 1]");
}

int32_t Sampler::sample(std::span<const float> logits) {
  check(!logits.empty(), "cannot sample from empty logits");
  if (opt_.temperature == 0.0) return argmax(logits);
  const double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp((double(logits[i]) - m) / opt_.temperature));
  std::vector<int32_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = p.size();
  if (opt_.top_p < 1.0) {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] != p[size_t(b)] ? p[size_t(a)] > p[size_t(b)] : a < b; });
    double cum = 0;
    for (keep = 0; keep < order.size();) {
      cum += p[size_t(order[keep++])] / sum;
      if (cum >= opt_.top_p) break;
    }
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += p[size_t(order[i])];
  double u = std::uniform_real_distribution<double>(0.0, kept)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    u -= p[size_t(order[i])];
    if (u <= 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace dsv4::sampling
