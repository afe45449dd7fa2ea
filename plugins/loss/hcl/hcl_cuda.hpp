#pragma once
/// \file
/// hcl on the GPU: the same loss, parameters and metrics as the CPU build
/// (hcl.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "hcl.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct HclCudaState;

/// Pairs::all, with the memory's keys as negatives, as the CPU build defines
/// them. Per block of `chunk` anchor rows: similarities by cuBLAS (TF32 or
/// bf16 tensor cores when contra::cuda::math_mode() asks), one fused kernel
/// per row (mask, max, weights, the debiased estimator, ∂loss/∂s in place),
/// then the gradient by two or three more products. Explicit negatives
/// (Pairs::negative, Pairs::memory_negative) as the CPU build takes them: one
/// dot product per listed pair, the same row pass over each row's list, the
/// pairs' gradients added with atomics.
class HclCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Hcl::schema(); }
  explicit HclCuda(const contra::Params& p);
  ~HclCuda() override;

  /// z.z: [M, D] f32 on cuda; the memory's keys on cuda or on the CPU (copied
  /// over). Writes the value, dL/dz (out.grad, on cuda) and the metrics
  /// "pos_sim", "neg_sim", "weight_concentration" and "clamped". Runs on
  /// contra::cuda::current_stream() and synchronises it once, to read the value.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_negatives(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double temperature_, tau_plus_, beta_;
  std::int64_t chunk_;
  std::unique_ptr<HclCudaState> state_;
};

}  // namespace contra::plugins
