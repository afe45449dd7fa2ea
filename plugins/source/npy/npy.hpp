#pragma once
/// \file
/// `npy` source: NumPy .npy arrays of uint8 images and, optionally, integer
/// labels, so that data prepared in Python loads directly.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Reads a whole uint8 image array (and optionally its label array) into
/// memory at construction, converting NCHW to HWC once when asked; load() is
/// then a copy. Thread-safe: load() only reads.
class NpySource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Reads and validates both files; throws DataError naming the file and
  /// what was found against what was expected.
  explicit NpySource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Copies image `index` into `image` as u8 [H, W, C]; returns its label, or
  /// -1 without a label file. Throws DataError for an index out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override { return labels_; }

  /// Largest accepted image height or width, in pixels.
  static constexpr std::int64_t max_side = 16384;
  /// Largest accepted .npy header (the dict text), in bytes.
  static constexpr std::uint64_t max_header_bytes = 1u << 20;

 private:
  std::string images_path_;
  std::string labels_path_;
  std::int64_t count_ = 0;
  std::int64_t height_ = 0, width_ = 0, channels_ = 0;
  std::int64_t num_classes_ = 0;
  std::vector<std::uint8_t> pixels_;  // count_ images, HWC each
  std::vector<std::int64_t> labels_;  // count_ or empty
};

}  // namespace contra::plugins
