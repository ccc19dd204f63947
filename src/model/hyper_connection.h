// Manifold-constrained hyper-connections (mHC). The residual stream is hc_mult parallel
// copies per token; around each sub-layer, "pre" mixes them into one input vector and
// "post" writes the sub-layer output back into every copy through a Sinkhorn-normalised
// (nearly doubly stochastic) mixing matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/ops.h"
#include "io/config.h"
#include "model/weights.h"

namespace dsv4::model {

// Mixing coefficients produced by hc_pre for a batch of tokens.
struct HcMix {
  std::vector<float> post;  // [n_tok, hc]       weight of the sub-layer output in stream k
  std::vector<float> comb;  // [n_tok, hc, hc]   comb[j][k]: weight of old stream j in new stream k
};

// Projects the comb logits onto (nearly) doubly stochastic matrices, exactly as the
// reference: row softmax + eps, column normalise, then (iters-1) x (row, column) normalise,
// each normalisation dividing by (sum + eps). comb: [hc, hc], in place.
void sinkhorn(double* comb, int64_t hc, int64_t iters, double eps);

// streams: [n_tok, hc, n_embd] -> x: [n_tok, n_embd] (the collapsed sub-layer input), mix.
void hc_pre(backend::Ops& ops, const io::Config& c, const HcWeights& w, const float* streams,
            int64_t n_tok, float* x, HcMix& mix);

// out[t,k,:] = post[t,k] * f[t,:] + sum_j comb[t,j,k] * residual[t,j,:]
//   f: [n_tok, n_embd], residual/out: [n_tok, hc, n_embd]; out may be residual (in place:
//   each column reads its hc residual values before writing its hc outputs)
void hc_post(backend::Ops& ops, const io::Config& c, const float* f, const float* residual, const HcMix& mix,
             int64_t n_tok, float* out);

// Final head: streams [n_tok, hc, n_embd] -> y [n_tok, n_embd] with sigmoid mixing weights.
void hc_head(backend::Ops& ops, const io::Config& c, const HcHeadWeights& w, const float* streams,
             int64_t n_tok, float* y);

}  // namespace dsv4::model
