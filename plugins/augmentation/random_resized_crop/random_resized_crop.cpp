#include "random_resized_crop.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

/// Reads a [min, max] pair, refusing min > max with a diagnostic that names
/// the key and where it was set.
std::pair<double, double> min_max(const contra::Params& p, const char* name) {
  auto v = p.get<std::vector<double>>(name);
  if (v[0] > v[1]) {
    contra::Diagnostic d{p.where(name), p.prefix() + "." + name,
                         std::string("expected [min, max] with min <= max, found ") +
                             contra::value_to_string(contra::Value(v))};
    throw ConfigError(d.str());
  }
  return {v[0], v[1]};
}

/// Python's round(): to nearest, ties to even (the default FP rounding mode).
std::int64_t round_half_even(double x) { return static_cast<std::int64_t>(std::nearbyint(x)); }

/// Round to nearest, ties to even (as torch.round), for v in [0, 255 + eps].
/// Adding and subtracting 2^23 rounds in the FPU's default mode; vectorises.
inline float round_to_u8(float v) {
  constexpr float magic = 0x1.0p23f;
  return std::min((v + magic) - magic, 255.0f);
}

template <int C>
void resize_rows(const std::uint8_t* src, std::int64_t src_width, std::int64_t channels, const CropBox& box,
                 std::uint8_t* dst, std::int64_t out_height, std::int64_t out_width) {
  const std::int64_t ch = C > 0 ? C : channels;
  const float sy = static_cast<float>(box.height) / static_cast<float>(out_height);
  const float sx = static_cast<float>(box.width) / static_cast<float>(out_width);
  const std::int64_t row_stride = src_width * ch;
  // Column taps are computed once per tile of output columns and reused for
  // every output row; fixed-size so that nothing is allocated.
  constexpr std::int64_t tile = 512;
  std::int64_t xa[tile], xb[tile];
  float fx[tile];
  for (std::int64_t t0 = 0; t0 < out_width; t0 += tile) {
    const std::int64_t tn = std::min(tile, out_width - t0);
    for (std::int64_t i = 0; i < tn; ++i) {
      float s = std::max(0.0f, sx * (static_cast<float>(t0 + i) + 0.5f) - 0.5f);
      std::int64_t x0 = std::min(static_cast<std::int64_t>(s), box.width - 1);
      std::int64_t x1 = x0 + (x0 < box.width - 1 ? 1 : 0);
      fx[i] = s - static_cast<float>(x0);
      xa[i] = (box.left + x0) * ch;
      xb[i] = (box.left + x1) * ch;
    }
    for (std::int64_t y = 0; y < out_height; ++y) {
      float s = std::max(0.0f, sy * (static_cast<float>(y) + 0.5f) - 0.5f);
      std::int64_t y0 = std::min(static_cast<std::int64_t>(s), box.height - 1);
      std::int64_t y1 = y0 + (y0 < box.height - 1 ? 1 : 0);
      const float h1 = s - static_cast<float>(y0), h0 = 1.0f - h1;
      const std::uint8_t* r0 = src + (box.top + y0) * row_stride;
      const std::uint8_t* r1 = src + (box.top + y1) * row_stride;
      std::uint8_t* d = dst + (y * out_width + t0) * ch;
      for (std::int64_t i = 0; i < tn; ++i) {
        const float w1 = fx[i], w0 = 1.0f - w1;
        const std::uint8_t* a0 = r0 + xa[i];
        const std::uint8_t* b0 = r0 + xb[i];
        const std::uint8_t* a1 = r1 + xa[i];
        const std::uint8_t* b1 = r1 + xb[i];
        for (std::int64_t c = 0; c < ch; ++c) {
          float v = h0 * (w0 * static_cast<float>(a0[c]) + w1 * static_cast<float>(b0[c])) +
                    h1 * (w0 * static_cast<float>(a1[c]) + w1 * static_cast<float>(b1[c]));
          d[i * ch + c] = static_cast<std::uint8_t>(round_to_u8(v));
        }
      }
    }
  }
}

}  // namespace

