// Weight products of the `fast` numerics on the AVX-512 BF16 dot product (VDPBF16PS):
// activations are bfloat16 (already rounded with round_bf16_ftz), BF16, FP4 E2M1 and
// FP8 E4M3 weights are exact in bfloat16, each product is exact and the sums are fp32.
//
// Its functions carry AVX-512 BF16 target attributes (Highway 1.0 has no target with
// it); call nothing here unless available() is true. The driver in matmul.cpp uses it on
// the avx512 target for the weights handles() accepts (BF16, FP4, FP8 with VBMI); every
// other case runs the exact kernels on the rounded activations, which is the same
// arithmetic up to the order of the fp32 sums.
#pragma once

#include <cstdint>

#include "core/weight.h"

namespace dsv4::backend::cpu::bf16dot {

// True when this CPU has AVX512F/BW/VL and AVX512_BF16 (and the OS saves zmm state).
bool available();
// True for the weights with a kernel here: BF16, FP4_BLOCK32, and FP8_BLOCK128 with
// whole 64-column chunks on CPUs that also have AVX512_VBMI.
bool handles(const WeightView& w);

// bfloat16 words per token of the activation layout of w (a multiple of 32).
int64_t prep_words(const WeightView& w);
// One token's activations x [w.n_in], rounded to bf16 words as round_bf16_ftz rounds
// (x may already be rounded: the conversion is then exact), into the layout of w's
// kernel, xb [prep_words(w)]:
//   BF16: columns in order;
//   FP4:  per 128-column chunk, four runs of 32 words, run k holding columns 4j + k
//         (the order in which a 64-byte chunk's nibbles come out of one word shift);
//   FP8:  per 64-column chunk, run A (32 words) holding columns 16L + i and run B
//         columns 16L + 8 + i, L < 4, i < 8 (the order of the byte unpacks).
// Columns past the last whole chunk (FP4) stay in order; padding is zero.
void prep(const WeightView& w, const float* x, uint16_t* xb);
// The same layouts in plain scalar steps (the statement prep is tested against).
void prep_reference(const WeightView& w, const float* x, uint16_t* xb);

// y[t * w.n_out + r] for rows [r0, r1) and tokens [0, n_tok):
//   xb [n_tok, ldxb] from prep, xr [n_tok, w.n_in] the same activations as floats,
//   rounded or not (the tails and the rows whose scales need the exact scalar path round
//   them with round_bf16_ftz as they read them, as prep does).
// Each (row, token) is summed in the same order whatever n_tok and [r0, r1): batch
// invariant like the exact kernels. With more than 4 tokens FP8 rows are decoded once per
// row block into a bf16 panel whose kernel repeats the same steps (see bf16dot.cpp);
// x_prescalable (activations_prescalable of the same xb, computed once per product) lets
// those panels store the weights times their block scales.
void rows(const WeightView& w, const uint16_t* xb, int64_t ldxb, const float* xr, int64_t n_tok, float* y,
          int64_t r0, int64_t r1, bool x_prescalable);
// True when every nonzero activation word of xb [n_tok, ldxb] has an exponent within the
// range for which prescaled FP8 panels keep the decode kernel's bits (bf16dot.cpp).
bool activations_prescalable(const uint16_t* xb, int64_t ldxb, int64_t n_tok);

// Peak-rate probe for benchmarks: iters x 16 independent VDPBF16PS; returns the FLOP
// done (2 per multiply-add) and stores a result in *sink so nothing is optimised away.
double burn(int64_t iters, float* sink);

}  // namespace dsv4::backend::cpu::bf16dot
