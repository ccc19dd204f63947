// The exact scalar path shared by every fast kernel (exact and fast numerics alike): one
// weight row dequantised with dequant_row, then an fp32 FMA dot product per token. Rows
// whose scales (E8M0 0 or 0xFF, overflowing weights) or codes (E4M3 NaN) the vector
// paths do not take come here, which reproduces the oracle's NaN/inf behaviour.
// Compiled for the baseline ISA in every file that includes it (no target attributes).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
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

// Int8 numerics: one block's integer dot product, 32 codes q against the 16 FP4 bytes
// of the same columns (low nibble first), with twice the E2M1 values.
inline int32_t int8_fp4_block_dot(const uint8_t* codes, const int8_t* q) {
  int32_t dot = 0;
  for (int64_t i = 0; i < kInt8Block; i += 2)
    dot += kE2M1Doubled[codes[i / 2] & 0xF] * q[i] + kE2M1Doubled[codes[i / 2] >> 4] * q[i + 1];
  return dot;
}

// Int8 numerics (ops.h) on one FP4 row, scalar: each 32-column block of x quantised on the
// spot (quantize_int8_block: the same codes and steps the vector kernel's prepared
// activations hold), the block's integer sum scaled by step * 2^(e-127) / 2 and summed in
// double, so rows with scales the vector kernel does not take (0, 0xFF, overflowing
// weights) keep the oracle's behaviour. Also the whole int8 path of targets without a
// vector FP4 kernel.
inline void int8_scalar_row(const WeightView& w, int64_t r, const float* x, int64_t t0, int64_t nt, float* y) {
  const int64_t n_blocks = w.n_in / kInt8Block;
  const uint8_t* codes = w.data + r * (w.n_in / 2);
  const uint8_t* scales = w.scale + r * n_blocks;
  int8_t q[kInt8Block];
  for (int64_t t = t0; t < t0 + nt; ++t) {
    double acc = 0.0;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const double step = quantize_int8_block(x + t * w.n_in + b * kInt8Block, q);
      acc += double(int8_fp4_block_dot(codes + b * kInt8Block / 2, q)) * step * double(e8m0_to_f32(scales[b]));
    }
    y[t * w.n_out + r] = float(acc * 0.5);
  }
}

}  // namespace dsv4::backend::cpu
