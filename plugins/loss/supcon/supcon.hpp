#pragma once
/// \file
/// supcon: the supervised contrastive loss of Khosla et al. 2020 (the L_out
/// form), which falls back to SimCLR's grouping by sample without labels.

#include "../pairs_forms.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// Rows are L2-normalised inside the loss; s_ij = ẑ_i·ẑ_j / T. The positives
/// P(i) of row i are the other rows of its class (z.label), or of its sample
/// when z.label is null; the denominator runs over every row a ≠ i:
///   loss_i = −1/|P(i)| · Σ_{p∈P(i)} log( e^{s_ip} / Σ_{a≠i} e^{s_ia} ),
/// and the loss is the mean of loss_i over the rows with at least one positive.
/// Needs `Pairs::all`.
class SupCon final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit SupCon(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU, z.sample: M entries, z.label: M entries or
  /// null. Writes the value, dL/dz (out.grad, [M, D]) and the metrics
  /// "pos_sim", "neg_sim" and "anchors". Holds at most `chunk` × M
  /// similarities at a time; allocates only when M or D grows.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_only(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  double temperature_;
  std::int64_t chunk_;
  contra::Tensor zhat_;   // [M, D] normalised rows
  contra::Tensor norm_;   // [M] row norms
  contra::Tensor sim_;    // [B, M] similarities of a block of anchors, then dL/ds in place
  contra::Tensor dzhat_;  // [M, D] dL/dẑ
};

}  // namespace contra::plugins
