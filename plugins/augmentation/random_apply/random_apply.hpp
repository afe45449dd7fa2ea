#pragma once
/// \file
/// `random_apply`: a marker in an augmentation chain meaning "apply the next
/// `count` augmentations with probability p, all or none" (torchvision
/// RandomApply), through the SDK's chain control (skip_following): the
/// runtime skips the next `count` augmentations when the draw fails. Its
/// own apply() is the identity.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

class RandomApply final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit RandomApply(const contra::Params& p);

  /// Same format out as in.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override { return in; }
  /// Copies `in` to `out` unchanged (u8 HWC or f32 CHW); draws nothing.
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

  /// Whether the next count() augmentations run for this sample and view.
  /// Exactly rng.bernoulli(p): one uniform() from `rng`, true when below p.
  /// The runtime calls it once with the random_apply op's own rng.
  bool decide(contra::Rng& rng) const { return rng.bernoulli(p_); }
  /// How many of the following augmentations the decision covers (>= 1).
  int count() const noexcept { return count_; }
  double p() const noexcept { return p_; }

  /// Chain control: 0 when decide() says apply, else count().
  std::int64_t skip_following(contra::Rng& rng) const override { return decide(rng) ? 0 : count_; }
  std::int64_t max_skip() const override { return count_; }

 private:
  double p_;
  int count_;
};

}  // namespace contra::plugins
