// The fast CPU backend: Highway SIMD kernels on native weight formats (dynamic dispatch
// over AVX-512 / AVX2 / SSE4 / portable fallback), threaded over output rows with a
// persistent pool. Ops without a fast kernel yet inherit the reference implementation.
// Every kernel is tested against RefOps (src/backend/tests/cpu_ops_test.cpp).
#pragma once

#include <memory>

#include "backend/ref/ref_ops.h"
#include "core/thread_pool.h"

namespace dsv4::backend {

class CpuOps : public RefOps {
 public:
  // threads <= 0: default_threads() (physical cores).
  explicit CpuOps(int threads = 0, Numerics numerics = Numerics::kExact);
  std::string name() const override { return "cpu"; }

  void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) override;
  void matmul_many(const MatmulJob* jobs, int64_t n_jobs) override;
  void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n, double limit,
              float* out) override;
  void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink, int64_t n_head,
                 int64_t head_dim, float scale, float* out) override;
  void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys, int64_t n_keys,
                    int64_t dim, float* score) override;
  // Rows split over the pool (each row is independent, results unchanged).
  void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) override;
  void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y) override;
  void parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override;

  void set_threads(int n) override;
  int threads() const override { return pool_->n_threads(); }
  ThreadPool& pool() { return *pool_; }

 private:
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace dsv4::backend
