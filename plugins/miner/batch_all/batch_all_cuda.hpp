#pragma once
/// \file
/// batch_all on the GPU: the same triplets, parameters and checks as the CPU
/// build (batch_all.hpp, README.md), for embeddings on Device::cuda.

#include "batch_all.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>

namespace contra::plugins {

struct BatchAllCudaState;

/// Without `only_violating` the triplets depend on the groups alone: listed on
/// the host, the embeddings never read. With it, the distances of each block
/// of 1024 anchor rows come from a cuBLAS Gram product (centred rows for
/// Euclidean distances, normalised rows for cosine, as on the CPU; TF32 or
/// bf16 products when contra::cuda::math_mode() asks), are read back, and the
/// CPU build's TripletLister keeps the violating triplets: the output is a
/// host list that can hold M³ entries, which the host writes in any case.
class BatchAllCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return BatchAll::schema(); }
  explicit BatchAllCuda(const contra::Params& p);
  ~BatchAllCuda() override;

  /// z.z: [M, D] f32 on cuda; the rest as the CPU build. Runs on
  /// contra::cuda::current_stream() and synchronises it once per block of
  /// anchor rows (only with `only_violating`).
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.triplets = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  bool cosine_;
  double margin_;
  bool only_violating_;
  bool use_labels_;
  std::unique_ptr<BatchAllCudaState> state_;
};

}  // namespace contra::plugins
