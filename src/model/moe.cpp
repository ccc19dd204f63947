#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace dsv4::model {

namespace {

// sqrt(softplus(z)); softplus returns z itself above 20 like PyTorch's default threshold.
double sqrt_softplus(double z) { return std::sqrt(z > 20.0 ? z : std::log1p(std::exp(z))); }

// Runs one SwiGLU expert on m gathered rows and adds weight[r] * result into acc rows.
//   xs: [m, n_embd] inputs, weight: [m] per-row routing weight (1 for the shared expert),
//   acc: [n_tok, n_embd] double accumulators, rows: [m] destination row of each input row.
void run_expert(backend::Ops& ops, const io::Config& c, const ExpertWeights& e, const std::vector<float>& xs,
                const std::vector<float>& weight, const std::vector<int64_t>& rows, std::vector<double>& acc) {
  const int64_t m = int64_t(rows.size()), n_ff = e.w1.n_out, d = c.n_embd;
  std::vector<float> gate(size_t(m * n_ff)), up(size_t(m * n_ff)), down(size_t(m * d));
  ops.matmul(e.w1, xs.data(), m, gate.data());
  ops.matmul(e.w3, xs.data(), m, up.data());
  const double limit = c.swiglu_limit;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < n_ff; ++i) {
      double g = gate[size_t(r * n_ff + i)], u = up[size_t(r * n_ff + i)];
      if (limit > 0) {  // gate clamped from above only, up on both sides
        g = std::min(g, limit);
        u = std::clamp(u, -limit, limit);
      }
      const double silu = g / (1.0 + std::exp(-g));
      gate[size_t(r * n_ff + i)] = float(silu * u * double(weight[size_t(r)]));  // routing weight before w2
    }
  }
  ops.matmul(e.w2, gate.data(), m, down.data());
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < d; ++i) acc[size_t(rows[size_t(r)] * d + i)] += double(down[size_t(r * d + i)]);
}

}  // namespace

Route route_token(const io::Config& c, const MoeWeights& w, const float* scores, int32_t token) {
  const int64_t k = c.n_expert_used;
  Route r;
  if (w.hash_routed) {
    r.experts.assign(w.tid2eid.begin() + int64_t(token) * k, w.tid2eid.begin() + (int64_t(token) + 1) * k);
  } else {
    std::vector<int32_t> order(size_t(c.n_expert));
    std::iota(order.begin(), order.end(), 0);
    auto biased = [&](int32_t e) { return double(scores[e]) + double(w.gate_bias[size_t(e)]); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      const double sa = biased(a), sb = biased(b);
      return sa != sb ? sa > sb : a < b;  // exact ties: lower expert id first
    });
    r.experts.assign(order.begin(), order.begin() + k);
  }
  double sum = 0.0;
  for (int32_t e : r.experts) sum += double(scores[e]);  // bias is for selection only
  for (int32_t e : r.experts) r.weights.push_back(float(double(scores[e]) / sum * c.routed_scaling_factor));
  return r;
}

void moe_forward(backend::Ops& ops, const io::Config& c, const MoeWeights& w, const float* x,
                 const int32_t* tokens, int64_t n_tok, float* out, std::vector<Route>* routes) {
  const int64_t d = c.n_embd;
  std::vector<float> logits(size_t(n_tok * c.n_expert));  // [n_tok, n_expert]
  ops.matmul(w.gate, x, n_tok, logits.data());
  for (auto& z : logits) z = float(sqrt_softplus(double(z)));

  // Group tokens by expert so each expert's weights are read once per batch. A duplicate
  // expert in one token's hash row counts once with the later weight, as the reference's
  // indexed assignment does.
  std::map<int32_t, std::map<int64_t, float>> by_expert;  // expert -> (token row -> weight)
  if (routes) routes->assign(size_t(n_tok), Route{});
  for (int64_t t = 0; t < n_tok; ++t) {
    Route r = route_token(c, w, logits.data() + t * c.n_expert, tokens[t]);
    for (size_t i = 0; i < r.experts.size(); ++i) by_expert[r.experts[i]][t] = r.weights[i];
    if (routes) (*routes)[size_t(t)] = std::move(r);
  }

  std::vector<double> acc(size_t(n_tok * d), 0.0);  // [n_tok, n_embd]
  for (const auto& [e, rows_w] : by_expert) {  // ascending expert id
    std::vector<int64_t> rows;
    std::vector<float> weight, xs;
    for (const auto& [row, wt] : rows_w) {
      rows.push_back(row);
      weight.push_back(wt);
      xs.insert(xs.end(), x + row * d, x + (row + 1) * d);
    }
    run_expert(ops, c, w.experts[size_t(e)], xs, weight, rows, acc);
  }
  if (w.has_shared) {
    std::vector<int64_t> rows(static_cast<size_t>(n_tok));
    std::iota(rows.begin(), rows.end(), 0);
    run_expert(ops, c, w.shared, std::vector<float>(x, x + n_tok * d), std::vector<float>(size_t(n_tok), 1.0f),
               rows, acc);
  }
  for (size_t i = 0; i < acc.size(); ++i) out[i] = float(acc[i]);
}

}  // namespace dsv4::model
