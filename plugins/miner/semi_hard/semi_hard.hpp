#pragma once
/// \file
/// semi_hard: FaceNet's semi-hard negatives (Schroff, Kalenichenko & Philbin
/// 2015), with the fallback of tfa.losses.TripletSemiHardLoss.

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace contra::plugins {

/// One triplet per positive pair (a, p): the negative n with the smallest
/// d(a,n) among the semi-hard ones, d(a,p) < d(a,n) < d(a,p) + margin. When
/// there is none, `fallback` decides: "tfa" (default) does what TensorFlow
/// Addons' TripletSemiHardLoss does (the nearest negative farther than p,
/// else the farthest negative); "skip" emits nothing for that pair.
/// Positives share a's group (its sample, or its class label with
/// `use_labels`). Ties go to the lower row.
class SemiHard final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit SemiHard(const contra::Params& p);

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
  bool cosine_;
  double margin_;
  bool skip_;  // fallback = "skip"
  bool use_labels_;
  std::vector<float> x_;      // [M, D] centred (euclidean) or normalised (cosine) rows
  std::vector<float> sq_;     // [M] squared norms of x_ rows (euclidean)
  std::vector<double> mean_;  // [D] column means (euclidean)
  std::vector<float> dist_;   // [block, M] distances of a block of anchor rows
  std::vector<std::pair<float, std::int32_t>> neg_;  // one anchor's negatives, by (d, row)
};

}  // namespace contra::plugins
