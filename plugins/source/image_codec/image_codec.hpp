#pragma once
/// \file
/// PNG and JPEG decoding shared by the image sources (`image_folder`,
/// `image_text`, `webdataset`): libpng and libjpeg-turbo behind two calls,
/// read_header() and decode(), on a file or on bytes in memory (a tar
/// member). Not a plugin: a static library the sources link (README.md).
///
/// Every problem is a contra::DataError whose message starts with the
/// caller's `what` ("<file>: sample 7: ", say) and says what was found
/// against what was expected. Every library object is local to a call and
/// scratch rows are thread_local, so any number of threads may decode at once.

#include <contra/tensor.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace contra::plugins::image_codec {

/// Largest accepted width or height of a stored image, in pixels.
inline constexpr std::int64_t max_side = 32768;

/// What an image's header says.
struct ImageHeader {
  std::int64_t width = 0;
  std::int64_t height = 0;
  int channels = 0;  ///< natural channel count: 1 for gray, 3 for colour
};

/// The largest image a decode may take (stored width x height), and the key
/// that sets it (`data.max_image_pixels`), for messages.
struct PixelLimit {
  std::int64_t max_pixels;
  const std::string* key;
};

/// What one decode produces.
struct Target {
  int channels;                 ///< 1 (gray) or 3 (RGB)
  std::int64_t width, height;   ///< the output image's size
  bool resize;                  ///< resize to width x height; false: the stored size must be that already
  /// Without `resize`: the end of the message for an image of another size,
  /// after "<W>x<H> pixels (width x height), but " (what the source expected
  /// and how to make it resize). Owned by the caller.
  const std::string* mismatch;
  PixelLimit limit;
};

/// Encoded image bytes in memory.
using Bytes = std::span<const std::uint8_t>;

/// Reads the header of the PNG or JPEG file `path` (the format is told by
/// its first bytes) and checks its size against max_side and `limit`.
ImageHeader read_header(const std::string& path, const std::string& what, const PixelLimit& limit);
ImageHeader read_header(Bytes bytes, const std::string& what, const PixelLimit& limit);

/// Decodes the file `path` into `image` as u8 [height, width, channels] of
/// `target` (image.ensure: storage is reused): channels converted (gray
/// replicated, colour to ITU-R 601-2 luma, alpha dropped, CMYK to RGB) and,
/// with `target.resize`, resized as Pillow's BILINEAR resample does.
void decode(const std::string& path, const std::string& what, const Target& target, Tensor& image);
void decode(Bytes bytes, const std::string& what, const Target& target, Tensor& image);

/// "640x480": width x height, as the messages write sizes.
std::string dims(std::int64_t width, std::int64_t height);

}  // namespace contra::plugins::image_codec
