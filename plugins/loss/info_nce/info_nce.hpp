#pragma once
/// \file
/// info_nce: the NT-Xent loss of SimCLR (Chen et al. 2020), generalised to V
/// views per sample.

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

namespace contra::plugins {

/// Rows are L2-normalised inside the loss; s_ij = ẑ_i·ẑ_j / T. For each anchor
/// row i and each positive p (another view of the same sample):
///   l_ip = −log( exp(s_ip) / (exp(s_ip) + Σ_{n of other samples} exp(s_in)) ),
/// loss_i is the mean of l_ip over the positives, and the loss the mean of
/// loss_i over the rows that have a positive. Needs `Pairs::all`.
class InfoNce final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit InfoNce(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU, z.sample: M entries. Writes the value, dL/dz
  /// (out.grad, [M, D]) and the metrics "pos_sim" and "neg_sim" (mean cosine
  /// similarity of positive and of negative pairs). Allocates only when M or
  /// D grows.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  double temperature_;
  contra::Tensor zhat_;   // [M, D] normalised rows
  contra::Tensor norm_;   // [M] row norms
  contra::Tensor sim_;    // [M, M] similarities, then dL/ds in place
  contra::Tensor dzhat_;  // [M, D] dL/dẑ
};

}  // namespace contra::plugins
