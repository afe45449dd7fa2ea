#pragma once
/// \file
/// `random_grayscale`: torchvision's RandomGrayscale on u8 HWC images.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// Luma of one RGB pixel exactly as torchvision's tensor rgb_to_grayscale on
/// uint8: float32 (0.2989 r + 0.587 g) + 0.114 b, truncated toward zero.
inline std::uint8_t luma_u8(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  const float l = (0.2989f * static_cast<float>(r) + 0.587f * static_cast<float>(g)) + 0.114f * static_cast<float>(b);
  return static_cast<std::uint8_t>(static_cast<int>(l));
}

/// Replace each of the `pixels` RGB pixels of `src` (u8, 3 interleaved
/// channels) by its luma_u8() in all three channels of `dst`. Allocates
/// nothing.
void grayscale_rgb_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels);

/// Draws one uniform number from the rng per call (whatever p is); with
/// probability p an RGB image becomes gray in all 3 channels. A 1-channel
/// image is always copied unchanged.
class RandomGrayscale final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit RandomGrayscale(const contra::Params& p);

  /// Same format out as in. Throws ConfigError for f32 input (e.g. placed
  /// after normalize) or a channel count other than 1 or 3.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  double p_;
};

}  // namespace contra::plugins
