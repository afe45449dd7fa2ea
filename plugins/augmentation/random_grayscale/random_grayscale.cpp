#include "random_grayscale.hpp"

#include <cstring>
#include <string>

namespace contra::plugins {

void grayscale_rgb_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels) {
  for (std::int64_t i = 0; i < pixels; ++i) {
    const std::uint8_t l = luma_u8(src[3 * i], src[3 * i + 1], src[3 * i + 2]);
    dst[3 * i] = l;
    dst[3 * i + 1] = l;
    dst[3 * i + 2] = l;
  }
}

contra::Schema RandomGrayscale::schema() {
  return contra::Schema("random_grayscale",
                        "convert RGB to luma in all 3 channels with probability p (torchvision RandomGrayscale)")
      .add<double>("p", 0.1, "probability of converting").range(0.0, 1.0);
}

RandomGrayscale::RandomGrayscale(const contra::Params& p) : p_(p.get<double>("p")) {}

contra::ImageFormat RandomGrayscale::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("random_grayscale: expects u8 HWC images, but the image here is ") +
                      dtype_name(in.dtype) + " CHW; place it before normalize, which must be the last step of a chain");
  if (in.shape.channels != 1 && in.shape.channels != 3)
    throw ConfigError("random_grayscale: expects 1 (gray) or 3 (RGB) channels, but the image has " +
                      std::to_string(in.shape.channels));
  return in;
}

void RandomGrayscale::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || (in.dim(2) != 1 && in.dim(2) != 3))
    throw UsageError(std::string("random_grayscale: expects a u8 [H, W, C] image with 1 or 3 channels, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  out.ensure(in.shape(), DType::u8);
  const bool gray = rng.bernoulli(p_);
  if (!gray || in.dim(2) == 1) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  grayscale_rgb_u8(in.data<std::uint8_t>(), out.data<std::uint8_t>(), in.dim(0) * in.dim(1));
}

}  // namespace contra::plugins
