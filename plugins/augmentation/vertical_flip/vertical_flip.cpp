#include "vertical_flip.hpp"

#include <cstdint>
#include <cstring>
#include <string>

namespace contra::plugins {

namespace {

/// Reverse the order of `rows` rows of `row_bytes` bytes in each of `planes`
/// consecutive planes.
void flip_planes(const std::uint8_t* src, std::uint8_t* dst, std::int64_t planes, std::int64_t rows,
                 std::size_t row_bytes) {
  for (std::int64_t p = 0; p < planes; ++p) {
    const std::uint8_t* s = src + static_cast<std::size_t>(p * rows) * row_bytes;
    std::uint8_t* d = dst + static_cast<std::size_t>(p * rows) * row_bytes;
    for (std::int64_t y = 0; y < rows; ++y)
      std::memcpy(d + static_cast<std::size_t>(y) * row_bytes,
                  s + static_cast<std::size_t>(rows - 1 - y) * row_bytes, row_bytes);
  }
}

}  // namespace

contra::Schema VerticalFlip::schema() {
  return contra::Schema("vertical_flip", "mirror the image top-bottom with probability p")
      .add<double>("p", 0.5, "probability of flipping").range(0.0, 1.0);
}

VerticalFlip::VerticalFlip(const contra::Params& p) : p_(p.get<double>("p")) {}

void VerticalFlip::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.rank() != 3 || (in.dtype() != DType::u8 && in.dtype() != DType::f32))
    throw UsageError(std::string("vertical_flip: expects a u8 [H, W, C] or f32 [C, H, W] image, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  out.ensure(in.shape(), in.dtype());
  const bool flip = rng.bernoulli(p_);
  if (!flip) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  const auto* s = static_cast<const std::uint8_t*>(in.raw());
  auto* d = static_cast<std::uint8_t*>(out.raw());
  if (in.dtype() == DType::u8)  // HWC: one plane of H rows of W*C bytes
    flip_planes(s, d, 1, in.dim(0), static_cast<std::size_t>(in.dim(1) * in.dim(2)));
  else  // CHW: C planes of H rows of W floats
    flip_planes(s, d, in.dim(0), in.dim(1), static_cast<std::size_t>(in.dim(2)) * sizeof(float));
}

}  // namespace contra::plugins
