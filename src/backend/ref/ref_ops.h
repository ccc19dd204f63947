// The scalar reference backend: readable loops, double accumulation. Slow by design;
// it is the oracle every fast kernel is tested against.
#pragma once

#include "backend/ops.h"

namespace dsv4::backend {

// Ops::sum_squares of one row: x[i]^2 (exact in double) into partial sum i % 8 in order
// of i, then ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)). Eight partial sums let a
// vector kernel of 1, 2, 4 or 8 double lanes keep this order (the one sequential sum made
// each norm wait on 4096-16384 dependent additions).
double sum_squares_row(const float* x, int64_t n);

// Ops::rms_norm of one row, given its sum of squares: y[i] = rms_norm_element(x[i], r,
// weight, i) with r = rms_factor(ss, n, eps) = 1 / sqrt(ss / n + eps), all in double.
double rms_factor(double ss, int64_t n, float eps);
inline float rms_norm_element(float x, double r, const float* weight, int64_t i) {
  return float(double(x) * r * (weight ? double(weight[i]) : 1.0));
}

// Ops::swiglu of one element, the reference's steps (also the fast kernel's path for the
// lanes its vector exp does not cover).
float swiglu_element(float gate, float up, double limit, double row_weight);

class RefOps : public Ops {
 public:
  // numerics: kFast rounds each matmul's activations with round_bf16_ftz first (the
  // oracle of the fast cpu kernels); kInt8 quantises the activations of FP4 products
  // (ops.h); everything else is the same in every mode.
  explicit RefOps(Numerics numerics = Numerics::kExact) : numerics_(numerics) {}
  std::string name() const override { return "ref"; }
  Numerics numerics() const { return numerics_; }
  void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) override;
  void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) override;
  void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps,
                float* y) override;
  void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n, double limit,
              float* out) override;
  void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
                 int64_t n_head, int64_t head_dim, float scale, float* out) override;
  void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys,
                    int64_t n_keys, int64_t dim, float* score) override;

 private:
  Numerics numerics_;
};

}  // namespace dsv4::backend
