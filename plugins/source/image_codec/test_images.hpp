#pragma once
// For the image sources' tests: PNG files of known pixels, encoded with
// libpng (which image_codec links publicly for them).

#include <png.h>

#include <csetjmp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace contra::test {

/// 8-bit pixels, [height, width, channels], distinct per image (`seed`),
/// position and channel.
inline std::vector<std::uint8_t> test_pixels(int seed, int width, int height, int channels) {
  std::vector<std::uint8_t> v;
  v.reserve(static_cast<std::size_t>(width * height * channels));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) v.push_back(static_cast<std::uint8_t>((seed * 53 + x * 37 + y * 11 + c * 89) & 0xff));
  return v;
}

namespace detail {
/// libpng longjmps here on an error: nothing in this frame needs unwinding.
inline bool write_png(png_structp png, png_infop info, std::string* out, int width, int height, int channels,
                      const std::uint8_t* pixels) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(
      png, out,
      [](png_structp p, png_bytep data, std::size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<const char*>(data), n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(pixels) + static_cast<std::size_t>(y * width * channels));
  png_write_end(png, nullptr);
  return true;
}
}  // namespace detail

/// The PNG bytes of 8-bit gray (`channels` 1) or RGB (3) `pixels`.
inline std::string encode_png(int width, int height, int channels, const std::vector<std::uint8_t>& pixels) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  const bool ok = info && detail::write_png(png, info, &out, width, height, channels, pixels.data());
  png_destroy_write_struct(&png, &info);
  if (!ok) throw std::runtime_error("encode_png: libpng failed");
  return out;
}

}  // namespace contra::test