void resize_bilinear_u8(const std::uint8_t* src, std::int64_t src_width, std::int64_t channels,
                        const CropBox& box, std::uint8_t* dst, std::int64_t out_height, std::int64_t out_width) {
  switch (channels) {
    case 1: resize_rows<1>(src, src_width, channels, box, dst, out_height, out_width); break;
    case 3: resize_rows<3>(src, src_width, channels, box, dst, out_height, out_width); break;
    default: resize_rows<0>(src, src_width, channels, box, dst, out_height, out_width); break;
  }
}

contra::Schema RandomResizedCrop::schema() {
  return contra::Schema("random_resized_crop",
                        "crop a random area and aspect ratio, then resize bilinearly (torchvision RandomResizedCrop)")
      .add<std::int64_t>("size", 0, "output side in pixels (square); 0 keeps the input's height and width")
      .range(0, 4096)
      .add<std::vector<double>>("scale", std::vector<double>{0.08, 1.0},
                                "[min, max] fraction of the image area to crop")
      .range(0.0, 1.0)
      .length(2, 2)
      .add<std::vector<double>>("ratio", std::vector<double>{3.0 / 4.0, 4.0 / 3.0},
                                "[min, max] aspect ratio (width / height) of the crop, drawn log-uniformly")
      .range(1e-3, 1e3)
      .length(2, 2);
}

RandomResizedCrop::RandomResizedCrop(const contra::Params& p) : size_(p.get<std::int64_t>("size")) {
  std::tie(scale_lo_, scale_hi_) = min_max(p, "scale");
  std::tie(ratio_lo_, ratio_hi_) = min_max(p, "ratio");
  log_ratio_lo_ = std::log(ratio_lo_);
  log_ratio_hi_ = std::log(ratio_hi_);
}

contra::ImageFormat RandomResizedCrop::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("random_resized_crop: expects u8 HWC images, but the image here is ") +
                      dtype_name(in.dtype) +
                      " CHW; place it before normalize, which must be the last step of a chain");
  contra::ImageFormat out = in;
  if (size_ > 0) out.shape.height = out.shape.width = size_;
  return out;
}

CropBox RandomResizedCrop::sample_box(std::int64_t height, std::int64_t width, contra::Rng& rng) const {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale_lo_, scale_hi_);
    const double aspect = std::exp(rng.uniform(log_ratio_lo_, log_ratio_hi_));
    const std::int64_t w = round_half_even(std::sqrt(target * aspect));
    const std::int64_t h = round_half_even(std::sqrt(target / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      CropBox b;
      b.height = h;
      b.width = w;
      b.top = rng.integer(0, height - h);
      b.left = rng.integer(0, width - w);
      return b;
    }
  }
  // Centre crop, clamped to the ratio range.
  CropBox b;
  b.fallback = true;
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  if (in_ratio < ratio_lo_) {
    b.width = width;
    b.height = std::clamp<std::int64_t>(round_half_even(static_cast<double>(width) / ratio_lo_), 1, height);
  } else if (in_ratio > ratio_hi_) {
    b.height = height;
    b.width = std::clamp<std::int64_t>(round_half_even(static_cast<double>(height) * ratio_hi_), 1, width);
  } else {
    b.width = width;
    b.height = height;
  }
  b.top = (height - b.height) / 2;
  b.left = (width - b.width) / 2;
  return b;
}

void RandomResizedCrop::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || in.dim(0) < 1 || in.dim(1) < 1 || in.dim(2) < 1)
    throw UsageError(std::string("random_resized_crop: expects a u8 [H, W, C] image, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
  const CropBox box = sample_box(H, W, rng);
  const std::int64_t oh = size_ > 0 ? size_ : H, ow = size_ > 0 ? size_ : W;
  out.ensure({oh, ow, C}, DType::u8);
  resize_bilinear_u8(in.data<std::uint8_t>(), W, C, box, out.data<std::uint8_t>(), oh, ow);
}

}  // namespace contra::plugins
