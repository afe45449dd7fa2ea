#pragma once
/// \file
/// siglip: the pairwise sigmoid loss of SigLIP (Zhai et al. 2023, "Sigmoid
/// Loss for Language Image Pre-Training") between the two towers' views of a
/// batch, with a learnable scale and bias. See README.md for the exact
/// formulas.

#include "../pairs_forms.hpp"
#include "../two_tower.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// With Â, B̂ the two views' rows at unit length, every pair (i, j) of the
/// N × N is a binary classification: logit_ij = exp(t)·Â_i·B̂_j + b, label
/// y_ij = +1 on the diagonal (the matching pairs), −1 elsewhere, and
///   loss = −(1/N) Σ_i Σ_j log σ(y_ij · logit_ij)
/// (the paper's normalisation: by the batch size, not by the N² pairs).
/// t is the parameter "logit_scale", b "logit_bias"; each is learnt unless
/// learn_scale / learn_bias = false.
///
/// One pass over blocks of `chunk` rows of Â: the pairs are independent, so
/// each block's value and gradient are complete once its similarities are.
/// Memory is chunk × N floats.
class Siglip final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit Siglip(const contra::Params& p);

  /// Pairs::all only: every other sample of the batch is a negative.
  contra::PairsForms pairs_forms() const override { return pairs_forms::all_only(); }
  /// "logit_scale" (t) then "logit_bias" (b), those that are learnt.
  std::vector<contra::Parameter*> parameters() override;

  /// z.z: [2N, D] f32 on the CPU, 2 views (of different towers when
  /// z.view_tower says). Writes the value, dL/dz into out.grad, adds dL/dt
  /// and dL/db into the parameters' grads, and appends the metrics
  /// "logit_scale" (exp(t)), "logit_bias", "i2t_accuracy", "t2i_accuracy"
  /// and "positive_similarity". Runs on the calling thread's OpenMP team.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  bool learn_scale_, learn_bias_;
  std::int64_t chunk_;
  contra::Parameter log_scale_;  // t, "logit_scale" [1]
  contra::Parameter bias_;       // b, "logit_bias" [1]

  two_tower::NormalisedViews views_;
  two_tower::RetrievalTally tally_;
  contra::Tensor block_;  // [chunk, N]: cosines of a block of rows, then dL/dlogits
};

}  // namespace contra::plugins
