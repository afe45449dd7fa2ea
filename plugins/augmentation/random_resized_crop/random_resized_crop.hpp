#pragma once
/// \file
/// `random_resized_crop`: torchvision's RandomResizedCrop on u8 HWC images.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// A crop rectangle in pixels. `fallback` is true when the 10 random attempts
/// all failed and the centre crop was taken instead.
struct CropBox {
  std::int64_t top = 0;
  std::int64_t left = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
  bool fallback = false;
};

/// Bilinear resize of `box` inside a u8 HWC image whose rows are `src_width`
/// pixels of `channels` bytes, into `dst` (u8 HWC, out_height × out_width).
/// align_corners=false (half-pixel centres, source coordinates clamped at 0),
/// as torch.nn.functional.interpolate; no antialiasing; rounded to nearest.
/// Allocates nothing. `box` must lie inside the image; outputs >= 1 pixel.
void resize_bilinear_u8(const std::uint8_t* src, std::int64_t src_width, std::int64_t channels,
                        const CropBox& box, std::uint8_t* dst, std::int64_t out_height, std::int64_t out_width);

/// Crop a random area fraction in `scale` with an aspect ratio (width/height)
/// drawn log-uniformly from `ratio`, then resize to `size` × `size`.
class RandomResizedCrop final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when scale or ratio has min > max.
  explicit RandomResizedCrop(const contra::Params& p);

  /// u8 HWC in; u8 HWC out, size × size (the input's height × width when size
  /// is 0). Throws ConfigError for f32 input (e.g. placed after normalize).
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

  /// The crop box for an image of height × width, exactly as
  /// torchvision.transforms.RandomResizedCrop.get_params chooses it: up to 10
  /// attempts (area, then log-aspect, then top, then left), else the centre
  /// crop clamped to the ratio range. Draws only from `rng`.
  CropBox sample_box(std::int64_t height, std::int64_t width, contra::Rng& rng) const;

 private:
  std::int64_t size_;
  double scale_lo_, scale_hi_;
  double ratio_lo_, ratio_hi_;
  double log_ratio_lo_, log_ratio_hi_;
};

}  // namespace contra::plugins
