#pragma once
/// \file
/// Source: decodes one sample of a data set by index.

#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra {

/// Geometry of an image, height × width × channels.
struct ImageShape {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t channels = 0;
  bool operator==(const ImageShape& o) const noexcept {
    return height == o.height && width == o.width && channels == o.channels;
  }
};

struct SourceInfo {
  std::int64_t size = 0;     ///< number of samples
  ImageShape shape;          ///< shape of every image (all images share it)
  std::int64_t num_classes = 0;  ///< 0 when the source has no labels
};

class Source : public Plugin {
 public:
  /// Size and geometry; valid right after construction.
  virtual SourceInfo info() const = 0;

  /// Decode sample `index` (0 <= index < info().size) into `image` as u8 HWC.
  /// Use image.ensure(...) so that storage is reused across calls. Returns the
  /// sample's label, or -1 when the source has no labels. Called from several
  /// threads at once unless concurrency() is serial. Throws DataError naming
  /// the file and the sample on a bad sample.
  virtual std::int64_t load(std::int64_t index, Tensor& image) const = 0;

  /// All labels in index order (for samplers and diagnostics); empty when the
  /// source has none.
  virtual std::vector<std::int64_t> labels() const { return {}; }

  virtual Concurrency concurrency() const { return Concurrency::parallel; }
};

}  // namespace contra
