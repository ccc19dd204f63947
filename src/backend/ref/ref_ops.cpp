#include "backend/ref/ref_ops.h"

#include "core/dtype.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv4::backend {

namespace {

// Int8 numerics on an FP4 weight: per 32-column block the integer sum of the activation
// codes times twice the E2M1 weights, times step * 2^(e-127) / 2, summed in double.
void matmul_fp4_int8(const WeightView& w, const float* x, int64_t n_tok, float* y) {
  const int64_t n_blocks = w.n_in / kInt8Block;
  std::vector<int8_t> q(size_t(w.n_in));       // [n_in] codes of one token
  std::vector<float> step(static_cast<size_t>(n_blocks));  // [n_blocks]
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t b = 0; b < n_blocks; ++b)
      step[size_t(b)] = quantize_int8_block(x + t * w.n_in + b * kInt8Block, q.data() + b * kInt8Block);
    for (int64_t o = 0; o < w.n_out; ++o) {
      const uint8_t* codes = w.data + o * (w.n_in / 2);
      const uint8_t* scales = w.scale + o * n_blocks;
      double acc = 0.0;
      for (int64_t b = 0; b < n_blocks; ++b) {
        int64_t dot = 0;
        for (int64_t i = b * kInt8Block; i < (b + 1) * kInt8Block; ++i) {
          const uint8_t nibble = i % 2 == 0 ? codes[i / 2] & 0xF : codes[i / 2] >> 4;
          dot += int64_t(kE2M1Doubled[nibble]) * q[size_t(i)];
        }
        acc += double(dot) * double(step[size_t(b)]) * double(e8m0_to_f32(scales[b])) * 0.5;
      }
      y[t * w.n_out + o] = float(acc);
    }
  }
}

}  // namespace

void RefOps::matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) {
  if (numerics_ == Numerics::kInt8 && w.format == WeightFormat::FP4_BLOCK32) {
    matmul_fp4_int8(w, x, n_tok, y);
    return;
  }
  std::vector<float> row(size_t(w.n_in));  // [n_in] one dequantised weight row
  for (int64_t o = 0; o < w.n_out; ++o) {
    w.dequant_row(o, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * w.n_in;
      double acc = 0.0;
      for (int64_t i = 0; i < w.n_in; ++i) {
        const float xi = numerics_ == Numerics::kFast ? round_bf16_ftz(xt[i]) : xt[i];
        acc += double(row[size_t(i)]) * double(xi);
      }
      y[t * w.n_out + o] = float(acc);
    }
  }
}

double sum_squares_row(const float* x, int64_t n) {
  double p[8] = {};
  for (int64_t i = 0; i < n; ++i) p[i % 8] += double(x[i]) * double(x[i]);
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

double rms_factor(double ss, int64_t n, float eps) { return 1.0 / std::sqrt(ss / double(n) + double(eps)); }

void RefOps::sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) {
  for (int64_t r = 0; r < n_rows; ++r) ss[r] = sum_squares_row(x + r * n, n);
}

void RefOps::rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps,
                      float* y) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * n;
    const double r = rms_factor(sum_squares_row(xt, n), n, eps);
    float* yt = y + t * n;
    for (int64_t i = 0; i < n; ++i) yt[i] = rms_norm_element(xt[i], r, weight, i);
  }
}

float swiglu_element(float gate, float up, double limit, double row_weight) {
  double g = gate, u = up;
  if (limit > 0) {  // gate clamped from above only, up on both sides
    g = std::min(g, limit);
    u = std::clamp(u, -limit, limit);
  }
  const double silu = g / (1.0 + std::exp(-g));
  return float(silu * u * row_weight);
}

void RefOps::swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n,
                    double limit, float* out) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = swiglu_element(gate[r * n + i], up[r * n + i], limit, row_weight[r]);
}

void RefOps::attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
                       int64_t n_head, int64_t head_dim, float scale, float* out) {
  std::vector<double> logit(static_cast<size_t>(n_keys));  // [n_keys] for one head
  std::vector<double> acc(static_cast<size_t>(head_dim));   // [head_dim]
  for (int64_t h = 0; h < n_head; ++h) {
    const float* qh = q + h * head_dim;
    double m = -INFINITY;
    for (int64_t k = 0; k < n_keys; ++k) {
      double dot = 0.0;
      for (int64_t i = 0; i < head_dim; ++i) dot += double(qh[i]) * double(keys[k][i]);
      logit[size_t(k)] = double(scale) * dot;
      m = std::max(m, logit[size_t(k)]);
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    double denom = std::exp(double(sink[h]) - m);  // the sink joins the denominator only
    for (int64_t k = 0; k < n_keys; ++k) {
      const double p = std::exp(logit[size_t(k)] - m);
      denom += p;
      for (int64_t i = 0; i < head_dim; ++i) acc[size_t(i)] += p * double(keys[k][i]);
    }
    for (int64_t i = 0; i < head_dim; ++i) out[h * head_dim + i] = float(acc[size_t(i)] / denom);
  }
}

void RefOps::index_scores(const float* q, const float* head_weight, int64_t n_head,
                          const float* keys, int64_t n_keys, int64_t dim, float* score) {
  for (int64_t j = 0; j < n_keys; ++j) {
    double s = 0.0;
    for (int64_t h = 0; h < n_head; ++h) {
      double dot = 0.0;
      for (int64_t i = 0; i < dim; ++i) dot += double(q[h * dim + i]) * double(keys[j * dim + i]);
      s += std::max(dot, 0.0) * double(head_weight[h]);
    }
    score[j] = float(s);
  }
}

}  // namespace dsv4::backend
