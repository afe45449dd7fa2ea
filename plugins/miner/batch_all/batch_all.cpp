#include "batch_all.hpp"

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

contra::Schema BatchAll::schema() {
  return contra::Schema("batch_all", "every valid triplet (anchor, positive, negative) of the batch")
      .add<std::string>("distance", "euclidean",
                        "distance for only_violating: euclidean, or cosine (1 - cosine similarity)")
      .choices({"euclidean", "cosine"})
      .add<double>("margin", 0.2, "triplet margin for only_violating")
      .at_least(0.0)
      .add<bool>("only_violating", false, "keep only triplets with d(a,p) - d(a,n) + margin > 0")
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

BatchAll::BatchAll(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      margin_(p.get<double>("margin")),
      only_violating_(p.get<bool>("only_violating")),
      use_labels_(p.get<bool>("use_labels")) {}

void TripletLister::list(const std::vector<std::int64_t>& group, std::int64_t m, std::int64_t a0, std::int64_t a1,
                         const float* dist, double margin, contra::Pairs& out) {
  for (std::int64_t a = a0; a < a1; ++a) {
    pos_.clear();
    neg_.clear();
    for (std::int64_t j = 0; j < m; ++j) {
      if (j == a) continue;
      (group[j] == group[a] ? pos_ : neg_).push_back(static_cast<std::int32_t>(j));
    }
    if (pos_.empty() || neg_.empty()) continue;
    const auto ai = static_cast<std::int32_t>(a);
    if (!dist) {
      for (std::int32_t p : pos_)
        for (std::int32_t n : neg_) out.triplets.push_back({ai, p, n});
      continue;
    }
    const float* row = dist + (a - a0) * m;
    for (std::int32_t p : pos_) {
      const double dap = row[p];
      for (std::int32_t n : neg_)
        if (dap - static_cast<double>(row[n]) + margin > 0.0) out.triplets.push_back({ai, p, n});
    }
  }
}

void BatchAll::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "batch_all");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  if (!only_violating_) {
    lister_.list(group, m, 0, m, nullptr, margin_, out);
    return;
  }
  prepare_rows(e.z.data<float>(), m, d, cosine_, x_, sq_, mean_);
  dist_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    distance_block(x_, sq_, m, d, cosine_, a0, a1, dist_.data());
    lister_.list(group, m, a0, a1, dist_.data(), margin_, out);
  }
}

}  // namespace contra::plugins
