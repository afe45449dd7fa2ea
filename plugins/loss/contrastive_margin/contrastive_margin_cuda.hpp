#pragma once
/// \file
/// contrastive_margin on the GPU: the same loss, parameters and metrics as the
/// CPU build (contrastive_margin.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "contrastive_margin.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct ContrastiveMarginCudaState;

/// Explicit pairs (Pairs::positive, Pairs::negative): one warp per pair, the
/// exact distance in double, the gradient added with atomics. Pairs::all: per
/// block of `chunk` rows, a Gram block of the centred rows by cuBLAS (TF32 or
/// bf16 when contra::cuda::math_mode() asks), one kernel per row over its
/// pairs j > i writing the coefficients of dL/dx, then two GEMMs plus row and
/// column sums. Unlike the CPU build, a pair whose distance is recomputed from
/// the difference (the two rows nearly equal) still enters the gradient
/// through the Gram form.
class ContrastiveMarginCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return ContrastiveMargin::schema(); }
  /// The CPU build's checks (ConfigError for a margin that is not > 0).
  explicit ContrastiveMarginCuda(const contra::Params& p);
  ~ContrastiveMarginCuda() override;

  /// z.z: [M, D] f32 on cuda. Writes the value, dL/dz (out.grad, on cuda)
  /// and the metrics "pos_dist", "neg_dist" and "active_negatives". Runs on
  /// contra::cuda::current_stream() and synchronises it once, to read the value.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_pairs(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double margin_;
  bool normalize_, sum_;
  std::int64_t chunk_;
  std::unique_ptr<ContrastiveMarginCudaState> state_;
};

}  // namespace contra::plugins
