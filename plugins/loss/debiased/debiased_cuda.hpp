#pragma once
/// \file
/// debiased on the GPU: the same loss, parameters and metrics as the CPU
/// build (debiased.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "debiased.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct DebiasedCudaState;

/// Pairs::all, with the memory's keys as negatives, as the CPU build defines
/// them; the computation is hcl's (plugins/loss/debiased_hcl_cuda.cuh) with
/// β = 0. Explicit negatives (Pairs::negative, Pairs::memory_negative) as the
/// CPU build takes them (see hcl_cuda.hpp).
class DebiasedCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Debiased::schema(); }
  explicit DebiasedCuda(const contra::Params& p);
  ~DebiasedCuda() override;

  /// z.z: [M, D] f32 on cuda; the memory's keys on cuda or on the CPU (copied
  /// over). Writes the value, dL/dz (out.grad, on cuda) and the metrics
  /// "pos_sim", "neg_sim" and "clamped". Runs on contra::cuda::current_stream()
  /// and synchronises it once, to read the value.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_negatives(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double temperature_, tau_plus_;
  std::int64_t chunk_;
  std::unique_ptr<DebiasedCudaState> state_;
};

}  // namespace contra::plugins
