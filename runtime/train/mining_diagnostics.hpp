#pragma once
// Mining diagnostics: what the positives and negatives a miner (or the
// all-pairs rule) selected look like, every step. Cosine similarities of the
// pairs used (mean and quantiles, from a deterministic sample of at most
// `max_samples` pairs), negatives per anchor, and — when the data has labels
// — the false-negative rate: the share of the negatives used that carry the
// anchor's own label. That last figure tells whether "harder" negatives are
// really harder or just same-class samples.

#include <contra/roles/miner.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

struct MiningDiagnostics {
  double pos_sim_mean = 0, pos_sim_p50 = 0;
  double neg_sim_mean = 0, neg_sim_p10 = 0, neg_sim_p50 = 0, neg_sim_p90 = 0, neg_sim_max = 0;
  double negatives_per_anchor = 0;
  double false_negative_rate = -1;  ///< -1 when there are no labels
  std::int64_t positive_pairs = 0, negative_pairs = 0;

  /// Appends "mining.*" figures for the step log.
  void append_to(std::vector<std::pair<std::string, double>>& metrics) const;
};

/// Diagnostics of the pairs in `p` over the embeddings `e` (z rows and, for
/// memory negatives, the memory's keys). Deterministic in `step`. The
/// similarity figures come from at most `max_samples` pairs of each kind:
/// 2^13 puts a quantile within about 0.5% of its rank and costs well under a
/// millisecond per step, where 2^16 took half the train step of a small
/// pipeline (bench/mining_diagnostics).
MiningDiagnostics diagnose_mining(const Embeddings& e, const Pairs& p, std::int64_t step,
                                  std::int64_t max_samples = 1 << 13);

}  // namespace contra::runtime
