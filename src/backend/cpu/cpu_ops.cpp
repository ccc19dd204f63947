#include "backend/cpu/cpu_ops.h"

#include "backend/cpu/kernels.h"

namespace dsv4::backend {

CpuOps::CpuOps(int threads, Numerics numerics)
    : RefOps(numerics), pool_(std::make_unique<ThreadPool>(threads)) {}

void CpuOps::set_threads(int n) {
  const int want = n > 0 ? n : default_threads();
  if (want != pool_->n_threads()) pool_ = std::make_unique<ThreadPool>(want);
}

void CpuOps::matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) {
  cpu::matmul(w, x, n_tok, y, pool_.get(), numerics());
}

void CpuOps::matmul_many(const MatmulJob* jobs, int64_t n_jobs) {
  cpu::matmul_many(jobs, n_jobs, pool_.get(), numerics());
}

void CpuOps::attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink,
                       int64_t n_head, int64_t head_dim, float scale, float* out) {
  cpu::attention(q, keys, n_keys, sink, n_head, head_dim, scale, out, pool_.get());
}

// On the calling thread: the model runs the experts' activations inside its own
// parallel_rows over the experts.
void CpuOps::swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n,
                    double limit, float* out) {
  cpu::swiglu(gate, up, row_weight, n_rows, n, limit, out);
}
void CpuOps::parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || pool_->n_threads() == 1) return fn(0, n);  // decode: no wake-up for one row
  pool_->parallel_ranges(n, [&](int64_t begin, int64_t end, int) { fn(begin, end); });
}

void CpuOps::sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss) {
  parallel_rows(n_rows, [&](int64_t r0, int64_t r1) { cpu::sum_squares(x + r0 * n, r1 - r0, n, ss + r0); });
}
void CpuOps::rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y) {
  parallel_rows(n_tok, [&](int64_t t0, int64_t t1) { cpu::rms_norm(x + t0 * n, weight, t1 - t0, n, eps, y + t0 * n); });
}

void CpuOps::index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys,
                          int64_t n_keys, int64_t dim, float* score) {
  cpu::index_scores(q, head_weight, n_head, keys, n_keys, dim, score, pool_.get());
}

}  // namespace dsv4::backend
