#pragma once
/// \file
/// multi_similarity on the GPU: the same pairs, parameters and checks as the
/// CPU build (multi_similarity.hpp, README.md), for embeddings on Device::cuda.

#include "multi_similarity.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>

namespace contra::plugins {

struct MultiSimilarityCudaState;

/// The cosine similarities of each block of 1024 anchor rows from one cuBLAS
/// Gram product of the normalised rows (TF32 or bf16 products when
/// contra::cuda::math_mode() asks), read back; the CPU build's
/// multi_similarity_pairs selects the pairs from them.
class MultiSimilarityCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return MultiSimilarity::schema(); }
  explicit MultiSimilarityCuda(const contra::Params& p);
  ~MultiSimilarityCuda() override;

  /// z.z: [M, D] f32 on cuda; the rest as the CPU build. Runs on
  /// contra::cuda::current_stream() and synchronises it once per block of
  /// anchor rows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.positive = true;
    l.negative = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  double epsilon_;
  bool use_labels_;
  std::unique_ptr<MultiSimilarityCudaState> state_;
};

}  // namespace contra::plugins
