#pragma once
/// \file
/// `gaussian_blur`: torchvision's GaussianBlur (sigma drawn per call, reflect
/// padding) applied with probability p, as SimCLR and BYOL use it.

#include <contra/rng.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins {

/// Largest kernel side.
inline constexpr int max_blur_kernel = 255;

/// The normalised 1-D Gaussian of odd size `k` (1..max_blur_kernel):
/// w[i] = exp(-0.5 ((i - (k - 1) / 2) / sigma)^2) / sum, computed in double
/// and rounded to float, as torchvision's _get_gaussian_kernel1d.
void gaussian_kernel(int k, double sigma, float* w);

/// Reflect padding index (torch's "reflect": -1 -> 1, n -> n - 2), repeated
/// as often as needed when i lies further out than n - 1; 0 when n is 1.
std::int64_t reflect_index(std::int64_t i, std::int64_t n) noexcept;

/// Separable convolution of a u8 HWC image with the odd `k`-tap kernel `w` in
/// both directions, reflect padding, horizontal pass then vertical pass in
/// float, rounded to nearest (ties to even, as torch.round) into `dst` (u8
/// HWC, same shape). Uses a thread_local float scratch that grows to the
/// largest image seen and is then reused; nothing else is allocated.
void blur_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t height, std::int64_t width,
             std::int64_t channels, const float* w, int k);

/// With probability p, blur with a Gaussian whose sigma is drawn uniformly
/// from [sigma min, sigma max) per call.
class GaussianBlur final : public contra::Augmentation {
 public:
  static contra::Schema schema();
  /// Throws ConfigError for an even or 1 kernel_size, or sigma min > max.
  explicit GaussianBlur(const contra::Params& p);

  /// Same format out as in. Throws ConfigError for f32 input (e.g. placed
  /// after normalize).
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

  /// kernel_size 0: SimCLR's choice for an image of side S = min(height,
  /// width): 2 ((S / 10) / 2) + 1 (integer divisions; 23 for 224, 3 for 28 or
  /// 32), at least 3 and at most max_blur_kernel.
  static int auto_kernel_size(std::int64_t height, std::int64_t width) noexcept;
  /// The kernel side used for an image of height × width.
  int kernel_size_for(std::int64_t height, std::int64_t width) const noexcept;
  /// One uniform draw in [sigma min, sigma max).
  double sample_sigma(contra::Rng& rng) const { return rng.uniform(sigma_lo_, sigma_hi_); }

 private:
  int kernel_size_;  // 0: auto
  double sigma_lo_, sigma_hi_;
  double p_;
};

}  // namespace contra::plugins
