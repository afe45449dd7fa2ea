// @NAME@: a contra miner plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [miner] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "positive pairs of each sample and, per anchor, its first negatives")
      .add<std::int64_t>("max_negatives", 0, "negatives listed per anchor; 0 = every other-sample row")
      .at_least(0);
}

@CLASS@::@CLASS@(const contra::Params& p) : max_negatives_(p.get<std::int64_t>("max_negatives")) {}

// Skeleton: rows r of one sample ((*z.sample)[r] equal) are positives of
// each other; every other row is a negative, the first max_negatives of them
// per anchor when max_negatives > 0. Replace the choice of negatives with
// yours (hardest, semi-hard, sampled, ...): z.z holds the [rows, dim]
// embeddings, z.label the classes when the source has them.
void @CLASS@::mine(const contra::Embeddings& z, contra::Pairs& out) {
  const std::int64_t rows = z.rows();
  for (std::int32_t i = 0; i < rows; ++i) {
    std::int64_t listed = 0;
    for (std::int32_t j = 0; j < rows; ++j) {
      if (i == j) continue;
      if ((*z.sample)[i] == (*z.sample)[j]) {
        out.positive.push_back({i, j});
      } else if (max_negatives_ == 0 || listed < max_negatives_) {
        out.negative.push_back({i, j});
        ++listed;
      }
    }
  }
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_MINER(@CLASS@))
