#pragma once
/// \file
/// `normalize`: u8 HWC -> f32 CHW, (x / 255 - mean[c]) / std[c].

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <array>
#include <vector>

namespace contra::plugins {

/// The last step of an augmentation chain. A single mean (std) value applies
/// to every channel; otherwise there must be one per channel. Values come from
/// a 256-entry table per channel computed in double at construction, so each
/// output is (x / 255 - mean) / std rounded once to float.
class Normalize final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  explicit Normalize(const contra::Params& p);

  /// u8 HWC in, f32 CHW out of the same geometry. Throws ConfigError for f32
  /// input or a mean/std list whose length is neither 1 nor the channel count.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  std::vector<double> mean_, std_;
  std::array<std::array<float, 256>, 4> table_{};  // table_[c][x]
};

}  // namespace contra::plugins
