#pragma once
/// \file
/// `random_span`: keep a random contiguous span of the tokens.

#include <contra/rng.hpp>
#include <contra/roles/text_augmentation.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace contra::plugins {

/// Of n tokens keeps a span of length L, uniform over the integers in
/// [ceil(min_fraction n), floor(max_fraction n)] (at least 1, at most n),
/// starting at a uniform position in [0, n - L]: two draws per call on a
/// non-empty input, none on an empty one. Stateless: thread-safe.
class RandomSpan final : public contra::TextAugmentation {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when min_fraction > max_fraction.
  explicit RandomSpan(const contra::Params& p);

  void apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const contra::Vocabulary& vocabulary,
             contra::Rng& rng) const override;

  /// The shortest and longest span kept of n >= 1 tokens.
  std::pair<std::int64_t, std::int64_t> span_lengths(std::int64_t n) const;

 private:
  double min_fraction_;
  double max_fraction_;
};

}  // namespace contra::plugins
