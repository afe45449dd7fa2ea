#pragma once
/// \file
/// `idx` source: MNIST / Fashion-MNIST IDX files, gzip-compressed or plain.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Loads a whole IDX image file (and optionally its label file) into memory
/// at construction; load() is then a copy. Thread-safe: load() only reads.
class IdxSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Reads and validates both files; throws DataError naming the file and
  /// what was found against what was expected.
  explicit IdxSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Copies image `index` into `image` as u8 [H, W, 1]; returns its label, or
  /// -1 without a label file. Throws DataError for an index out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override { return labels_; }

 private:
  std::string images_path_;
  std::string labels_path_;
  std::int64_t count_ = 0;
  std::int64_t rows_ = 0;
  std::int64_t cols_ = 0;
  std::int64_t num_classes_ = 0;
  std::vector<std::uint8_t> pixels_;   // count_ * rows_ * cols_
  std::vector<std::int64_t> labels_;   // count_ or empty
};

}  // namespace contra::plugins
