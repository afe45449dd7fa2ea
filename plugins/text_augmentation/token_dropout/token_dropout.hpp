#pragma once
/// \file
/// `token_dropout`: drop each token with probability p.

#include <contra/rng.hpp>
#include <contra/roles/text_augmentation.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// Draws one uniform number per token and drops the token when it is below
/// p. When every token of a non-empty input is dropped, one of them, drawn
/// uniformly (one more draw), is kept instead: a text never vanishes.
/// Stateless: thread-safe.
class TokenDropout final : public contra::TextAugmentation {
 public:
  static contra::Schema schema();
  explicit TokenDropout(const contra::Params& p);

  void apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const contra::Vocabulary& vocabulary,
             contra::Rng& rng) const override;

 private:
  double p_;
};

}  // namespace contra::plugins
