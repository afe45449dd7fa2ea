#pragma once
/// \file
/// `vertical_flip`: mirror an image top-bottom with probability p.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

namespace contra::plugins {

/// Draws one uniform number from the rng per call (whatever p is) and flips
/// when it is below p; otherwise copies. Works on u8 HWC and f32 CHW images.
class VerticalFlip final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit VerticalFlip(const contra::Params& p);

  /// Same format out as in.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override { return in; }
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  double p_;
};

}  // namespace contra::plugins
