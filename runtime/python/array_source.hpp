#pragma once
// A Source over images that live in memory (a numpy array's buffer): what
// contra.Encoder.embed() hands the evaluation's feature extractor, so that
// arrays are embedded exactly as `contra embed` embeds a source.

#include <contra/errors.hpp>
#include <contra/roles/source.hpp>

#include <cstdint>
#include <cstring>

namespace contra::python {

/// N images of H × W × C u8 (HWC, as sources decode them), contiguous at
/// `data`, which must outlive the source. No labels.
class ArraySource final : public Source {
 public:
  ArraySource(const std::uint8_t* data, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c)
      : data_(data), n_(n), h_(h), w_(w), c_(c) {}

  SourceInfo info() const override {
    SourceInfo i;
    i.size = n_;
    i.shape = {h_, w_, c_};
    return i;
  }
  std::int64_t load(std::int64_t index, Tensor& image) const override {
    if (index < 0 || index >= n_)
      throw UsageError("array source: sample " + std::to_string(index) + " of " + std::to_string(n_));
    image.ensure({h_, w_, c_}, DType::u8);
    const std::int64_t bytes = h_ * w_ * c_;
    std::memcpy(image.raw(), data_ + index * bytes, static_cast<std::size_t>(bytes));
    return -1;
  }

 private:
  const std::uint8_t* data_;
  std::int64_t n_, h_, w_, c_;
};

}  // namespace contra::python
