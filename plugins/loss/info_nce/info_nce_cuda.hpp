#pragma once
/// \file
/// info_nce on the GPU: the same loss, parameters and metrics as the CPU
/// build (info_nce.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "info_nce.hpp"

#include "../../cuda_support.cuh"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct InfoNceListedPairs;

/// Pairs::all with batch negatives, momentum keys (Embeddings::keys) and
/// memory keys as the CPU build defines them. Per block of `chunk` anchor
/// rows: S = ẑ_block · [batch candidates; memory keys]ᵀ / T by cuBLAS (TF32 or
/// bf16 tensor cores when contra::cuda::math_mode() asks), one fused kernel
/// per row (mask, max, exp, the positives' terms, the coefficients ∂loss/∂s
/// in place), then the gradient by two or three more products. Explicit
/// negatives (Pairs::negative, Pairs::memory_negative) as the CPU build takes
/// them: one dot product per listed pair, the same row pass over each row's
/// list, the pairs' gradients added with atomics.
class InfoNceCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return InfoNce::schema(); }
  explicit InfoNceCuda(const contra::Params& p);
  ~InfoNceCuda() override;

  /// z.z: [M, D] f32 on cuda; z.keys (optional) [M, D] and the memory's keys
  /// [K, D] on cuda or on the CPU (copied over). Writes the value, dL/dz
  /// (out.grad, [M, D] on cuda) and the metrics "pos_sim" and "neg_sim". Runs
  /// on contra::cuda::current_stream() and synchronises it once, to read the
  /// value. Memory: chunk × (M + K) floats of similarities plus a few M × D.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_listed_negatives(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double temperature_;
  std::int64_t chunk_;
  int batch_negatives_;  // 0 auto, 1 yes, 2 no

  contra::Tensor zhat_, khat_, norm_, sim_, dzhat_, stats_, sums_;
  contra::Tensor keys_copy_, memory_copy_, sample_, row_ids_, key_ids_;
  gpu::PinnedBuffer keys_staging_, memory_staging_, sample_staging_, row_ids_staging_, key_ids_staging_,
      sums_host_;
  std::unique_ptr<InfoNceListedPairs> listed_;  // explicit pairs' lists, host and device
};

}  // namespace contra::plugins
