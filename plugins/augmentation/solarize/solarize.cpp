#include "solarize.hpp"

#include <cstring>
#include <string>

namespace contra::plugins {

void solarize_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t n, int threshold) {
  // Compare in int so that threshold 256 (never) needs no special case; the
  // select vectorises.
  for (std::int64_t i = 0; i < n; ++i) {
    const int x = src[i];
    dst[i] = static_cast<std::uint8_t>(x >= threshold ? 255 - x : x);
  }
}

contra::Schema Solarize::schema() {
  return contra::Schema("solarize", "invert pixels at or above a threshold with probability p (torchvision RandomSolarize)")
      .add<std::int64_t>("threshold", 128, "values >= threshold become 255 - value; 0 inverts all, 256 none")
      .range(0, 256)
      .add<double>("p", 0.2, "probability of solarizing")
      .range(0.0, 1.0);
}

Solarize::Solarize(const contra::Params& p)
    : threshold_(p.get<int>("threshold")), p_(p.get<double>("p")) {}

contra::ImageFormat Solarize::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("solarize: expects u8 HWC images, but the image here is ") + dtype_name(in.dtype) +
                      " CHW; place it before normalize, which must be the last step of a chain");
  return in;
}

void Solarize::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3)
    throw UsageError(std::string("solarize: expects a u8 [H, W, C] image, got ") + dtype_name(in.dtype()) + " " +
                     in.shape().str());
  out.ensure(in.shape(), DType::u8);
  if (!rng.bernoulli(p_)) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  solarize_u8(in.data<std::uint8_t>(), out.data<std::uint8_t>(), in.numel(), threshold_);
}

}  // namespace contra::plugins
