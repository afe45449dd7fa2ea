#include "equalize.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace contra::plugins {

bool equalize_lut(const std::array<std::int64_t, 256>& hist, std::array<std::uint8_t, 256>& lut) {
  std::int64_t total = 0, last = 0;
  for (int v = 0; v < 256; ++v) {
    total += hist[static_cast<std::size_t>(v)];
    if (hist[static_cast<std::size_t>(v)] != 0) last = hist[static_cast<std::size_t>(v)];
  }
  const std::int64_t step = (total - last) / 255;
  if (step == 0) {
    for (int v = 0; v < 256; ++v) lut[static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(v);
    return false;
  }
  std::int64_t n = step / 2;  // running (step / 2 + values below v)
  for (int v = 0; v < 256; ++v) {
    lut[static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(std::min<std::int64_t>(n / step, 255));
    n += hist[static_cast<std::size_t>(v)];
  }
  return true;
}

void equalize_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, std::int64_t channels) {
  const std::int64_t C = channels;
  std::array<std::int64_t, 256> hist;
  std::array<std::uint8_t, 256> lut;
  for (std::int64_t c = 0; c < C; ++c) {
    hist.fill(0);
    for (std::int64_t i = 0; i < pixels; ++i) ++hist[src[i * C + c]];
    equalize_lut(hist, lut);
    for (std::int64_t i = 0; i < pixels; ++i) dst[i * C + c] = lut[src[i * C + c]];
  }
}

contra::Schema Equalize::schema() {
  return contra::Schema("equalize",
                        "equalise the histogram of each channel with probability p (PIL ImageOps.equalize)")
      .add<double>("p", 1.0, "probability of equalising").range(0.0, 1.0);
}

Equalize::Equalize(const contra::Params& p) : p_(p.get<double>("p")) {}

contra::ImageFormat Equalize::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("equalize: expects u8 HWC images, but the image here is ") + dtype_name(in.dtype) +
                      " CHW; place it before normalize, which must be the last step of a chain");
  return in;
}

void Equalize::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3)
    throw UsageError(std::string("equalize: expects a u8 [H, W, C] image, got ") + dtype_name(in.dtype()) + " " +
                     in.shape().str());
  out.ensure(in.shape(), DType::u8);
  if (!rng.bernoulli(p_)) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  equalize_u8(in.data<std::uint8_t>(), out.data<std::uint8_t>(), in.dim(0) * in.dim(1), in.dim(2));
}

}  // namespace contra::plugins
