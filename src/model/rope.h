// Rotary position embedding as DeepSeek-V4 uses it: interleaved adjacent pairs
// (x[2i], x[2i+1]) of the LAST rope_dim channels of a vector, rotated by pos * freq[i].
// Sliding-window layers use rope_theta without YaRN; compressed layers (and their
// indexer) use compress_rope_theta with YaRN frequency blending (no magnitude scaling).
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"

namespace dsv4::model {

class Rope {
 public:
  // rope_dim: rotated channels (even); yarn: apply the config's YaRN blending.
  Rope(const io::Config& c, double theta, bool yarn);

  // Frequencies per rotated pair, [rope_dim / 2].
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  // Rotates the last rope_dim channels of x[0..dim) by position pos (inverse: by -pos).
  void apply(float* x, int64_t dim, int64_t pos, bool inverse = false) const;
  // The same rotation of n_vec vectors x[n_vec, dim] at one position: the cosines and
  // sines are computed once for all of them (a query's 64 heads), same values as apply.
  void apply_all(float* x, int64_t n_vec, int64_t dim, int64_t pos, bool inverse = false) const;

 private:
  int64_t rope_dim_;
  std::vector<double> inv_freq_;
};

}  // namespace dsv4::model
