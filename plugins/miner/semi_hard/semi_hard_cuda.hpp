#pragma once
/// \file
/// semi_hard on the GPU: the same triplets, parameters and checks as the CPU
/// build (semi_hard.hpp, README.md), for embeddings on Device::cuda.

#include "semi_hard.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>

namespace contra::plugins {

struct SemiHardCudaState;

/// Per block of anchor rows, a Gram block by cuBLAS (centred rows for
/// Euclidean distances, normalised rows for cosine, as on the CPU; TF32 or
/// bf16 products when contra::cuda::math_mode() asks), then one thread block
/// per anchor: for each of its positives p (a list built on the host), the
/// nearest negative farther than d(a,p) by a block reduction over the row
/// (the lower row on ties, a NaN distance counting as +inf as on the CPU),
/// and the farthest negative for the fallback. Only the chosen negative per
/// positive pair comes back to the host.
class SemiHardCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return SemiHard::schema(); }
  explicit SemiHardCuda(const contra::Params& p);
  ~SemiHardCuda() override;

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
  double margin_;
  bool skip_;
  bool use_labels_;
  std::unique_ptr<SemiHardCudaState> state_;
};

}  // namespace contra::plugins
