#pragma once
/// \file
/// batch_hard on the GPU: the same triplets, parameters and checks as the CPU
/// build (batch_hard.hpp, README.md), for embeddings on Device::cuda.

#include "batch_hard.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>

namespace contra::plugins {

struct BatchHardCudaState;

/// Per block of anchor rows, a Gram block by cuBLAS (centred rows for
/// Euclidean distances, normalised rows for cosine, as on the CPU; TF32 or
/// bf16 products when contra::cuda::math_mode() asks), then one thread block
/// per anchor reduces its row to the farthest positive and the nearest
/// negative (the lower row on ties). Only the chosen rows (3 int32 per anchor)
/// come back to the host.
class BatchHardCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return BatchHard::schema(); }
  explicit BatchHardCuda(const contra::Params& p);
  ~BatchHardCuda() override;

  /// z.z: [M, D] f32 on cuda; the rest as the CPU build. Runs on
  /// contra::cuda::current_stream() and synchronises it once, to read the
  /// choices back.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.triplets = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  bool cosine_;
  bool use_labels_;
  std::unique_ptr<BatchHardCudaState> state_;
};

}  // namespace contra::plugins
