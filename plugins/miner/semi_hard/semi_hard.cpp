#include "semi_hard.hpp"

#include "../triplet_common.hpp"
#include <contra/blas.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

// Checks, row groups and pairwise distances shared with the other triplet miners.
using namespace miner_detail;

contra::Schema SemiHard::schema() {
  return contra::Schema("semi_hard",
                        "per positive pair, the nearest semi-hard negative (FaceNet, Schroff et al. 2015)")
      .add<std::string>("distance", "euclidean", "euclidean, or cosine (1 - cosine similarity)")
      .choices({"euclidean", "cosine"})
      .add<double>("margin", 0.2, "semi-hard window: d(a,p) < d(a,n) < d(a,p) + margin")
      .at_least(0.0)
      .add<std::string>("fallback", "tfa",
                        "without a semi-hard negative: tfa (as TripletSemiHardLoss: nearest negative "
                        "farther than the positive, else the farthest) or skip (no triplet)")
      .choices({"tfa", "skip"})
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

SemiHard::SemiHard(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      margin_(p.get<double>("margin")),
      skip_(p.get<std::string>("fallback") == "skip"),
      use_labels_(p.get<bool>("use_labels")) {}

void SemiHard::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "semi_hard");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  prepare_rows(e.z.data<float>(), m, d, cosine_, x_, sq_, mean_);
  dist_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    distance_block(x_, sq_, m, d, cosine_, a0, a1, dist_.data());
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* row = dist_.data() + (a - a0) * m;
      // The anchor's negatives sorted by (distance, row): the nearest one
      // farther than d(a,p) is a binary search, the lowest row first on ties.
      neg_.clear();
      // (A NaN distance, from NaN embeddings, sorts as +inf: std::sort needs an order.)
      for (std::int64_t j = 0; j < m; ++j)
        if (group[j] != group[a])
          neg_.emplace_back(std::isnan(row[j]) ? std::numeric_limits<float>::infinity() : row[j],
                            static_cast<std::int32_t>(j));
      if (neg_.empty()) continue;
      std::sort(neg_.begin(), neg_.end());
      // The farthest negative, lowest row among equals (TF's fallback).
      auto far = std::lower_bound(neg_.begin(), neg_.end(), neg_.back().first,
                                  [](const auto& x, float v) { return x.first < v; });
      const auto ai = static_cast<std::int32_t>(a);
      for (std::int64_t p = 0; p < m; ++p) {
        if (p == a || group[p] != group[a]) continue;
        const float dap = row[p];
        auto it = std::upper_bound(neg_.begin(), neg_.end(), dap,
                                   [](float v, const auto& x) { return v < x.first; });
        std::int32_t n;
        if (it != neg_.end() && static_cast<double>(it->first) < static_cast<double>(dap) + margin_)
          n = it->second;  // semi-hard
        else if (skip_)
          continue;
        else if (it != neg_.end())
          n = it->second;  // easy: d(a,n) >= d(a,p) + margin, the nearest such
        else
          n = far->second;  // every negative is hard: the farthest
        out.triplets.push_back({ai, static_cast<std::int32_t>(p), n});
      }
    }
  }
}

}  // namespace contra::plugins
