#pragma once
// @NAME@: a contra source plugin (generated images, one brightness ramp per class).

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Source {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Decodes sample `index` into `image` (u8 HWC); called from several threads at once.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override;

 private:
  std::int64_t size_, height_, width_, channels_, classes_, seed_;
};
