#include "normalize.hpp"

#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

std::string count(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

void check_length(const char* name, std::size_t n, std::int64_t channels) {
  if (n != 1 && static_cast<std::int64_t>(n) != channels)
    throw ConfigError(std::string("normalize: ") + name + " has " + count(n, "value", "values") +
                      " but the image has " + count(static_cast<std::size_t>(channels), "channel", "channels") +
                      " (give 1 value for all channels, or 1 per channel)");
}

template <int C>
void normalize_hwc(const std::uint8_t* src, float* dst, std::int64_t pixels, std::int64_t channels,
                   const std::array<std::array<float, 256>, 4>& table) {
  const std::int64_t ch = C > 0 ? C : channels;
  for (std::int64_t c = 0; c < ch; ++c) {
    const float* t = table[static_cast<std::size_t>(c)].data();
    float* d = dst + c * pixels;
    const std::uint8_t* s = src + c;
    for (std::int64_t i = 0; i < pixels; ++i) d[i] = t[s[i * ch]];
  }
}

}  // namespace

contra::Schema Normalize::schema() {
  return contra::Schema("normalize", "u8 HWC to f32 CHW: (x / 255 - mean) / std per channel")
      .add<std::vector<double>>("mean", std::vector<double>{0.5},
                                "per-channel mean in [0, 1] units; one value applies to every channel")
      .length(1, 4)
      .add<std::vector<double>>("std", std::vector<double>{0.5},
                                "per-channel standard deviation; one value applies to every channel")
      .range(1e-6, 1e6)
      .length(1, 4);
}

Normalize::Normalize(const contra::Params& p)
    : mean_(p.get<std::vector<double>>("mean")), std_(p.get<std::vector<double>>("std")) {
  for (std::size_t c = 0; c < 4; ++c) {
    double m = mean_.size() == 1 ? mean_[0] : (c < mean_.size() ? mean_[c] : 0.0);
    double s = std_.size() == 1 ? std_[0] : (c < std_.size() ? std_[c] : 1.0);
    for (int x = 0; x < 256; ++x) table_[c][static_cast<std::size_t>(x)] = static_cast<float>((x / 255.0 - m) / s);
  }
}

contra::ImageFormat Normalize::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("normalize: expects u8 HWC images, but the image here is already ") +
                      dtype_name(in.dtype) + " CHW; normalize must appear once, as the last step of a chain");
  if (in.shape.channels < 1 || in.shape.channels > 4)
    throw ConfigError("normalize: expects 1 to 4 channels, but the image has " +
                      std::to_string(in.shape.channels));
  check_length("mean", mean_.size(), in.shape.channels);
  check_length("std", std_.size(), in.shape.channels);
  return {in.shape, DType::f32};
}

void Normalize::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng&) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || in.dim(2) < 1 || in.dim(2) > 4)
    throw UsageError(std::string("normalize: expects a u8 [H, W, C] image with 1 to 4 channels, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
  if ((mean_.size() != 1 && static_cast<std::int64_t>(mean_.size()) != C) ||
      (std_.size() != 1 && static_cast<std::int64_t>(std_.size()) != C))
    throw UsageError("normalize: called with a " + std::to_string(C) +
                     "-channel image that output_format() would have refused");
  out.ensure({C, H, W}, DType::f32);
  const std::uint8_t* s = in.data<std::uint8_t>();
  float* d = out.data<float>();
  switch (C) {
    case 1: normalize_hwc<1>(s, d, H * W, C, table_); break;
    case 3: normalize_hwc<3>(s, d, H * W, C, table_); break;
    default: normalize_hwc<0>(s, d, H * W, C, table_); break;
  }
}

}  // namespace contra::plugins
