#pragma once
/// \file
/// triplet on the GPU: the same loss, parameters and metrics as the CPU build
/// (triplet.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "triplet.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct TripletCudaState;

/// Mined triplets (Pairs::triplets): one warp per triplet, exact distances in
/// double, the gradient added with atomics. Pairs::all: per block of `chunk`
/// anchor rows, a Gram block by cuBLAS (centred rows for Euclidean distances,
/// as on the CPU; TF32 or bf16 when contra::cuda::math_mode() asks), one
/// kernel per anchor row over its positives × negatives writing the
/// coefficients of dL/dx, then two GEMMs plus row and column sums. Unlike the
/// CPU build, a pair whose distance is recomputed from the difference (the
/// two rows nearly equal) still enters the gradient through the Gram form.
class TripletCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Triplet::schema(); }
  /// The CPU build's checks (ConfigError for squared with cosine distances).
  explicit TripletCuda(const contra::Params& p);
  ~TripletCuda() override;

  /// z.z: [M, D] f32 on cuda. Writes the value, dL/dz (out.grad, on cuda)
  /// and the metrics "active_triplets", "pos_dist", "neg_dist" and
  /// "triplets". Runs on contra::cuda::current_stream() and synchronises it
  /// once, to read the value.
  contra::PairsForms pairs_forms() const override { return contra::plugins::pairs_forms::all_or_triplets(); }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double margin_;
  bool cosine_, squared_, soft_, mean_nonzero_, normalize_;
  std::int64_t chunk_;
  std::unique_ptr<TripletCudaState> state_;
};

}  // namespace contra::plugins
