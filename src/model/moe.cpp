#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "model/scratch.h"

namespace dsv4::model {

namespace {

// sqrt(softplus(z)); softplus returns z itself above 20 like PyTorch's default threshold.
double sqrt_softplus(double z) { return std::sqrt(z > 20.0 ? z : std::log1p(std::exp(z))); }

// The inputs of one expert: the rows routed to it and their routing weights. Its
// activations are slices of per-site scratch (allocated once, reused across calls).
struct ExpertBatch {
  const ExpertWeights* w;
  std::vector<int64_t> rows;   // [m] destination rows
  std::vector<float> weight;   // [m] routing weight (1 for the shared expert)
  const float* x = nullptr;    // [m, n_embd] gathered inputs (the shared expert: x itself)
  float* gate = nullptr;       // [m, n_ff]
  float* up = nullptr;         // [m, n_ff]
  float* down = nullptr;       // [m, n_embd]
};

// Runs every expert's SwiGLU; all gate/up products form one group and all down products
// another, so a threaded backend streams every expert's weights in one parallel region.
void run_experts(backend::Ops& ops, const io::Config& c, std::vector<ExpertBatch>& batches) {
  int64_t n_ff_rows = 0, n_down_rows = 0;  // elements of all batches' gate/up and down
  for (const ExpertBatch& b : batches) {
    n_ff_rows += int64_t(b.rows.size()) * b.w->w1.n_out;
    n_down_rows += int64_t(b.rows.size()) * b.w->w2.n_out;
  }
  float* gate = scratch<ScratchId::kMoeGate>(n_ff_rows);
  float* up = scratch<ScratchId::kMoeUp>(n_ff_rows);
  float* down = scratch<ScratchId::kMoeDown>(n_down_rows);
  std::vector<backend::Ops::MatmulJob> jobs;
  for (ExpertBatch& b : batches) {
    const int64_t m = int64_t(b.rows.size());
    b.gate = gate, b.up = up, b.down = down;
    gate += m * b.w->w1.n_out, up += m * b.w->w3.n_out, down += m * b.w->w2.n_out;
    jobs.push_back({&b.w->w1, b.x, m, b.gate});
    jobs.push_back({&b.w->w3, b.x, m, b.up});
  }
  ops.matmul_many(jobs.data(), int64_t(jobs.size()));
  jobs.clear();
  ops.parallel_rows(int64_t(batches.size()), [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {  // h, over gate; the routing weight applied before w2
      ExpertBatch& b = batches[size_t(i)];
      ops.swiglu(b.gate, b.up, b.weight.data(), int64_t(b.rows.size()), b.w->w1.n_out, c.swiglu_limit, b.gate);
    }
  });
  for (ExpertBatch& b : batches) {
    jobs.push_back({&b.w->w2, b.gate, int64_t(b.rows.size()), b.down});
  }
  ops.matmul_many(jobs.data(), int64_t(jobs.size()));
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

  std::vector<ExpertBatch> batches;  // ascending expert id, then the shared expert
  int64_t n_routed_rows = 0;
  for (const auto& [e, rows_w] : by_expert) n_routed_rows += int64_t(rows_w.size());
  float* gathered = scratch<ScratchId::kMoeX>(n_routed_rows * d);  // [n_routed_rows, n_embd]
  for (const auto& [e, rows_w] : by_expert) {
    ExpertBatch b{&w.experts[size_t(e)], {}, {}};
    b.x = gathered;
    for (const auto& [row, wt] : rows_w) {
      b.rows.push_back(row);
      b.weight.push_back(wt);
      gathered = std::copy_n(x + row * d, d, gathered);
    }
    batches.push_back(std::move(b));
  }
  if (w.has_shared) {
    ExpertBatch b{&w.shared, {}, std::vector<float>(size_t(n_tok), 1.0f)};
    b.x = x;
    for (int64_t t = 0; t < n_tok; ++t) b.rows.push_back(t);
    batches.push_back(std::move(b));
  }
  run_experts(ops, c, batches);
  double* acc = scratch<ScratchId::kMoeAcc, double>(n_tok * d);  // [n_tok, n_embd]
  // Column ranges in parallel; per element the order is expert id ascending, shared last.
  ops.parallel_rows(d, [&](int64_t i0, int64_t i1) {
    for (int64_t t = 0; t < n_tok; ++t) std::fill(acc + t * d + i0, acc + t * d + i1, 0.0);
    for (const ExpertBatch& b : batches)
      for (size_t r = 0; r < b.rows.size(); ++r)
        for (int64_t i = i0; i < i1; ++i) acc[b.rows[r] * d + i] += double(b.down[int64_t(r) * d + i]);
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = i0; i < i1; ++i) out[t * d + i] = float(acc[t * d + i]);
  });
}

}  // namespace dsv4::model
