#pragma once
// align_uniform_loss: the alignment and uniformity loss of Wang & Isola,
// "Understanding Contrastive Representation Learning through Alignment and
// Uniformity on the Hypersphere" (ICML 2020).

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <utility>
#include <vector>

/// On L2-normalised rows u_r = z_r / ‖z_r‖:
///
///     align   = mean over positive pairs (i, j) of ‖u_i − u_j‖^α
///     uniform = mean over views v of log( mean over rows i < j of view v of exp(−t ‖u_i − u_j‖²) )
///     loss    = align + uniform_weight · uniform
///
/// Positive pairs are the miner's Pairs::positive, or with Pairs::all every
/// pair of rows of one sample (i < j). Uniformity is taken within each view,
/// as in the paper's code, so that a sample's views do not repel each other.
/// The gradient goes back through the normalisation. Defaults are the
/// paper's: α = 2, t = 2, weight 1.
class AlignUniformLoss final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit AlignUniformLoss(const contra::Params& p);

  /// z.z: [V·N, D] f32, V ≥ 1 views of N ≥ 2 samples. Throws UsageError for
  /// triplets or negatives (this loss takes positives only), for no positive
  /// pair at all, and for fewer than two samples.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double alpha_, t_, uniform_weight_;
  std::vector<double> u_, norm_, g_;                          // [rows, dim], [rows], [rows, dim]
  std::vector<std::pair<std::int32_t, std::int32_t>> positives_;
  std::vector<double> e_;                                     // exp(−t d²) of one view, [n, n]
};
