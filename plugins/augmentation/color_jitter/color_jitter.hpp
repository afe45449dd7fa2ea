#pragma once
/// \file
/// `color_jitter`: torchvision's ColorJitter (brightness, contrast, saturation
/// and hue in a random order) on u8 HWC gray or RGB images, with probability p.
///
/// The adjust_* functions reproduce torchvision's tensor functions on uint8
/// images operation for operation in float32 (F.adjust_brightness,
/// adjust_contrast, adjust_saturation, adjust_hue), including their truncation
/// to uint8. Each may run in place (src == dst) and allocates nothing.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <array>
#include <cstdint>

namespace contra::plugins {

/// `n` values (any channel count): trunc(clamp(float(factor) x, 0, 255)).
void adjust_brightness_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t n, double factor);

/// Blend each value with the mean m of the image's gray levels (the luma of
/// each RGB pixel truncated to u8, or the values of a 1-channel image):
/// trunc(clamp(float(factor) x + float(1 - factor) m, 0, 255)). `channels`
/// must be 1 or 3.
void adjust_contrast_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, std::int64_t channels,
                        double factor);

/// RGB only: blend each channel with the pixel's luma truncated to u8,
/// trunc(clamp(float(factor) x + float(1 - factor) gray, 0, 255)).
void adjust_saturation_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, double factor);

/// RGB only: x / 255 to HSV, h = (h + hue_factor) mod 1, back to RGB, times
/// 255 truncated; hue_factor in [-0.5, 0.5].
void adjust_hue_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, double hue_factor);

/// Everything one call draws.
struct JitterDraw {
  bool applied = false;                 ///< false: the image is copied unchanged
  std::array<int, 4> order{0, 1, 2, 3};  ///< 0 brightness, 1 contrast, 2 saturation, 3 hue
  double brightness = 1.0;              ///< factor (1 when the op is off)
  double contrast = 1.0;
  double saturation = 1.0;
  double hue = 0.0;                     ///< shift in turns (0 when the op is off)
};

class ColorJitter final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit ColorJitter(const contra::Params& p);

  /// Same format out as in. Throws ConfigError for f32 input (e.g. placed
  /// after normalize) or a channel count other than 1 or 3.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

  /// The draws of one call, in this order: one uniform (applied when below
  /// p); then, if applied, a random permutation of the 4 operations
  /// (Fisher-Yates, rng.integer(0, i) for i = 3, 2, 1), then the factors of
  /// the enabled operations in the order brightness, contrast, saturation,
  /// hue, each uniform in its range. Disabled operations draw nothing.
  JitterDraw sample(contra::Rng& rng) const;

  /// True when the operation (0..3) is enabled (its strength is not 0).
  bool enabled(int op) const noexcept { return strength_[static_cast<std::size_t>(op)] > 0; }

 private:
  std::array<double, 4> strength_;  // brightness, contrast, saturation, hue
  double p_;
};

}  // namespace contra::plugins
