// Mixture of experts: sqrt-softplus router with either a fixed token->experts hash table
// (first num_hash_layers blocks) or bias-corrected top-k selection, SwiGLU experts with
// clamping, and an always-on shared expert.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/ops.h"
#include "io/config.h"
#include "model/weights.h"

namespace dsv4::model {

// Routing decision for one token.
struct Route {
  std::vector<int32_t> experts;  // [n_expert_used] chosen expert ids, in selection order
  std::vector<float> weights;    // [n_expert_used] normalised weights * routed_scaling_factor
};

// Chooses experts for one token. scores: [n_expert] router affinities (after sqrt-softplus).
// Ties in score + bias go to the lower expert id (documented in docs/decisions.md).
Route route_token(const io::Config& c, const MoeWeights& w, const float* scores, int32_t token);

// out[t,:] = sum over chosen experts e (ascending id) of w_e * expert_e(x[t,:]) + shared(x[t,:])
//   x: [n_tok, n_embd], tokens: [n_tok] (hash routing), out: [n_tok, n_embd]
//   routes (optional): receives the routing decision per token.
void moe_forward(backend::Ops& ops, const io::Config& c, const MoeWeights& w, const float* x,
                 const int32_t* tokens, int64_t n_tok, float* out, std::vector<Route>* routes);

}  // namespace dsv4::model
