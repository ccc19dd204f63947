#include "model/hyper_connection.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv4::model {

namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Projects each token's flattened streams with fn and applies the one RMS factor of the
// whole hc*n_embd vector afterwards (the reference's order). mixes: [n_tok, fn.n_out].
std::vector<float> project_streams(backend::Ops& ops, const io::Config& c, const WeightView& fn,
                                   const float* streams, int64_t n_tok) {
  const int64_t width = c.hc_mult * c.n_embd;
  std::vector<float> mixes(size_t(n_tok * fn.n_out));
  ops.matmul(fn, streams, n_tok, mixes.data());
  std::vector<double> ss(static_cast<size_t>(n_tok));  // [n_tok] sums of squares of the flattened streams
  ops.sum_squares(streams, n_tok, width, ss.data());
  for (int64_t t = 0; t < n_tok; ++t) {
    const double r = 1.0 / std::sqrt(ss[size_t(t)] / double(width) + c.rms_norm_eps);
    for (int64_t m = 0; m < fn.n_out; ++m) mixes[size_t(t * fn.n_out + m)] = float(mixes[size_t(t * fn.n_out + m)] * r);
  }
  return mixes;
}

// x[c] = sum_j pre[j] * streams[j][c]
void collapse(const double* pre, const float* streams, int64_t hc, int64_t n_embd, float* x) {
  for (int64_t i = 0; i < n_embd; ++i) {
    double acc = 0.0;
    for (int64_t j = 0; j < hc; ++j) acc += pre[j] * double(streams[j * n_embd + i]);
    x[i] = float(acc);
  }
}

}  // namespace

void sinkhorn(double* comb, int64_t hc, int64_t iters, double eps) {
  auto normalise_rows = [&] {
    for (int64_t j = 0; j < hc; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < hc; ++k) s += comb[j * hc + k];
      for (int64_t k = 0; k < hc; ++k) comb[j * hc + k] /= s + eps;
    }
  };
  auto normalise_cols = [&] {
    for (int64_t k = 0; k < hc; ++k) {
      double s = 0.0;
      for (int64_t j = 0; j < hc; ++j) s += comb[j * hc + k];
      for (int64_t j = 0; j < hc; ++j) comb[j * hc + k] /= s + eps;
    }
  };
  for (int64_t j = 0; j < hc; ++j) {  // row softmax, then + eps on every entry
    double* row = comb + j * hc;
    const double m = *std::max_element(row, row + hc);
    double s = 0.0;
    for (int64_t k = 0; k < hc; ++k) s += (row[k] = std::exp(row[k] - m));
    for (int64_t k = 0; k < hc; ++k) row[k] = row[k] / s + eps;
  }
  normalise_cols();
  for (int64_t it = 1; it < iters; ++it) {
    normalise_rows();
    normalise_cols();
  }
}

