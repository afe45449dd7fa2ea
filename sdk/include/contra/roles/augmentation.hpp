#pragma once
/// \file
/// Augmentation: one random transform of one image. Images are u8 HWC until
/// the last step of a chain, which may produce f32 CHW (`normalize`).

#include <contra/rng.hpp>
#include <contra/roles/plugin.hpp>
#include <contra/roles/source.hpp>
#include <contra/tensor.hpp>

namespace contra {

/// The image layout at a point in an augmentation chain.
struct ImageFormat {
  ImageShape shape;
  DType dtype = DType::u8;  ///< u8: HWC layout; f32: CHW layout
  bool operator==(const ImageFormat& o) const noexcept {
    return shape == o.shape && dtype == o.dtype;
  }
};

class Augmentation : public Plugin {
 public:
  /// Format this transform produces from `in`; throws ConfigError when it
  /// cannot accept `in` (e.g. a crop larger than the image, or a u8 transform
  /// placed after normalize). Called once when the pipeline is built.
  virtual ImageFormat output_format(const ImageFormat& in) const = 0;

  /// Transform `in` into `out` drawing randomness only from `rng`. `out` is a
  /// reusable buffer: call out.ensure(...). `in` and `out` never alias.
  /// Called from several threads at once unless concurrency() is serial.
  virtual void apply(const Tensor& in, Tensor& out, Rng& rng) const = 0;

  virtual Concurrency concurrency() const { return Concurrency::parallel; }

  /// Chain control, for wrappers such as random_apply: how many of the
  /// augmentations after this one to skip for this image, drawn from `rng`
  /// before apply() is called with the same `rng`. Most return 0.
  virtual std::int64_t skip_following(Rng& rng) const {
    (void)rng;
    return 0;
  }
  /// The most skip_following() can return. The runtime checks, once, that
  /// skipping that many leaves the image format unchanged.
  virtual std::int64_t max_skip() const { return 0; }
};

}  // namespace contra
