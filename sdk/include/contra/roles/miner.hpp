#pragma once
/// \file
/// Embeddings of a batch, and the miner that picks which pairs count.

#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace contra {

/// The embeddings of one batch: V views of N samples, row r = v * N + i.
/// Rows with the same `sample` are views of one sample (positives).
struct Embeddings {
  Tensor z;                                 ///< [V*N, D] f32
  const std::vector<std::int64_t>* sample;  ///< per row: sample index in the batch, 0..N-1
  const std::vector<std::int64_t>* label;   ///< per row: class label; null when unknown
  std::int64_t views = 0;                   ///< V
  std::int64_t rows() const noexcept { return z.dim(0); }
};

struct Triplet {
  std::int32_t anchor, positive, negative;
};

/// What a miner selected. `all` means every pair the sample grouping implies
/// (views of one sample are positives, everything else negative).
struct Pairs {
  bool all = false;
  std::vector<std::pair<std::int32_t, std::int32_t>> positive;  ///< (anchor, positive) rows
  std::vector<std::pair<std::int32_t, std::int32_t>> negative;  ///< (anchor, negative) rows
  std::vector<Triplet> triplets;
  void clear() {
    all = false;
    positive.clear();
    negative.clear();
    triplets.clear();
  }
};

class Miner : public Plugin {
 public:
  /// Fill `out` (already cleared) from the batch's embeddings. Called from one
  /// thread.
  virtual void mine(const Embeddings& z, Pairs& out) = 0;
};

}  // namespace contra
