// Highway SIMD kernels of the fast CPU backend, compiled for every x86 target Highway
// can build (AVX-512, AVX2, SSE4, SSSE3 and a portable emulated fallback) and chosen at
// run time by dynamic dispatch (the best one this CPU runs, unless force_isa says
// otherwise).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/thread_pool.h"
#include "core/weight.h"

namespace dsv4::backend {

// Restricts dynamic dispatch to one instruction set: "avx512", "avx2", "sse4", "scalar"
// (Highway's portable emulation), or "best" (undo: every target the CPU supports).
// "avx512-nobf16" (only on CPUs with AVX512_BF16) is avx512 with the fast numerics kept
// off the BF16 dot product: the path of AVX-512 CPUs without it.
// Returns false (and changes nothing) when the name is unknown or this CPU/binary cannot
// run it. Process-wide; meant for tests and benchmarks.
bool force_isa(const std::string& isa);
// The target the next kernel call runs on, in force_isa's spelling.
std::string current_isa();
// The force_isa names this CPU and binary can run, best first.
std::vector<std::string> available_isas();

namespace cpu {

// y[t, o] = sum_i W[o, i] * x[t, i] in exact numerics (fp32 activations, weights
// dequantised exactly in registers, fp32 accumulation). pool may be null (serial).
// numerics kFast: the activations are rounded with round_bf16_ftz first; on CPUs with
// AVX512_BF16 (and the avx512 target) BF16 and FP4 weights then use the BF16 dot product.
// numerics kInt8: FP4 products take activations quantised per 32-column block
// (quantize_int8_block) and multiply them with byte multiply-adds (avx2 and avx512
// targets; scalar rows elsewhere); every other format runs as in kExact.
void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool,
            Numerics numerics = Numerics::kExact);
// out[i] = round_bf16_ftz(x[i]) for i < n (the activation rounding of fast numerics), on
// the best SIMD target; bit-identical to the scalar function.
void round_bf16_ftz_rows(const float* x, int64_t n, float* out);
// Every job of a group as matmul would compute it (bit-identical), in one parallel region.
void matmul_many(const Ops::MatmulJob* jobs, int64_t n_jobs, ThreadPool* pool, Numerics numerics = Numerics::kExact);
// Ops::sum_squares and Ops::rms_norm on the calling thread, bit for bit the reference's.
void sum_squares(const float* x, int64_t n_rows, int64_t n, double* ss);
void rms_norm(const float* x, const float* weight, int64_t n_tok, int64_t n, float eps, float* y);
// Ops::swiglu on the calling thread, in double vectors (Highway's Exp, within 1 ulp of
// std::exp); a vector with a gate outside Exp's range or a result outside float's takes
// the reference's scalar formula.
void swiglu(const float* gate, const float* up, const float* row_weight, int64_t n_rows, int64_t n, double limit,
            float* out);
// Ops::attention and Ops::index_scores in fp32 (SIMD, threads over heads / key tiles).
void attention(const float* q, const float* const* keys, int64_t n_keys, const float* sink, int64_t n_head,
               int64_t head_dim, float scale, float* out, ThreadPool* pool);
void index_scores(const float* q, const float* head_weight, int64_t n_head, const float* keys, int64_t n_keys,
                  int64_t dim, float* score, ThreadPool* pool);

}  // namespace cpu
}  // namespace dsv4::backend
