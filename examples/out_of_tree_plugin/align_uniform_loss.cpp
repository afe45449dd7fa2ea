// align_uniform_loss: see align_uniform_loss.hpp and README.md.
#include "align_uniform_loss.hpp"

#include <contra/plugin.hpp>

#include <algorithm>
#include <cmath>
#include <string>

contra::Schema AlignUniformLoss::schema() {
  return contra::Schema("align_uniform_loss", "alignment + uniformity on the hypersphere (Wang & Isola 2020)")
      .add<double>("alpha", 2.0, "exponent α of the positive-pair distance in the alignment term").range(1.0, 4.0)
      .add<double>("t", 2.0, "scale t of the Gaussian potential in the uniformity term").range(0.01, 20.0)
      .add<double>("uniform_weight", 1.0, "weight of the uniformity term").range(0.0, 100.0);
}

AlignUniformLoss::AlignUniformLoss(const contra::Params& p)
    : alpha_(p.get<double>("alpha")), t_(p.get<double>("t")), uniform_weight_(p.get<double>("uniform_weight")) {}

void AlignUniformLoss::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  if (!pairs.triplets.empty() || !pairs.negative.empty() || !pairs.memory_negative.empty())
    throw contra::UsageError("align_uniform_loss takes positive pairs only (the all_pairs miner, or a miner listing "
                             "Pairs::positive); got triplets or negatives");
  const std::int64_t rows = z.rows(), dim = z.z.dim(1);
  const std::int64_t views = std::max<std::int64_t>(1, z.views), n = rows / views;
  if (n < 2) throw contra::UsageError("align_uniform_loss needs at least two samples per view, got " + std::to_string(n));

  // Unit rows, in double.
  const float* x = z.z.data<float>();
  u_.assign(static_cast<std::size_t>(rows * dim), 0.0);
  norm_.assign(static_cast<std::size_t>(rows), 0.0);
  g_.assign(static_cast<std::size_t>(rows * dim), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::int64_t d = 0; d < dim; ++d) s += static_cast<double>(x[r * dim + d]) * x[r * dim + d];
    norm_[r] = std::max(std::sqrt(s), 1e-12);
    for (std::int64_t d = 0; d < dim; ++d) u_[r * dim + d] = x[r * dim + d] / norm_[r];
  }
  auto sq_dist = [&](std::int64_t i, std::int64_t j) {
    double s = 0;
    for (std::int64_t d = 0; d < dim; ++d) {
      const double diff = u_[i * dim + d] - u_[j * dim + d];
      s += diff * diff;
    }
    return s;
  };

  // Alignment: mean of ‖u_i − u_j‖^α; d/du_i = α d^(α−2) (u_i − u_j).
  positives_.clear();
  if (!pairs.all && !pairs.positive.empty()) {
    positives_ = pairs.positive;
  } else if (pairs.all) {
    for (std::int32_t i = 0; i < rows; ++i)
      for (std::int32_t j = i + 1; j < rows; ++j)
        if ((*z.sample)[i] == (*z.sample)[j]) positives_.push_back({i, j});
  }
  if (positives_.empty())
    throw contra::UsageError("align_uniform_loss: no positive pair (one view per sample, or an empty Pairs::positive)");
  double align = 0;
  const double inv_p = 1.0 / static_cast<double>(positives_.size());
  for (const auto& [i, j] : positives_) {
    if (i < 0 || j < 0 || i >= rows || j >= rows)
      throw contra::UsageError("align_uniform_loss: positive pair (" + std::to_string(i) + ", " + std::to_string(j) +
                               ") outside the batch's " + std::to_string(rows) + " rows");
    const double d2 = sq_dist(i, j);
    if (d2 <= 0) continue;  // ‖u_i − u_j‖^α and its gradient vanish
    const double d = std::sqrt(d2);
    align += std::pow(d, alpha_);
    const double c = inv_p * alpha_ * std::pow(d, alpha_ - 2.0);
    for (std::int64_t k = 0; k < dim; ++k) {
      const double diff = u_[i * dim + k] - u_[j * dim + k];
      g_[i * dim + k] += c * diff;
      g_[j * dim + k] -= c * diff;
    }
  }
  align *= inv_p;

  // Uniformity per view: U_v = log(S_v / Q), S_v = Σ_{i<j} e_ij, e_ij = exp(−t d²_ij);
  // dU_v/du_i = Σ_{j≠i} (e_ij / S_v) · (−2t) (u_i − u_j). Shifted by the
  // largest exponent so that S_v never underflows.
  double uniform = 0;
  const double pairs_per_view = 0.5 * static_cast<double>(n) * static_cast<double>(n - 1);
  e_.assign(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t v = 0; v < views; ++v) {
    const std::int64_t base = v * n;
    double shift = -1e300;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) {
        e_[i * n + j] = -t_ * sq_dist(base + i, base + j);
        shift = std::max(shift, e_[i * n + j]);
      }
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) s += (e_[i * n + j] = std::exp(e_[i * n + j] - shift));
    uniform += shift + std::log(s / pairs_per_view);
    const double w = uniform_weight_ / static_cast<double>(views);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) {
        const double c = w * (e_[i * n + j] / s) * (-2.0 * t_);
        for (std::int64_t k = 0; k < dim; ++k) {
          const double diff = u_[(base + i) * dim + k] - u_[(base + j) * dim + k];
          g_[(base + i) * dim + k] += c * diff;
          g_[(base + j) * dim + k] -= c * diff;
        }
      }
  }
  uniform /= static_cast<double>(views);

  // Through the normalisation: dL/dz = (g − (g·u) u) / ‖z‖.
  out.grad.ensure(z.z.shape(), contra::DType::f32);
  float* grad = out.grad.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    double gu = 0;
    for (std::int64_t d = 0; d < dim; ++d) gu += g_[r * dim + d] * u_[r * dim + d];
    for (std::int64_t d = 0; d < dim; ++d)
      grad[r * dim + d] = static_cast<float>((g_[r * dim + d] - gu * u_[r * dim + d]) / norm_[r]);
  }
  out.value = align + uniform_weight_ * uniform;
  out.metrics.push_back({"align", align});
  out.metrics.push_back({"uniform", uniform});
}

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(AlignUniformLoss))
