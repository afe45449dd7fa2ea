#pragma once
// @NAME@: a contra text augmentation plugin (drops the first or the last
// token of a text with probability p).

#include <contra/rng.hpp>
#include <contra/roles/text_augmentation.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

class @CLASS@ final : public contra::TextAugmentation {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  /// `in` is a text's token ids, without bos, eos or padding (the runtime
  /// adds those after the chain). Randomness only from `rng`; called from
  /// several threads at once.
  void apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const contra::Vocabulary& vocabulary,
             contra::Rng& rng) const override;

 private:
  double p_;
};
