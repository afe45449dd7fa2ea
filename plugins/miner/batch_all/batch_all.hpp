#pragma once
/// \file
/// batch_all: every valid triplet of the batch (optionally only the violating ones).

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// The listing of BatchAll, shared by the CPU and cuda builds.
class TripletLister {
 public:
  /// Appends the triplets of anchor rows [a0, a1) of m rows in (anchor,
  /// positive, negative) order: all of them when `dist` is null, else those
  /// with d(a,p) − d(a,n) + margin > 0, `dist` holding the anchors' distance
  /// rows ([a1 − a0, m], row-major). Allocates only when m grows.
  void list(const std::vector<std::int64_t>& group, std::int64_t m, std::int64_t a0, std::int64_t a1,
            const float* dist, double margin, contra::Pairs& out);

 private:
  std::vector<std::int32_t> pos_, neg_;  // one anchor's positives and negatives
};

/// Lists every triplet (a, p, n) of the batch: p ≠ a shares a's group, n does
/// not. The group is the sample (views of one sample are positives), or the
/// class label with `use_labels`. With `only_violating`, keeps only triplets
/// with d(a,p) − d(a,n) + margin > 0 under `distance` (euclidean or cosine).
/// Triplets come sorted by (anchor, positive, negative).
class BatchAll final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit BatchAll(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries; z.label: M entries when
  /// `use_labels`. Fills out.triplets. Allocates only when M or D grows (and
  /// when out.triplets grows).
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
  bool only_violating_;
  bool use_labels_;
  std::vector<float> x_;      // [M, D] centred (euclidean) or normalised (cosine) rows
  std::vector<float> sq_;     // [M] squared norms of x_ rows (euclidean)
  std::vector<double> mean_;  // [D] column means (euclidean)
  std::vector<float> dist_;   // [block, M] distances of a block of anchor rows
  TripletLister lister_;
};

}  // namespace contra::plugins
