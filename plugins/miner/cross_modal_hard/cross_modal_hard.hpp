#pragma once
/// \file
/// cross_modal_hard: for each row of a pipeline of several towers, the k
/// rows of another tower most similar to it among other samples: the
/// hardest captions for an image, and the hardest images for a caption.

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// With ẑ the L2-normalised rows and towers from Embeddings::view_tower,
/// each anchor row a of tower t gets
///   - positives: the rows of its own sample in the other towers' views;
///   - negatives: the k rows of the other towers' views, of other samples
///     (and, with `exclude_same_label`, of other labels), with the largest
///     ẑ_a·ẑ_n, most similar first (ties: the lower row).
/// Pairs come sorted by anchor. Rows of the same tower are never paired:
/// what the loss contrasts is the other modality, as CLIP does.
class CrossModalHard final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit CrossModalHard(const contra::Params& p);

  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.positive = true;
    l.negative = true;
    return l;
  }
  /// Throws UsageError for embeddings without view_tower (a pipeline of one
  /// tower), or without labels when `exclude_same_label`.
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  std::int64_t k_;
  bool exclude_same_label_;
  std::vector<float> unit_;   // [M, D] L2-normalised rows
  std::vector<float> norms_;  // [M] their norms before
  std::vector<float> sim_;   // [M, M] their cosine similarities
  std::vector<std::int32_t> candidates_;
};

}  // namespace contra::plugins
