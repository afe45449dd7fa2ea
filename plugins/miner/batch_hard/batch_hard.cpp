#include "batch_hard.hpp"

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

contra::Schema BatchHard::schema() {
  return contra::Schema("batch_hard",
                        "per anchor, the hardest positive and the hardest negative (Hermans et al. 2017)")
      .add<std::string>("distance", "euclidean", "euclidean, or cosine (1 - cosine similarity)")
      .choices({"euclidean", "cosine"})
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

BatchHard::BatchHard(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"), use_labels_(p.get<bool>("use_labels")) {}

void BatchHard::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "batch_hard");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  prepare_rows(e.z.data<float>(), m, d, cosine_, x_, sq_, mean_);
  dist_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    distance_block(x_, sq_, m, d, cosine_, a0, a1, dist_.data());
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* row = dist_.data() + (a - a0) * m;
      std::int64_t p = -1, n = -1;
      for (std::int64_t j = 0; j < m; ++j) {
        if (j == a) continue;
        if (group[j] == group[a]) {
          if (p < 0 || row[j] > row[p]) p = j;
        } else if (n < 0 || row[j] < row[n]) {
          n = j;
        }
      }
      if (p >= 0 && n >= 0)
        out.triplets.push_back({static_cast<std::int32_t>(a), static_cast<std::int32_t>(p),
                                static_cast<std::int32_t>(n)});
    }
  }
}

}  // namespace contra::plugins
