#include "distance_weighted.hpp"

#include "../triplet_common.hpp"
#include <contra/blas.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

// Checks, row groups and the normalised rows shared with the other miners.
using namespace miner_detail;

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

DistanceWeightedSampler::DistanceWeightedSampler(const contra::Params& p)
    : cutoff_(p.get<double>("cutoff")),
      nonzero_loss_cutoff_(p.get<double>("nonzero_loss_cutoff")),
      per_pair_(p.get<std::int64_t>("negatives_per_anchor")),
      seed_(p.get<std::uint64_t>("seed")) {}

void DistanceWeightedSampler::sample(const float* sim, std::int64_t a0, std::int64_t a1, std::int64_t m,
                                     std::int64_t dim, const std::vector<std::int64_t>& group, std::uint64_t step,
                                     contra::Pairs& out) {
  // log q(d)⁻¹ = −(D − 2)·log d − (D − 3)/2 · log(1 − d²/4), d clipped below at
  // cutoff; 1 − d²/4 is floored so that d → 2 stays finite.
  const double D = static_cast<double>(dim);
  auto log_inv_q = [&](double dist) {
    const double c = std::max(dist, cutoff_);
    return -(D - 2.0) * std::log(c) - 0.5 * (D - 3.0) * std::log(std::max(1.0 - 0.25 * c * c, 1e-12));
  };
  for (std::int64_t a = a0; a < a1; ++a) {
    const float* s = sim + (a - a0) * m;
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
    contra::Rng rng(seed_, step, static_cast<std::uint64_t>(a), 0, DistanceWeighted::sample_op);
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

DistanceWeighted::DistanceWeighted(const contra::Params& p)
    : sampler_(p), use_labels_(p.get<bool>("use_labels")) {}

void DistanceWeighted::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "distance_weighted");
  const std::uint64_t step = sampler_.next_call();
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  // x = the rows, L2-normalised; d(a, j) = √(2 − 2 x_a·x_j).
  prepare_rows(e.z.data<float>(), m, d, true, x_, sq_, mean_);
  sim_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    contra::sgemm(false, true, a1 - a0, m, d, 1.0f, x_.data() + a0 * d, d, x_.data(), d, 0.0f, sim_.data(), m);
    sampler_.sample(sim_.data(), a0, a1, m, d, group, step, out);
  }
}

}  // namespace contra::plugins
