#pragma once
/// \file
/// clip: the symmetric InfoNCE of CLIP (Radford et al. 2021) between the two
/// towers' views of a batch, with a learnable temperature. See README.md for
/// the exact formulas.

#include "../pairs_forms.hpp"
#include "../two_tower.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// With Â, B̂ the two views' rows at unit length (the image and the caption
/// of each sample), logits = s·Â·B̂ᵀ (N × N), s = min(exp(t), max_scale):
///   loss = ( CE(logits, diag) + CE(logitsᵀ, diag) ) / 2,
/// each cross-entropy the mean over the N samples. t is the parameter
/// "logit_scale" (learnable unless learn_temperature = false); where
/// exp(t) > max_scale the scale is clamped and dL/dt is 0.
///
/// Two passes over blocks of `chunk` rows of Â: the first takes the
/// log-sum-exp of every row and (online, across blocks) of every column of
/// the logits, the second the gradient. Memory is chunk × N floats, never
/// N × N beyond one block; with N <= chunk the block is computed once.
class Clip final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit Clip(const contra::Params& p);

  /// Pairs::all only: every other sample of the batch is a negative.
  contra::PairsForms pairs_forms() const override { return pairs_forms::all_only(); }
  /// "logit_scale" (t), or nothing when learn_temperature = false.
  std::vector<contra::Parameter*> parameters() override;

  /// z.z: [2N, D] f32 on the CPU, 2 views (of different towers when
  /// z.view_tower says). Writes the value, dL/dz into out.grad, adds dL/dt
  /// into the parameter's grad, and appends the metrics "logit_scale" (s),
  /// "i2t_accuracy", "t2i_accuracy" and "positive_similarity". Runs on the
  /// calling thread's OpenMP team.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  bool learn_temperature_;
  double max_scale_;
  std::int64_t chunk_;
  contra::Parameter log_scale_;  // t, "logit_scale" [1]; handed out only when learnt

  two_tower::NormalisedViews views_;
  two_tower::RetrievalTally tally_;
  contra::Tensor block_;                  // [chunk, N]: cosines of a block of rows, then dL/dlogits
  // Per row and per column of the logits s·C: the largest cosine m and
  // log Σ exp(s·(C − m)) (pass 1; the column sums are online, then logged).
  std::vector<float> row_max_, column_max_;          // [N]
  std::vector<double> row_log_sum_, column_log_sum_;  // [N]
};

}  // namespace contra::plugins
