#pragma once
/// \file
/// supcon on the GPU: the same loss, parameters and metrics as the CPU build
/// (supcon.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "supcon.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct SupConCudaState;

/// Pairs::all, positives by class (z.label) or by sample. Per block of
/// `chunk` anchor rows: S = ẑ_block ẑᵀ / T by cuBLAS (TF32 or bf16 tensor
/// cores when contra::cuda::math_mode() asks), one fused kernel per row
/// (max, softmax over a ≠ i, ∂loss/∂s in place), then the gradient by two
/// more products.
class SupConCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return SupCon::schema(); }
  explicit SupConCuda(const contra::Params& p);
  ~SupConCuda() override;

  /// z.z: [M, D] f32 on cuda. Writes the value, dL/dz (out.grad, on cuda)
  /// and the metrics "pos_sim", "neg_sim" and "anchors". Runs on
  /// contra::cuda::current_stream() and synchronises it once, to read the value.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_only(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double temperature_;
  std::int64_t chunk_;
  std::unique_ptr<SupConCudaState> state_;
};

}  // namespace contra::plugins
