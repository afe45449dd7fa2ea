#pragma once
/// \file
/// `synthetic` source: deterministic generated labelled images, for tests and
/// smoke runs without data files.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// Sample i has label i % classes. Each class has its own pattern (an oriented
/// grating of a class-specific orientation and frequency, a blob at a
/// class-specific position, a class-specific colour tint); each sample adds a
/// small shift, phase, contrast and brightness jitter and pixel noise drawn
/// from Rng(seed, 0, i, 0, 0). Nothing is stored: load() renders the image,
/// so any size costs no memory. Thread-safe.
class SyntheticSource final : public contra::Source {
 public:
  static contra::Schema schema();
  explicit SyntheticSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Renders sample `index` into `image` as u8 [height, width, channels];
  /// returns index % classes. Throws DataError for an index out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override;

 private:
  struct ClassPattern {
    float cos_t, sin_t;  // grating direction
    float freq;          // grating cycles across the image
    float bx, by;        // blob centre, normalised coordinates in [-0.5, 0.5]
    float tint[4];       // per-channel gain
  };

  std::int64_t size_;
  std::int64_t height_;
  std::int64_t width_;
  std::int64_t channels_;
  std::int64_t classes_;
  std::uint64_t seed_;
  std::vector<ClassPattern> patterns_;
};

}  // namespace contra::plugins
