#pragma once
/// \file
/// `cifar` source: CIFAR-10 / CIFAR-100 binary batch files.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Loads every record of one split (CIFAR-10: data_batch_1..5.bin or
/// test_batch.bin; CIFAR-100: train.bin or test.bin) into memory at
/// construction, converting the planar CHW pixels to HWC once; load() is then
/// a copy. Thread-safe: load() only reads.
class CifarSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Reads and validates every file of the split; throws DataError naming the
  /// file and what was found against what was expected, ConfigError for
  /// label = "coarse" with variant = "cifar10".
  explicit CifarSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Copies image `index` into `image` as u8 [32, 32, 3]; returns its label
  /// (fine or coarse for CIFAR-100). Throws DataError for an index out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override { return labels_; }

  static constexpr std::int64_t side = 32;
  static constexpr std::size_t image_bytes = 3 * 32 * 32;

 private:
  std::string folder_;
  std::int64_t count_ = 0;
  std::int64_t num_classes_ = 0;
  std::vector<std::uint8_t> pixels_;  // count_ * 3072, HWC per image
  std::vector<std::int64_t> labels_;  // count_
};

}  // namespace contra::plugins
