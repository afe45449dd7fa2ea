#pragma once
/// \file
/// `image_folder` source: PNG and JPEG files in one sub-folder per class, like
/// torchvision's ImageFolder.

#include "../image_codec/image_codec.hpp"

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace contra::plugins {

/// Lists the images (a scan of `folder`, or the `files` list) at
/// construction, in a deterministic order, and reads the first image's header
/// (every header when `size` = 0) to fix the one shape info() reports. With
/// `on_error = "skip"` an image whose header cannot be read (or whose size
/// differs, with `size` = 0) is set aside, up to `max_skip_fraction` of them:
/// it keeps its index, and load() refuses it with the reason found then.
/// Every decode refuses an image of more than `max_image_pixels` pixels
/// before decoding it. A pipeline passes these three from [data].
/// load() opens and decodes one file with libpng or libjpeg (image_codec,
/// shared with the other image sources); every library object is local to
/// the call and scratch rows are thread_local, so load() may run on any
/// number of threads.
class ImageFolderSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Lists and checks the files; throws ConfigError for a bad parameter value
  /// and DataError naming the file (or the list line) and what was found
  /// against what was expected.
  explicit ImageFolderSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Decodes image `index` into `image` as u8 [H, W, C] (converted to the
  /// source's channel count, resized when `size` is set); returns its class
  /// index. Throws DataError naming the file and the sample for an unreadable
  /// or corrupt file, and for an index out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override { return labels_; }

  /// Class names, sorted; label i is classes()[i].
  const std::vector<std::string>& classes() const noexcept { return classes_; }
  /// Image files in index order (full paths).
  const std::vector<std::string>& files() const noexcept { return paths_; }

  /// Largest accepted width or height of a stored image, in pixels.
  static constexpr std::int64_t max_side = image_codec::max_side;

 private:
  std::string folder_;
  std::string size_key_;             // "source.size", for messages
  std::string mismatch_;             // what load() says of an image whose size changed (size = 0)
  std::int64_t max_pixels_ = 0;      // max_image_pixels
  std::string pixels_key_;           // the key that set it: "data.max_image_pixels", for messages
  std::map<std::int64_t, std::string> unreadable_;  // index -> why (on_error = "skip")
  std::vector<std::string> classes_;
  std::vector<std::string> paths_;   // full path of each image
  std::vector<std::int64_t> labels_; // class index of each image
  std::int64_t size_ = 0;            // 0: keep each image's size
  std::int64_t height_ = 0, width_ = 0, channels_ = 0;  // what load() produces
};

}  // namespace contra::plugins
