#include "random_crop.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace contra::plugins {

void crop_padded_u8(const std::uint8_t* src, std::int64_t height, std::int64_t width, std::int64_t channels,
                    std::int64_t padding, std::uint8_t fill, std::int64_t top, std::int64_t left, std::uint8_t* dst,
                    std::int64_t out_height, std::int64_t out_width) {
  const std::int64_t C = channels;
  // Columns of the window that fall inside the image: [x0, x1) in output
  // coordinates; the rest of each row is fill.
  const std::int64_t sx0 = left - padding;  // source column of output column 0
  const std::int64_t x0 = std::clamp<std::int64_t>(-sx0, 0, out_width);
  const std::int64_t x1 = std::clamp<std::int64_t>(width - sx0, x0, out_width);
  const std::size_t row_bytes = static_cast<std::size_t>(out_width * C);
  for (std::int64_t y = 0; y < out_height; ++y) {
    std::uint8_t* d = dst + static_cast<std::size_t>(y) * row_bytes;
    const std::int64_t sy = top - padding + y;
    if (sy < 0 || sy >= height) {
      std::memset(d, fill, row_bytes);
      continue;
    }
    if (x0 > 0) std::memset(d, fill, static_cast<std::size_t>(x0 * C));
    if (x1 > x0)
      std::memcpy(d + x0 * C, src + (sy * width + sx0 + x0) * C, static_cast<std::size_t>((x1 - x0) * C));
    if (x1 < out_width) std::memset(d + x1 * C, fill, static_cast<std::size_t>((out_width - x1) * C));
  }
}

contra::Schema RandomCrop::schema() {
  return contra::Schema("random_crop", "pad with a constant, then crop at a uniformly random position "
                                       "(torchvision RandomCrop)")
      .add<std::int64_t>("size", 0, "output side in pixels (square); 0 keeps the input's height and width")
      .range(0, 4096)
      .add<std::int64_t>("padding", 0, "pixels of constant padding added on every side before cropping")
      .range(0, 1024)
      .add<std::int64_t>("fill", 0, "value of the padding pixels, in every channel")
      .range(0, 255);
}

RandomCrop::RandomCrop(const contra::Params& p)
    : size_(p.get<std::int64_t>("size")),
      padding_(p.get<std::int64_t>("padding")),
      fill_(static_cast<std::uint8_t>(p.get<std::int64_t>("fill"))) {}

contra::ImageFormat RandomCrop::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("random_crop: expects u8 HWC images, but the image here is ") +
                      dtype_name(in.dtype) + " CHW; place it before normalize, which must be the last step of a chain");
  const std::int64_t ph = in.shape.height + 2 * padding_, pw = in.shape.width + 2 * padding_;
  if (size_ > ph || size_ > pw)
    throw ConfigError("random_crop: size " + std::to_string(size_) + " does not fit in the " +
                      std::to_string(ph) + "x" + std::to_string(pw) + " image (" + std::to_string(in.shape.height) +
                      "x" + std::to_string(in.shape.width) + " padded by " + std::to_string(padding_) +
                      "); lower size or raise padding");
  contra::ImageFormat out = in;
  if (size_ > 0) out.shape.height = out.shape.width = size_;
  return out;
}

CropOrigin RandomCrop::sample_origin(std::int64_t height, std::int64_t width, contra::Rng& rng) const {
  const std::int64_t th = size_ > 0 ? size_ : height, tw = size_ > 0 ? size_ : width;
  const std::int64_t ph = height + 2 * padding_, pw = width + 2 * padding_;
  if (th > ph || tw > pw)
    throw UsageError("random_crop: size " + std::to_string(size_) + " does not fit in a " + std::to_string(ph) +
                     "x" + std::to_string(pw) + " padded image");
  CropOrigin o;
  o.top = rng.integer(0, ph - th);
  o.left = rng.integer(0, pw - tw);
  return o;
}

void RandomCrop::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || in.dim(0) < 1 || in.dim(1) < 1 || in.dim(2) < 1)
    throw UsageError(std::string("random_crop: expects a u8 [H, W, C] image, got ") + dtype_name(in.dtype()) + " " +
                     in.shape().str());
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
  const CropOrigin o = sample_origin(H, W, rng);
  const std::int64_t oh = size_ > 0 ? size_ : H, ow = size_ > 0 ? size_ : W;
  out.ensure({oh, ow, C}, DType::u8);
  crop_padded_u8(in.data<std::uint8_t>(), H, W, C, padding_, fill_, o.top, o.left, out.data<std::uint8_t>(), oh,
                 ow);
}

}  // namespace contra::plugins
