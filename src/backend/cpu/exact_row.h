// The exact scalar path shared by every fast kernel (exact and fast numerics alike): one
// weight row dequantised with dequant_row, then an fp32 FMA dot product per token. Rows
// whose scales (E8M0 0 or 0xFF, overflowing weights) or codes (E4M3 NaN) the vector
// paths do not take come here, which reproduces the oracle's NaN/inf behaviour.
// Compiled for the baseline ISA in every file that includes it (no target attributes).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/weight.h"

namespace dsv4::backend::cpu {

// y[t * w.n_out + r] for tokens [t0, t0 + nt); x: [n_tok, w.n_in] in natural order.
inline void exact_scalar_row(const WeightView& w, int64_t r, const float* x, int64_t t0, int64_t nt, float* y) {
  thread_local std::vector<float> row;  // [n_in] the dequantised row
  row.resize(size_t(w.n_in));
  w.dequant_row(r, row.data());
  for (int64_t t = t0; t < t0 + nt; ++t) {
    const float* xt = x + t * w.n_in;
    float acc = 0.0f;
    for (int64_t i = 0; i < w.n_in; ++i) acc = std::fma(row[size_t(i)], xt[i], acc);
    y[t * w.n_out + r] = acc;
  }
}

}  // namespace dsv4::backend::cpu
