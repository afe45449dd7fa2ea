#pragma once
/// \file
/// `image_text` source: images and their captions listed in a CSV, TSV or
/// JSON Lines manifest, as open_clip's CSV data sets are; records of an
/// image and its text.

#include "manifest.hpp"

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Parses the whole manifest at construction (ConfigError for a malformed
/// one, naming the file and line) and, unless `height`, `width` and
/// `channels` are all set, reads the first image's header to fix the shape
/// info() reports. No other image is opened before load(): a missing or
/// corrupt image is a DataError from load(), which the run skips or stops at
/// as [data] on_error says. load() decodes with image_codec (libpng,
/// libjpeg-turbo) into thread_local scratch, so it may run on any number of
/// threads.
class ImageTextSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Reads the manifest; throws ConfigError for a bad parameter or a
  /// malformed manifest, DataError for a first image that cannot be read
  /// when the shape must come from it.
  explicit ImageTextSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Decodes row `index`'s image into `image` as u8 [height, width,
  /// channels] (converted to the source's channels; resized when `height`
  /// and `width` are set); returns its label, or -1 without a label column.
  /// Throws DataError naming the image file and the sample.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  /// The image and, as the record's one text, the row's caption.
  std::int64_t load_record(std::int64_t index, contra::Record& out) const override;
  std::vector<std::int64_t> labels() const override { return manifest_.labels; }
  /// The label column's distinct values in first-seen order, when they are
  /// names; empty for integer labels or no label column.
  std::vector<std::string> class_names() const override { return manifest_.class_names; }

  /// Row `index`'s image file: its manifest path, relative to the manifest's
  /// folder unless absolute.
  std::string image_path(std::int64_t index) const;

 private:
  std::string manifest_path_;
  std::string folder_;              // the manifest's folder: relative image paths start here
  image_text::Manifest manifest_;
  std::int64_t height_ = 0, width_ = 0, channels_ = 0;  // what load() produces
  bool resize_ = false;             // height and width set: every image is resized to them
  std::string mismatch_;            // without resize_: what load() says of an image of another size
  std::int64_t max_pixels_ = 0;     // max_image_pixels
  std::string pixels_key_;          // the key that set it: "data.max_image_pixels", for messages
};

}  // namespace contra::plugins
