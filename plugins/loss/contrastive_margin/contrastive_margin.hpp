#pragma once
/// \file
/// contrastive_margin: the pairwise contrastive loss of Hadsell, Chopra & LeCun
/// 2006 ("Dimensionality Reduction by Learning an Invariant Mapping").

#include "../pairs_forms.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// For each pair (i, j) with Euclidean distance d = ‖x_i − x_j‖ (x = z, or
/// z / ‖z‖ with `normalize`), label y = 1 for a positive and 0 for a negative:
///   l_ij = y·d² + (1 − y)·max(0, m − d)²,
/// and the loss is their mean (or sum). Pairs are the miner's explicit
/// positive and negative lists, or with `Pairs::all` every unordered pair of
/// rows once, positive when both rows are views of one sample.
class ContrastiveMargin final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit ContrastiveMargin(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries (with Pairs::all).
  /// Writes the value, dL/dz (out.grad, [M, D]) and the metrics "pos_dist",
  /// "neg_dist" and "active_negatives". With Pairs::all holds at most `chunk`
  /// × M distances at a time. Allocates only when a size grows.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_pairs(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  double margin_;
  bool normalize_;
  bool sum_;
  std::int64_t chunk_;
  contra::Tensor zhat_;  // [M, D] normalised rows (normalize)
  contra::Tensor norm_;  // [M] norms of z's rows (normalize)
  contra::Tensor xc_;    // [M, D] compared rows centred by their mean (all pairs)
  contra::Tensor sq_;    // [M] squared norms of xc_'s rows
  contra::Tensor dist_;  // [B, M] Gram block, then dL/dx coefficients in place
  contra::Tensor dx_;    // [M, D] dL/dx
  std::vector<double> colsum_;  // [M] column sums of the coefficients
};

}  // namespace contra::plugins
