#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace dsv4::model {

namespace {

// The YaRN correction dimension for a given number of rotations over the original context.
double correction_dim(double n_rot, int64_t rope_dim, double theta, double orig_len) {
  return double(rope_dim) * std::log(orig_len / (n_rot * 2.0 * M_PI)) / (2.0 * std::log(theta));
}

}  // namespace

Rope::Rope(const io::Config& c, double theta, bool yarn) : rope_dim_(c.rope_dim) {
  const int64_t n_pair = rope_dim_ / 2;
  inv_freq_.resize(size_t(n_pair));
  for (int64_t i = 0; i < n_pair; ++i) inv_freq_[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(rope_dim_));
  if (!yarn || c.rope_original_max_pos <= 0 || c.rope_factor == 1.0) return;
  // Pairs below `low` rotate fast enough to keep their frequency, pairs above `high` are
  // interpolated by `factor`, the ones between blend linearly.
  const double orig = double(c.rope_original_max_pos);
  double low = std::max(std::floor(correction_dim(c.rope_beta_fast, rope_dim_, theta, orig)), 0.0);
  double high = std::min(std::ceil(correction_dim(c.rope_beta_slow, rope_dim_, theta, orig)), double(rope_dim_ - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < n_pair; ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double keep = 1.0 - ramp;
    const double f = inv_freq_[size_t(i)];
    inv_freq_[size_t(i)] = f / c.rope_factor * (1.0 - keep) + f * keep;
  }
}

void Rope::apply_all(float* x, int64_t n_vec, int64_t dim, int64_t pos, bool inverse) const {
  const size_t n_pair = inv_freq_.size();
  thread_local std::vector<double> cs, sn;  // [n_pair] each
  cs.resize(n_pair);
  sn.resize(n_pair);
  for (size_t i = 0; i < n_pair; ++i) {
    const double angle = double(pos) * inv_freq_[i];
    cs[i] = std::cos(angle);
    sn[i] = inverse ? -std::sin(angle) : std::sin(angle);
  }
  for (int64_t v = 0; v < n_vec; ++v) {
    float* r = x + v * dim + (dim - rope_dim_);
    for (size_t i = 0; i < n_pair; ++i) {
      const double a = r[2 * i], b = r[2 * i + 1];
      r[2 * i] = float(a * cs[i] - b * sn[i]);
      r[2 * i + 1] = float(a * sn[i] + b * cs[i]);
    }
  }
}

void Rope::apply(float* x, int64_t dim, int64_t pos, bool inverse) const { apply_all(x, 1, dim, pos, inverse); }

}  // namespace dsv4::model
