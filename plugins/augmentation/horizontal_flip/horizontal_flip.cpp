#include "horizontal_flip.hpp"

#include <cstdint>
#include <cstring>
#include <string>

namespace contra::plugins {

namespace {

/// Mirror `rows` rows of `width` pixels of `C` elements each.
template <class T, int C>
void flip_rows(const T* src, T* dst, std::int64_t rows, std::int64_t width, std::int64_t channels) {
  const std::int64_t ch = C > 0 ? C : channels;
  for (std::int64_t y = 0; y < rows; ++y) {
    const T* s = src + y * width * ch;
    T* d = dst + y * width * ch;
    for (std::int64_t x = 0; x < width; ++x) {
      const T* sp = s + (width - 1 - x) * ch;
      for (std::int64_t c = 0; c < ch; ++c) d[x * ch + c] = sp[c];
    }
  }
}

}  // namespace

contra::Schema HorizontalFlip::schema() {
  return contra::Schema("horizontal_flip", "mirror the image left-right with probability p")
      .add<double>("p", 0.5, "probability of flipping").range(0.0, 1.0);
}

HorizontalFlip::HorizontalFlip(const contra::Params& p) : p_(p.get<double>("p")) {}

void HorizontalFlip::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.rank() != 3 || (in.dtype() != DType::u8 && in.dtype() != DType::f32))
    throw UsageError(std::string("horizontal_flip: expects a u8 [H, W, C] or f32 [C, H, W] image, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  out.ensure(in.shape(), in.dtype());
  const bool flip = rng.bernoulli(p_);
  if (!flip) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  if (in.dtype() == DType::u8) {  // HWC: mirror pixels of C bytes
    const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
    const auto* s = in.data<std::uint8_t>();
    auto* d = out.data<std::uint8_t>();
    switch (C) {
      case 1: flip_rows<std::uint8_t, 1>(s, d, H, W, C); break;
      case 3: flip_rows<std::uint8_t, 3>(s, d, H, W, C); break;
      default: flip_rows<std::uint8_t, 0>(s, d, H, W, C); break;
    }
  } else {  // CHW: mirror each of the C*H rows
    flip_rows<float, 1>(in.data<float>(), out.data<float>(), in.dim(0) * in.dim(1), in.dim(2), 1);
  }
}

}  // namespace contra::plugins
