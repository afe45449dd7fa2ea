#pragma once
/// \file
/// `equalize`: per-channel histogram equalisation with probability p, exactly
/// as PIL's ImageOps.equalize and torchvision's F.equalize.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <array>
#include <cstdint>

namespace contra::plugins {

/// The 256-entry lookup table equalising a channel whose histogram is `hist`
/// (hist[v] = number of values v): with `last` the count of the highest value
/// present and step = (sum(hist) - last) / 255 (integer division), the
/// identity when step is 0, else lut[v] = min(255, (step / 2 + sum of hist[u]
/// for u < v) / step). Returns false (and the identity) when step is 0.
bool equalize_lut(const std::array<std::int64_t, 256>& hist, std::array<std::uint8_t, 256>& lut);

/// Equalise each channel of a u8 HWC image of `pixels` pixels of `channels`
/// values from `src` into `dst`. Allocates nothing (histogram and table live on
/// the stack).
void equalize_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, std::int64_t channels);

/// Draws one uniform number from the rng per call (whatever p is); equalises
/// when it is below p, otherwise copies. u8 HWC, any channel count.
class Equalize final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit Equalize(const contra::Params& p);

  /// Same format out as in. Throws ConfigError for f32 input (e.g. placed
  /// after normalize).
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  double p_;
};

}  // namespace contra::plugins
