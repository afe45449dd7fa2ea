#pragma once
/// \file
/// A batch as it reaches the train step.

#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra {

struct Batch {
  std::int64_t epoch = 0;
  std::int64_t step = 0;              ///< 0-based global step
  std::vector<std::int64_t> ids;      ///< N sample indices in the source
  std::vector<std::int64_t> labels;   ///< N labels; empty when the source has none
  /// The views stacked: [V*N, C, H, W] f32, row v*N+i is view v of sample i.
  /// With views of several sizes (multi-crop), `images` holds the first
  /// group of same-size views and `more_images` the next groups, in view
  /// order; embeddings keep the same row order across groups.
  Tensor images;
  std::vector<Tensor> more_images;
  std::int64_t views = 0;             ///< V, all groups together, every tower's
  /// The inputs of the towers after the first ([tower.NAME]), in tower
  /// order, one view each (views V-T+1 .. V-1): i32 token ids [N, L] for a
  /// text tower. Empty for a pipeline of one tower. Since SDK ABI 4.
  std::vector<Tensor> tower_inputs;
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(ids.size()); }
};

}  // namespace contra
