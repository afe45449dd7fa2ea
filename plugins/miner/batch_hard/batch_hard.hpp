#pragma once
/// \file
/// batch_hard: the hardest positive and hardest negative of each anchor
/// (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss").

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// One triplet per anchor row a: the positive p with the largest d(a,p) and
/// the negative n with the smallest d(a,n), under `distance` (euclidean or
/// cosine). Positives share a's group (its sample, or its class label with
/// `use_labels`); anchors without a positive or a negative are skipped. Ties
/// go to the lower row. Triplets come in anchor order.
class BatchHard final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit BatchHard(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries; z.label: M entries when
  /// `use_labels`. Fills out.triplets. Allocates only when M or D grows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.triplets = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  bool cosine_;
  bool use_labels_;
  std::vector<float> x_;      // [M, D] centred (euclidean) or normalised (cosine) rows
  std::vector<float> sq_;     // [M] squared norms of x_ rows (euclidean)
  std::vector<double> mean_;  // [D] column means (euclidean)
  std::vector<float> dist_;   // [block, M] distances of a block of anchor rows
};

}  // namespace contra::plugins