namespace {

// One token of hc_pre: its pre/post/comb mixing weights from its row of mixes, and the
// collapsed input x_t. pre, comb: [hc], [hc * hc] scratch of the calling thread.
void hc_pre_token(const io::Config& c, const HcWeights& w, const float* m, const float* streams_t, int64_t t,
                  double* pre, double* comb, float* x_t, HcMix& mix) {
  const int64_t hc = c.hc_mult;
  for (int64_t j = 0; j < hc; ++j) {
    pre[j] = sigmoid(double(m[j]) * w.scale[0] + w.base[size_t(j)]) + c.hc_eps;
    mix.post[size_t(t * hc + j)] = float(2.0 * sigmoid(double(m[hc + j]) * w.scale[1] + w.base[size_t(hc + j)]));
  }
  for (int64_t i = 0; i < hc * hc; ++i) comb[i] = double(m[2 * hc + i]) * w.scale[2] + w.base[size_t(2 * hc + i)];
  sinkhorn(comb, hc, c.hc_sinkhorn_iters, c.hc_eps);
  for (int64_t i = 0; i < hc * hc; ++i) mix.comb[size_t(t * hc * hc + i)] = float(comb[i]);
  collapse(pre, streams_t, hc, c.n_embd, x_t);
}

// One token of hc_post: out_t[k,:] = post[k] * f_t + sum_j comb[j,k] * res_t[j,:], each
// element summed in double in this order. Every column i reads its hc residual values
// before it writes its hc outputs, so out_t may be res_t (the streams, updated in place).
// HC: the stream count as a constant, so the per-column body is straight-line code the
// compiler vectorises over columns (same operations, same order); hc_post_token_any: any count.
template <int HC>
void hc_post_token(const io::Config& c, const float* f_t, const float* res_t, const float* comb, const float* post,
                   float* out_t) {
  const int64_t d = c.n_embd;
  double pk[HC], cm[HC * HC];  // post weights, comb[j * HC + k]
  for (int k = 0; k < HC; ++k) pk[k] = double(post[k]);
  for (int i = 0; i < HC * HC; ++i) cm[i] = double(comb[i]);
  // No dependence between columns: in place, column i is read before it is written (and
  // r is scalarised: HC is a constant).
#pragma GCC ivdep
  for (int64_t i = 0; i < d; ++i) {
    double r[HC];
    for (int j = 0; j < HC; ++j) r[j] = double(res_t[j * d + i]);
    const double fi = double(f_t[i]);
    for (int k = 0; k < HC; ++k) {
      double acc = pk[k] * fi;
      for (int j = 0; j < HC; ++j) acc += cm[j * HC + k] * r[j];
      out_t[k * d + i] = float(acc);
    }
  }
}

// The same for any stream count, column by column; r: [hc] room for one column's residuals.
void hc_post_token_any(const io::Config& c, const float* f_t, const float* res_t, const float* comb,
                       const float* post, double* r, float* out_t) {
  const int64_t hc = c.hc_mult, d = c.n_embd;
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < hc; ++j) r[j] = double(res_t[j * d + i]);
    const double fi = double(f_t[i]);
    for (int64_t k = 0; k < hc; ++k) {
      double acc = double(post[k]) * fi;
      for (int64_t j = 0; j < hc; ++j) acc += double(comb[j * hc + k]) * r[j];
      out_t[k * d + i] = float(acc);
    }
  }
}

}  // namespace

// Tokens are independent: they are split over the backend's threads (parallel_rows).
void hc_pre(backend::Ops& ops, const io::Config& c, const HcWeights& w, const float* streams,
            int64_t n_tok, float* x, HcMix& mix) {
  const int64_t hc = c.hc_mult, n_mix = w.fn.n_out;
  const std::vector<float> mixes = project_streams(ops, c, w.fn, streams, n_tok);  // [n_tok, n_mix]
  mix.post.resize(size_t(n_tok * hc));
  mix.comb.resize(size_t(n_tok * hc * hc));
  ops.parallel_rows(n_tok, [&](int64_t t0, int64_t t1) {
    std::vector<double> pre(static_cast<size_t>(hc)), comb(size_t(hc * hc));
    for (int64_t t = t0; t < t1; ++t)
      hc_pre_token(c, w, mixes.data() + t * n_mix, streams + t * hc * c.n_embd, t, pre.data(), comb.data(),
                   x + t * c.n_embd, mix);
  });
}

void hc_post(backend::Ops& ops, const io::Config& c, const float* f, const float* residual, const HcMix& mix,
             int64_t n_tok, float* out) {
  const int64_t hc = c.hc_mult, d = c.n_embd;
  ops.parallel_rows(n_tok, [&](int64_t t0, int64_t t1) {
    std::vector<double> r(hc == 4 ? 0 : static_cast<size_t>(hc));  // generic path: one column
    for (int64_t t = t0; t < t1; ++t) {
      const float* res_t = residual + t * hc * d;
      const float* comb = mix.comb.data() + t * hc * hc;
      const float* post = mix.post.data() + t * hc;
      if (hc == 4)  // V4 models: hc_mult 4
        hc_post_token<4>(c, f + t * d, res_t, comb, post, out + t * hc * d);
      else
        hc_post_token_any(c, f + t * d, res_t, comb, post, r.data(), out + t * hc * d);
    }
  });
}

void hc_head(backend::Ops& ops, const io::Config& c, const HcHeadWeights& w, const float* streams,
             int64_t n_tok, float* y) {
  const int64_t hc = c.hc_mult;
  const std::vector<float> mixes = project_streams(ops, c, w.fn, streams, n_tok);  // [n_tok, hc]
  ops.parallel_rows(n_tok, [&](int64_t t0, int64_t t1) {
    std::vector<double> pre(static_cast<size_t>(hc));
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t j = 0; j < hc; ++j)
        pre[size_t(j)] = sigmoid(double(mixes[size_t(t * hc + j)]) * w.scale[0] + w.base[size_t(j)]) + c.hc_eps;
      collapse(pre.data(), streams + t * hc * c.n_embd, hc, c.n_embd, y + t * c.n_embd);
    }
  });
}

}  // namespace dsv4::model
