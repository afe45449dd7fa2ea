#pragma once
/// \file
/// Source: decodes one sample of a data set by index.

#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
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

/// What one field of a record holds.
enum class FieldKind : std::uint8_t { image, text };

/// One field of a paired source's records (an image and its caption, or two
/// images), which a pipeline's towers name (`[tower.NAME] field`).
struct FieldInfo {
  std::string name;                  ///< e.g. "image", "text"; unique within the source
  FieldKind kind = FieldKind::image;
  ImageShape shape;                  ///< image fields: every image's shape
};

struct SourceInfo {
  std::int64_t size = 0;     ///< number of samples
  ImageShape shape;          ///< shape of every image of the first image field
  std::int64_t num_classes = 0;  ///< 0 when the source has no labels
  /// A paired source's fields, in record order; empty for a source of images
  /// alone (one image field, "image", of `shape`). Since SDK ABI 4.
  std::vector<FieldInfo> fields;
};

/// Every field of one sample: `images` holds the image fields (u8 HWC) and
/// `texts` the text fields (UTF-8), each in the order of SourceInfo::fields.
struct Record {
  std::vector<Tensor> images;
  std::vector<std::string> texts;
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

  /// Every field of sample `index` into `out` (its vectors sized here, their
  /// tensors reused across calls), as load() does for the first image field.
  /// The default, for a source of images alone, calls load(). A paired source
  /// (SourceInfo::fields not empty) overrides it. Since SDK ABI 4.
  virtual std::int64_t load_record(std::int64_t index, Record& out) const {
    out.images.resize(1);
    out.texts.clear();
    return load(index, out.images[0]);
  }

  /// All labels in index order (for samplers and diagnostics); empty when the
  /// source has none.
  virtual std::vector<std::int64_t> labels() const { return {}; }

  /// The name of each class, by label (num_classes names), for zero-shot
  /// evaluation's prompts; empty when the source does not name them. Since
  /// SDK ABI 4.
  virtual std::vector<std::string> class_names() const { return {}; }

  virtual Concurrency concurrency() const { return Concurrency::parallel; }
};

}  // namespace contra
