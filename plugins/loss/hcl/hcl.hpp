#pragma once
/// \file
/// hcl: the hard-negative contrastive loss of Robinson et al. 2021
/// ("Contrastive Learning with Hard Negative Samples"), on top of the debiased
/// estimator of Chuang et al. 2020.

#include "../pairs_forms.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <memory>

namespace contra::plugins {

struct HclState;

/// Rows are L2-normalised inside the loss; s_ij = ẑ_i·ẑ_j / T. For an anchor
/// row i with positive p (another view of its sample) and N negatives j:
///   pos = e^{s_ip}, neg_j = e^{s_ij}, w_j = e^{β s_ij},
///   R   = N · Σ_j w_j neg_j / Σ_j w_j,
///   Ng  = max( (R − N τ⁺ pos) / (1 − τ⁺), N e^{−1/T} ),
///   l_ip = −log( pos / (pos + Ng) ),
/// loss_i is the mean of l_ip over the positives, and the loss the mean of
/// loss_i over the rows that have a positive. The weights are not detached
/// (as the authors' code). β = 0 is the debiased loss, β = 0 with τ⁺ = 0
/// InfoNCE (NT-Xent).
class Hcl final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit Hcl(const contra::Params& p);
  ~Hcl() override;

  /// z.z: [M, D] f32 on the CPU, z.sample: M entries; z.memory (optional):
  /// [K, D] keys. With Pairs::all, negatives are the rows of other samples and
  /// every memory key of another sample; otherwise exactly the listed
  /// Pairs::negative rows and Pairs::memory_negative keys (as info_nce).
  /// Writes the value, dL/dz (out.grad, [M, D]) and the metrics "pos_sim",
  /// "neg_sim", "weight_concentration" and "clamped". Holds at most `chunk` ×
  /// (M + K) similarities at a time; allocates only when a size grows.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_negatives(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  std::unique_ptr<HclState> state_;  // the estimator shared with debiased (../debiased_hcl.hpp)
};

}  // namespace contra::plugins
