#pragma once
/// \file
/// triplet: the triplet margin loss (Weinberger & Saul 2009; Schroff et al.
/// 2015, FaceNet), with the soft-margin variant of Hermans et al. 2017.

#include "../pairs_forms.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// For each triplet (a, p, n): l = max(0, d(a,p) − d(a,n) + m), or
/// log(1 + exp(d(a,p) − d(a,n))) with `soft_margin`; d is the Euclidean
/// distance (squared with `squared`; of normalised rows with `normalize`) or
/// the cosine distance 1 − cos. The loss is the mean over the triplets, or
/// over those with a non-zero loss. Triplets come from the miner
/// (Pairs::triplets), or with Pairs::all every (a, p, n) of the batch: p
/// another view of a's sample, n a row of another sample.
class Triplet final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit Triplet(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries (with Pairs::all).
  /// Writes the value, dL/dz (out.grad, [M, D]) and the metrics
  /// "active_triplets", "pos_dist", "neg_dist" and "triplets". With
  /// Pairs::all holds at most `chunk` × M distances at a time. Allocates
  /// only when a size grows.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_triplets(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  double margin_;
  bool cosine_;
  bool squared_;
  bool soft_;
  bool mean_nonzero_;
  bool normalize_;
  std::int64_t chunk_;
  contra::Tensor zhat_;   // [M, D] normalised rows (cosine or normalize)
  contra::Tensor norm_;   // [M] norms of z's rows
  contra::Tensor xc_;     // [M, D] compared rows centred by their mean (euclidean, all)
  contra::Tensor sq_;     // [M] squared norms of xc_'s rows
  contra::Tensor dist_;   // [B, M] Gram block, then dL/dx coefficients in place
  contra::Tensor dx_;     // [M, D] dL/dx
  std::vector<double> colsum_;        // [M] column sums of the coefficients (euclidean)
  std::vector<std::int64_t> pos_;     // one anchor's positives
  std::vector<double> pos_d_, pos_g_; // their distances and dL/dd
  std::vector<char> pos_near_;        // recomputed from the difference
};

}  // namespace contra::plugins
