#pragma once
/// \file
/// `random_crop`: torchvision's RandomCrop (constant padding, then a uniformly
/// placed crop) on u8 HWC images.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// Top-left corner of a crop in the padded image's coordinates (0 .. padded
/// side - crop side).
struct CropOrigin {
  std::int64_t top = 0;
  std::int64_t left = 0;
};

/// Copy the out_height × out_width window whose top-left corner is (top, left)
/// in the image padded by `padding` pixels of value `fill` on every side, from
/// a u8 HWC image (height × width × channels) into `dst` (u8 HWC). Pixels of
/// the window outside the image are `fill` in every channel. The window must
/// lie inside the padded image. Allocates nothing.
void crop_padded_u8(const std::uint8_t* src, std::int64_t height, std::int64_t width, std::int64_t channels,
                    std::int64_t padding, std::uint8_t fill, std::int64_t top, std::int64_t left, std::uint8_t* dst,
                    std::int64_t out_height, std::int64_t out_width);

/// Zero-pad (or `fill`-pad) by `padding` on all sides, then crop size × size
/// at a uniformly drawn position, as torchvision.transforms.RandomCrop.
class RandomCrop final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit RandomCrop(const contra::Params& p);

  /// u8 HWC in; u8 HWC out, size × size (the input's height × width when size
  /// is 0). Throws ConfigError for f32 input (e.g. placed after normalize) or
  /// a crop larger than the padded image.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

  /// The crop's top-left corner for an image of height × width: top uniform
  /// in [0, height + 2 padding - crop height], then left likewise, as
  /// torchvision's RandomCrop.get_params. Draws only from `rng`. Throws
  /// UsageError when the crop does not fit.
  CropOrigin sample_origin(std::int64_t height, std::int64_t width, contra::Rng& rng) const;

 private:
  std::int64_t size_;
  std::int64_t padding_;
  std::uint8_t fill_;
};

}  // namespace contra::plugins
