#include "siglip.hpp"

#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace contra::plugins {

namespace {

using two_tower::min_parallel_elements;

struct BlockSums {
  double loss = 0.0;   // Σ −log σ(y·logit)
  double dl_ds = 0.0;  // Σ dL/dlogit · cosine
  double dl_db = 0.0;  // Σ dL/dlogit
};

// For rows [i0, i0 + b) of cosines c (b × n), each pair's −log σ(y·logit)
// with logit = s·c + bias, y = +1 for the matching pair (j = i) and −1 for the
// others; dL/dlogit = −y·σ(−y·logit) / n is written over c. In terms of
// u = −y·logit: −log σ(y·logit) = softplus(u) = max(u, 0) + log1p(e^{−|u|}),
// which neither overflows nor loses the small terms.
BlockSums sigmoid_pairs(float* c, std::int64_t i0, std::int64_t b, std::int64_t n, float s, float bias) {
  const float inv_n = 1.0f / static_cast<float>(n);
  double loss = 0.0, dl_ds = 0.0, dl_db = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss, dl_ds, dl_db) if (b * n > min_parallel_elements)
  for (std::int64_t r = 0; r < b; ++r) {
    const std::int64_t i = i0 + r;
    float* row = c + r * n;
    double row_loss = 0.0, row_ds = 0.0, row_db = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
      const float cosine = row[j];
      const float y = j == i ? 1.0f : -1.0f;
      const float u = -y * (s * cosine + bias);
      const float e = std::exp(-std::abs(u));
      const float sigma_u = (u >= 0.0f ? 1.0f : e) / (1.0f + e);
      const float g = -y * sigma_u * inv_n;
      row_loss += std::max(u, 0.0f) + std::log1p(e);
      row_ds += static_cast<double>(g) * cosine;
      row_db += g;
      row[j] = g;
    }
    loss += row_loss;
    dl_ds += row_ds;
    dl_db += row_db;
  }
  return {loss, dl_ds, dl_db};
}

}  // namespace

contra::Schema Siglip::schema() {
  return contra::Schema("siglip",
                        "SigLIP's pairwise sigmoid loss between two towers' views (image-text), with a learnable "
                        "scale and bias")
      .add<double>("init_scale", 10.0,
                   "exp(t) at the start: the learnt log-scale t starts at log(init_scale) and multiplies the "
                   "cosines by exp(t)")
      .range(1e-3, 1e4)
      .add<double>("init_bias", -10.0, "b at the start, added to every logit")
      .range(-1e4, 1e4)
      .add<bool>("learn_scale", true, "learn t (the parameter logit_scale); false keeps init_scale")
      .add<bool>("learn_bias", true, "learn b (the parameter logit_bias); false keeps init_bias")
      .add<std::int64_t>("chunk", 1024,
                         "rows of the first view whose similarities are held at once; memory is chunk x N floats")
      .at_least(1);
}

Siglip::Siglip(const contra::Params& p)
    : learn_scale_(p.get<bool>("learn_scale")),
      learn_bias_(p.get<bool>("learn_bias")),
      chunk_(p.get<std::int64_t>("chunk")),
      log_scale_(two_tower::scalar_parameter("logit_scale", std::log(p.get<double>("init_scale")))),
      bias_(two_tower::scalar_parameter("logit_bias", p.get<double>("init_bias"))) {}

std::vector<contra::Parameter*> Siglip::parameters() {
  std::vector<contra::Parameter*> learnt;
  if (learn_scale_) learnt.push_back(&log_scale_);
  if (learn_bias_) learnt.push_back(&bias_);
  return learnt;
}

void Siglip::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  contra::check_pairs_form("siglip", pairs, pairs_forms::all_only());
  views_.load("siglip", emb);
  const std::int64_t n = views_.samples();
  const double scale = std::exp(two_tower::value_of(log_scale_));
  const double bias = two_tower::value_of(bias_);
  const float s = static_cast<float>(scale);

  const std::int64_t block_rows = std::min(chunk_, n);
  block_.ensure({block_rows, n}, contra::DType::f32);
  float* c = block_.data<float>();
  tally_.start(n);
  BlockSums total;
  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    views_.cosines(i0, b, c);
    tally_.add_rows(c, i0, b);
    const BlockSums sums = sigmoid_pairs(c, i0, b, n, s, static_cast<float>(bias));
    total.loss += sums.loss;
    total.dl_ds += sums.dl_ds;
    total.dl_db += sums.dl_db;
    views_.backprop(i0, b, c, s);
  }
  out.value = total.loss / static_cast<double>(n);
  views_.backward(out.grad);
  // s = exp(t): dL/dt = s·dL/ds.
  if (learn_scale_) two_tower::add_gradient(log_scale_, scale * total.dl_ds);
  if (learn_bias_) two_tower::add_gradient(bias_, total.dl_db);

  out.metrics.emplace_back("logit_scale", scale);
  out.metrics.emplace_back("logit_bias", bias);
  tally_.write_metrics(out.metrics);
}

}  // namespace contra::plugins
