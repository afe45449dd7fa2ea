#pragma once
/// \file
/// mochi: hard negative mixing (MoCHi, Kalantidis et al. 2020) as a miner:
/// for each anchor, its N hardest negatives and synthetic negatives mixed
/// from them (and from the anchor itself), handed to the loss through
/// Pairs::synthetic (README.md).

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// For anchor row i (ẑ_i L2-normalised) and its negatives n (the memory's
/// keys of other samples when the batch has a memory holding at least one
/// key, else the batch's rows of other samples), L2-normalised, ordered by
/// similarity ẑ_i·n:
///
///     H_i = the `hardest` most similar negatives (all of them when fewer)
///     s  = `mixes` rows  normalise(α n_a + (1 − α) n_b),  n_a, n_b ∈ H_i, α ~ U(0, 1)
///     s′ = `query_mixes` rows  normalise(β ẑ_i + (1 − β) n_c),  n_c ∈ H_i, β ~ U(0, query_weight_max)
///
/// The draws come from the step's random streams (Embeddings::context), one
/// per anchor: the same bits at any thread count and on resume. Out:
/// Pairs::negative (the anchor's batch negatives) or Pairs::memory_negative
/// (its memory negatives), as all_pairs would select them, plus the s + s′
/// synthetic rows of each anchor (anchor i owns rows i·(s+s′) ...) in
/// Pairs::synthetic with their Pairs::synthetic_negative pairs and origins.
/// Anchors without a positive or a negative get nothing. CPU only.
class Mochi final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit Mochi(const contra::Params& p);

  /// Throws UsageError without Embeddings::context (mochi draws from the
  /// step's streams), or for embeddings the SDK's checks refuse.
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;
  contra::MinedLists mined_lists() const override;

 private:
  std::int64_t hardest_, mixes_, query_mixes_;
  double query_weight_max_;
  std::vector<float> zhat_, keys_hat_;
};

}  // namespace contra::plugins
