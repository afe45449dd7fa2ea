#pragma once
// The augment stage: each view of each sample goes through its view's chain
// of augmentations, drawing randomness keyed by (seed, epoch, sample id,
// view, position in the chain), and lands in the batch tensor of its size
// group. The towers after the first make their inputs here too (a text
// tower: each sample's text into a row of token ids, its view after the
// image views). Built once per run; run() is called for many batches at once.

#include "assembly/pipeline.hpp"
#include "graph/executor.hpp"

#include <memory>
#include <vector>

namespace contra::runtime {

class AugmentStage {
 public:
  /// Consecutive views whose chains end in the same image size.
  struct Group {
    std::int64_t first_view = 0, count = 0;
    ImageFormat format;  ///< final format of these views
  };

  /// Over the assembled pipeline's chains (which must outlive the stage);
  /// `seed` keys every view's randomness.
  AugmentStage(const std::vector<ViewChain>& views, std::uint64_t seed,
               const std::vector<TextTower>* towers = nullptr);

  /// Views of the first tower (the images').
  std::int64_t views() const { return static_cast<std::int64_t>(view_chain_.size()); }
  const std::vector<Group>& groups() const { return groups_; }
  /// [C, H, W] of the first group: what the encoder is built for.
  Shape encoder_input() const;

  /// Augment every (view, sample) of `w.raw` into w.batch.images (and
  /// w.batch.more_images for further size groups), and each tower's texts
  /// of `w.texts` into w.batch.tower_inputs.
  void run(BatchWork& w) const;

 private:
  void make_tower_inputs(BatchWork& w) const;

  std::vector<const AugmentChain*> chains_;   // one per [[augment.view]] (or the shared chain)
  std::vector<std::size_t> view_chain_;       // view -> chain index
  std::vector<std::size_t> view_group_;       // view -> group index
  std::vector<Group> groups_;
  const std::vector<TextTower>* towers_ = nullptr;
  std::uint64_t seed_;
  bool parallel_ = true;
};

}  // namespace contra::runtime
