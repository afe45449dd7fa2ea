#include "multi_similarity.hpp"

#include "../triplet_common.hpp"
#include <contra/blas.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

// Checks, row groups and the normalised rows shared with the other miners.
using namespace miner_detail;

contra::Schema MultiSimilarity::schema() {
  return contra::Schema("multi_similarity",
                        "pairs near the other kind's hardest similarity (MS mining, Wang et al. 2019)")
      .add<double>("epsilon", 0.1,
                   "keep n if S_an + epsilon > min_p S_ap, p if S_ap - epsilon < max_n S_an (cosine S)")
      .at_least(0.0)
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

MultiSimilarity::MultiSimilarity(const contra::Params& p)
    : epsilon_(p.get<double>("epsilon")), use_labels_(p.get<bool>("use_labels")) {}

void multi_similarity_pairs(const float* sim, std::int64_t a0, std::int64_t a1, std::int64_t m,
                            const std::vector<std::int64_t>& group, double epsilon, contra::Pairs& out) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t a = a0; a < a1; ++a) {
    const float* s = sim + (a - a0) * m;
    // Without positives min_pos = +inf keeps no negative; without negatives
    // max_neg = −inf keeps no positive (as pytorch-metric-learning).
    double min_pos = inf, max_neg = -inf;
    for (std::int64_t j = 0; j < m; ++j) {
      if (j == a) continue;
      if (group[j] == group[a])
        min_pos = std::min(min_pos, static_cast<double>(s[j]));
      else
        max_neg = std::max(max_neg, static_cast<double>(s[j]));
    }
    const auto ai = static_cast<std::int32_t>(a);
    for (std::int64_t j = 0; j < m; ++j) {
      if (j == a) continue;
      if (group[j] == group[a]) {
        if (static_cast<double>(s[j]) - epsilon < max_neg) out.positive.emplace_back(ai, static_cast<std::int32_t>(j));
      } else if (static_cast<double>(s[j]) + epsilon > min_pos) {
        out.negative.emplace_back(ai, static_cast<std::int32_t>(j));
      }
    }
  }
}

void MultiSimilarity::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "multi_similarity");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  prepare_rows(e.z.data<float>(), m, d, true, x_, sq_, mean_);  // L2-normalised
  sim_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    contra::sgemm(false, true, a1 - a0, m, d, 1.0f, x_.data() + a0 * d, d, x_.data(), d, 0.0f, sim_.data(), m);
    multi_similarity_pairs(sim_.data(), a0, a1, m, group, epsilon_, out);
  }
}

}  // namespace contra::plugins
