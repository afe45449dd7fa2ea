#pragma once
/// \file
/// distance_weighted: distance-weighted negative sampling (Wu, Manmatha, Smola
/// & Krähenbühl 2017, "Sampling Matters in Deep Embedding Learning").

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// The draws of DistanceWeighted for blocks of anchor rows, given their
/// cosine similarities; shared by the CPU and cuda builds, so that both draw
/// the same negatives from the same similarities.
class DistanceWeightedSampler {
 public:
  /// Reads cutoff, nonzero_loss_cutoff, negatives_per_anchor and seed.
  explicit DistanceWeightedSampler(const contra::Params& p);

  /// The Rng "epoch" of a new mine() call: the number of earlier calls.
  std::uint64_t next_call() noexcept { return calls_++; }

  /// For anchor rows [a0, a1) with cosine similarities `sim` ([a1 − a0, m],
  /// row-major) in dimension `dim`: appends their triplets in (anchor,
  /// positive) order. Allocates only when m grows.
  void sample(const float* sim, std::int64_t a0, std::int64_t a1, std::int64_t m, std::int64_t dim,
              const std::vector<std::int64_t>& group, std::uint64_t step, contra::Pairs& out);

 private:
  double cutoff_;
  double nonzero_loss_cutoff_;
  std::int64_t per_pair_;
  std::uint64_t seed_;
  std::uint64_t calls_ = 0;         // mine() calls so far
  std::vector<std::int32_t> cand_;  // one anchor's eligible negatives
  std::vector<double> cum_;         // their log-weights, then cumulative weights
};

/// On L2-normalised rows in dimension D, pairwise distances d lie in [0, 2]
/// and, for uniformly spread points, have density q(d) ∝ d^{D−2}(1 − d²/4)^{(D−3)/2}.
/// For each positive pair (a, p), samples `negatives_per_anchor` negatives n
/// (with replacement) with probability ∝ q(max(d(a,n), cutoff))⁻¹ among the
/// negatives with d(a,n) < nonzero_loss_cutoff, and emits triplets (a, p, n).
/// Randomness: Rng(seed, t, a, 0, op) with t the number of earlier mine()
/// calls, so a run is reproducible at any thread count.
class DistanceWeighted final : public contra::Miner {
 public:
  /// Rng op of the draws ("DWNS").
  static constexpr std::uint32_t sample_op = 0x44574E53u;

  static contra::Schema schema();
  explicit DistanceWeighted(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries; z.label: M entries when
  /// `use_labels`. Fills out.triplets in (anchor, positive) order. Allocates
  /// only when M or D grows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.triplets = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  DistanceWeightedSampler sampler_;
  bool use_labels_;
  std::vector<float> x_;      // [M, D] L2-normalised rows
  std::vector<float> sq_;     // [M] their squared norms (unused)
  std::vector<double> mean_;  // unused: the rows are normalised, not centred
  std::vector<float> sim_;    // [block, M] similarities of a block of anchor rows
};

}  // namespace contra::plugins
