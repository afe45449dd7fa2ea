#include "distance_weighted.hpp"

#include <contra/blas.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr std::int64_t block_rows = 256;  // anchor rows per sgemm block
constexpr float norm_eps = 1e-12f;        // norms below are clamped, as F.normalize does

// Checks the embeddings and returns each row's group: its label with
// use_labels, else its sample.
const std::vector<std::int64_t>& row_groups(const contra::Embeddings& e, bool use_labels,
                                            const char* who) {
  const contra::Tensor& z = e.z;
  if (z.rank() != 2 || z.dtype() != contra::DType::f32 || z.device() != contra::Device::cpu ||
      z.dim(1) < 1)
    throw contra::UsageError(std::string(who) + ": expected embeddings as an f32 [M, D] CPU tensor, got " +
                             contra::dtype_name(z.dtype()) + " " + z.shape().str() + " on " +
                             contra::device_name(z.device()));
  const std::int64_t m = z.dim(0);
  if (m > std::numeric_limits<std::int32_t>::max())
    throw contra::UsageError(std::string(who) + ": " + std::to_string(m) +
                             " rows do not fit the int32 row indices of Pairs");
  if (!e.sample || static_cast<std::int64_t>(e.sample->size()) != m)
    throw contra::UsageError(std::string(who) + ": Embeddings::sample must give the sample of each of the " +
                             std::to_string(m) + " rows");
  if (!use_labels) return *e.sample;
  if (!e.label)
    throw contra::UsageError(std::string(who) +
                             ": use_labels = true, but the batch has no labels (Embeddings::label is null)");
  if (static_cast<std::int64_t>(e.label->size()) != m)
    throw contra::UsageError(std::string(who) + ": Embeddings::label has " + std::to_string(e.label->size()) +
                             " entries for " + std::to_string(m) + " rows");
  return *e.label;
}

}  // namespace

contra::Schema DistanceWeighted::schema() {
  return contra::Schema("distance_weighted",
                        "negatives sampled with probability 1/q(d) on the sphere (Wu et al. 2017)")
      .add<double>("cutoff", 0.5, "distances are clipped below at this before weighting (bounds 1/q, the paper's lambda)")
      .range(1e-3, 2.0)
      .add<double>("nonzero_loss_cutoff", 1.4, "negatives at this distance or farther are never sampled")
      .range(1e-3, 2.0)
      .add<std::int64_t>("negatives_per_anchor", 1,
                         "negatives drawn (with replacement) for each (anchor, positive) pair")
      .range(1, 1 << 20)
      .add<std::int64_t>("seed", 0, "seed of the sampling stream")
      .at_least(0)
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

DistanceWeighted::DistanceWeighted(const contra::Params& p)
    : cutoff_(p.get<double>("cutoff")),
      nonzero_loss_cutoff_(p.get<double>("nonzero_loss_cutoff")),
      per_pair_(p.get<std::int64_t>("negatives_per_anchor")),
      seed_(p.get<std::uint64_t>("seed")),
      use_labels_(p.get<bool>("use_labels")) {}

void DistanceWeighted::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "distance_weighted");
  const std::uint64_t step = calls_++;
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  // x = the rows, L2-normalised; d(a, j) = √(2 − 2 x_a·x_j).
  const float* z = e.z.data<float>();
  x_.resize(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    const float* zi = z + i * d;
    float* xi = x_.data() + i * d;
    double ss = 0.0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(zi[k]) * zi[k];
    const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), norm_eps);
    for (std::int64_t k = 0; k < d; ++k) xi[k] = zi[k] * inv;
  }
  // log q(d)⁻¹ = −(D − 2)·log d − (D − 3)/2 · log(1 − d²/4), d clipped below at
  // cutoff; 1 − d²/4 is floored so that d → 2 stays finite.
  const double dim = static_cast<double>(d);
  auto log_inv_q = [&](double dist) {
    const double c = std::max(dist, cutoff_);
    return -(dim - 2.0) * std::log(c) - 0.5 * (dim - 3.0) * std::log(std::max(1.0 - 0.25 * c * c, 1e-12));
  };
  sim_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    contra::sgemm(false, true, a1 - a0, m, d, 1.0f, x_.data() + a0 * d, d, x_.data(), d, 0.0f, sim_.data(), m);
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* s = sim_.data() + (a - a0) * m;
      bool has_positive = false;
      for (std::int64_t j = 0; j < m && !has_positive; ++j) has_positive = j != a && group[j] == group[a];
      if (!has_positive) continue;
      // Eligible negatives and their log-weights; shifted by the largest and
      // exponentiated into cumulative weights.
      cand_.clear();
      cum_.clear();
      double top = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < m; ++j) {
        if (group[j] == group[a]) continue;
        const double dist = std::sqrt(std::max(2.0 - 2.0 * static_cast<double>(s[j]), 0.0));
        if (!(dist < nonzero_loss_cutoff_)) continue;  // also drops NaN
        const double lw = log_inv_q(dist);
        cand_.push_back(static_cast<std::int32_t>(j));
        cum_.push_back(lw);
        top = std::max(top, lw);
      }
      if (cand_.empty()) continue;  // every negative is too far: nothing to learn from
      double total = 0.0;
      for (double& c : cum_) {
        total += std::exp(c - top);
        c = total;
      }
      contra::Rng rng(seed_, step, static_cast<std::uint64_t>(a), 0, sample_op);
      const auto ai = static_cast<std::int32_t>(a);
      for (std::int64_t p = 0; p < m; ++p) {
        if (p == a || group[p] != group[a]) continue;
        for (std::int64_t t = 0; t < per_pair_; ++t) {
          // The first cumulative weight above u: zero-weight entries are never hit.
          const double u = rng.uniform() * total;
          auto k = static_cast<std::size_t>(std::upper_bound(cum_.begin(), cum_.end(), u) - cum_.begin());
          if (k == cum_.size()) --k;
          out.triplets.push_back({ai, static_cast<std::int32_t>(p), cand_[k]});
        }
      }
    }
  }
}

}  // namespace contra::plugins
