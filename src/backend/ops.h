// The narrow op interface between the model and the kernels. The model (src/model) calls
// only these; `ref` implements them as plain scalar C++ (the oracle every fast kernel is
// tested against), `cpu` is the fast SIMD/threaded implementation.
//
// Conventions: activations are float32, row-major, one row per token.
// Weights are WeightViews in their native checkpoint format, [n_out, n_in].
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/weight.h"

namespace dsv4::backend {

// How activations are represented inside the weight products (matmul / matmul_many).
//   exact: fp32 activations times exactly dequantised weights (the golden-test mode).
//   fast:  each product's activations are first rounded to bfloat16 (round_bf16_ftz in
//          core/dtype.h: nearest-even, subnormals flushed), weights stay exact, products
//          are exact and accumulate in fp32. What the official model runs; lets the cpu
//          backend use the AVX-512 BF16 dot product. Attention, the indexer, norms and
//          everything else stay fp32. Its accuracy is measured in docs/numerics.md.
//   int8:  the FP4 (routed expert) products take 8-bit activations: each 32-column block of
//          x (the block of one FP4 scale) becomes int8 codes and an fp32 step
//          (quantize_int8_block in core/dtype.h); the block's dot product is an exact
//          integer sum of codes times twice the E2M1 weights, scaled by step * 2^(e-127) / 2
//          and accumulated in fp32. Every other product is exact. It lets CPUs without a
//          BF16 dot product (AVX2) multiply FP4 weights with byte multiply-adds near the
//          speed of memory; its accuracy is measured in docs/numerics.md.
enum class Numerics { kExact, kFast, kInt8 };
// "exact" / "fast" / "int8"; nullopt for anything else.
std::optional<Numerics> parse_numerics(const std::string& name);
const char* numerics_name(Numerics n);
// The accepted names for messages: "exact, fast or int8".
const char* numerics_choices();

class Ops {
 public:
  virtual ~Ops() = default;
  virtual std::string name() const = 0;

  // y[t, o] = sum_i W[o, i] * x[t, i]
  //   x: [n_tok, w.n_in], y: [n_tok, w.n_out]
  virtual void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) = 0;

  // One independent product of a group (see matmul_many).
  struct MatmulJob {
    const WeightView* w;
    const float* x;  // [n_tok, w->n_in]
    int64_t n_tok;
    float* y;        // [n_tok, w->n_out]
  };
  // Several independent products, e.g. the gate and up projections of every expert a
  // token batch uses: a backend may run them in one parallel region instead of one
  // barrier per matrix. Results equal calling matmul on each job. Default: one by one.
  virtual void matmul_many(const MatmulJob* jobs, int64_t n_jobs) {
    for (int64_t i = 0; i < n_jobs; ++i) matmul(*jobs[i].w, jobs[i].x, jobs[i].n_tok, jobs[i].y);
  }

  // ss[r] = sum_i x[r, i]^2 in double, in one fixed order (sum_squares_row in
  // ref/ref_ops.h: eight interleaved partial sums, then a fixed tree), so that every
  // backend returns the same bits.
  //   x: [n_rows, n], ss: [n_rows]
  virtual void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) = 0;

  // y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight   (weight == nullptr: no weight),
  // the mean from sum_squares, every product in double, rounded once to float.
  //   x, y: [n_tok, n] (may alias), weight: [n]
  virtual void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps,
                        float* y) = 0;

  // The gated activation of the experts (SwiGLU with the V4 clamp), per element
  //   out[r, i] = silu(min(g, limit)) * clamp(u, -limit, limit) * row_weight[r]
  // with g = gate[r, i], u = up[r, i], silu(z) = z / (1 + exp(-z)), evaluated in double
  // and rounded once to float; limit <= 0: neither input is clamped.
  //   gate, up, out: [n_rows, n] (out may alias gate or up), row_weight: [n_rows]
  virtual void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n,
                      double limit, float* out) = 0;

  // Attention of one query position over an explicit key list, K = V (one shared latent),
  // with a per-head sink logit that joins only the softmax denominator:
  //   l[h, k] = scale * q[h, :] . key_k;  m = max_k l[h, k]
  //   out[h, :] = sum_k exp(l[h,k]-m) key_k / (sum_k exp(l[h,k]-m) + exp(sink[h]-m))
  //   q: [n_head, head_dim], keys: n_keys pointers to [head_dim] rows, sink: [n_head],
  //   out: [n_head, head_dim]. n_keys >= 1.
  virtual void attention(const float* q, const float* const* keys, int64_t n_keys,
                         const float* sink, int64_t n_head, int64_t head_dim, float scale,
                         float* out) = 0;

  // Lightning-indexer scores of one query over compressed keys:
  //   score[j] = sum_h relu(q[h, :] . keys[j, :]) * head_weight[h]
  //   q: [n_head, dim], head_weight: [n_head], keys: [n_keys, dim] contiguous, score: [n_keys]
  virtual void index_scores(const float* q, const float* head_weight, int64_t n_head,
                            const float* keys, int64_t n_keys, int64_t dim, float* score) = 0;

  // fn(begin, end) over ranges covering [0, n), possibly on several threads at once: the
  // row-wise glue of the forward pass (mHC mixing, SwiGLU, RoPE, MoE sums), where every
  // index writes only its own outputs, so the result does not depend on the split.
  // Default: one call on the calling thread.
  virtual void parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n > 0) fn(0, n);
  }

  // Worker threads used by the kernels (n <= 0: physical cores). Backends without
  // threads ignore it and report 1.
  virtual void set_threads(int n) { (void)n; }
  virtual int threads() const { return 1; }
};

// Forwards every call to another Ops: the base of decorators (benchmark counters, test
// perturbations) that override only what they observe.
class ForwardingOps : public Ops {
 public:
  explicit ForwardingOps(std::unique_ptr<Ops> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    inner_->matmul(w, x, n_tok, y);
  }
  void matmul_many(const MatmulJob* jobs, int64_t n_jobs) override { inner_->matmul_many(jobs, n_jobs); }
  void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) override {
    inner_->sum_squares(x, n_rows, n, ss);
  }
  void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y) override {
    inner_->rms_norm(x, weight, n_tok, n, eps, y);
  }
  void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n, double limit,
              float* out) override {
    inner_->swiglu(gate, up, row_weight, n_rows, n, limit, out);
  }
  void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink, int64_t n_head,
                 int64_t head_dim, float scale, float* out) override {
    inner_->attention(q, keys, n_keys, sink, n_head, head_dim, scale, out);
  }
  void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys, int64_t n_keys,
                    int64_t dim, float* score) override {
    inner_->index_scores(q, head_weight, n_head, keys, n_keys, dim, score);
  }
  void parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override {
    inner_->parallel_rows(n, fn);
  }
  void set_threads(int n) override { inner_->set_threads(n); }
  int threads() const override { return inner_->threads(); }

 protected:
  Ops& inner() { return *inner_; }
  const Ops& inner() const { return *inner_; }

 private:
  std::unique_ptr<Ops> inner_;
};

// "ref" (scalar oracle) or "cpu" (fast). Throws dsv4::Error for an unknown name.
std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics = Numerics::kExact);
// The same with a thread count for threaded backends (threads <= 0: physical cores).
std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics, int threads);

}  // namespace dsv4::backend
