#pragma once
/// \file
/// `solarize`: invert the pixels at or above a threshold, with probability p
/// (torchvision RandomSolarize).

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// Every value x >= threshold becomes 255 - x, in place of `n` values from
/// `src` into `dst`; others are copied. threshold 0 inverts everything, 256
/// nothing. Allocates nothing.
void solarize_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t n, int threshold);

/// Draws one uniform number from the rng per call (whatever p is); solarizes
/// when it is below p, otherwise copies. u8 HWC, any channel count.
class Solarize final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit Solarize(const contra::Params& p);

  /// Same format out as in. Throws ConfigError for f32 input (e.g. placed
  /// after normalize).
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  int threshold_;
  double p_;
};

}  // namespace contra::plugins
