#pragma once
// @NAME@: a contra augmentation plugin (inverts the image with probability p).

#include <contra/roles/augmentation.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Augmentation {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  /// Same format out as in: u8 HWC or f32 CHW.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  /// Randomness only from `rng`; called from several threads at once.
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  double p_;
};
