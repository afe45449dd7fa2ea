#pragma once
/// \file
/// distance_weighted on the GPU: the same draws, parameters and checks as the
/// CPU build (distance_weighted.hpp, README.md), for embeddings on Device::cuda.

#include "distance_weighted.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>

namespace contra::plugins {

struct DistanceWeightedCudaState;

/// The cosine similarities of each block of 1024 anchor rows from one cuBLAS
/// Gram product of the normalised rows (TF32 or bf16 products when
/// contra::cuda::math_mode() asks), read back; the CPU build's
/// DistanceWeightedSampler draws from them with the same Rng streams, so a
/// run draws what the CPU build draws from the same similarities.
class DistanceWeightedCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return DistanceWeighted::schema(); }
  explicit DistanceWeightedCuda(const contra::Params& p);
  ~DistanceWeightedCuda() override;

  /// z.z: [M, D] f32 on cuda; the rest as the CPU build. Runs on
  /// contra::cuda::current_stream() and synchronises it once per block of
  /// anchor rows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.triplets = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  DistanceWeightedSampler sampler_;
  bool use_labels_;
  std::unique_ptr<DistanceWeightedCudaState> state_;
};

}  // namespace contra::plugins
