#pragma once
/// \file
/// TextAugmentation: one random transform of a text's tokens (token dropout,
/// a random span), applied after the tokenizer. Since SDK ABI 4.

#include <contra/rng.hpp>
#include <contra/roles/plugin.hpp>
#include <contra/vocabulary.hpp>

#include <cstdint>
#include <vector>

namespace contra {

class TextAugmentation : public Plugin {
 public:
  /// Transform the tokens `in` (no bos, eos or padding) into `out` (cleared
  /// first; never aliases `in`), drawing randomness only from `rng`. Ids are
  /// those of `vocabulary`; the result may be empty.
  /// Called from several threads at once unless concurrency() is serial.
  virtual void apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const Vocabulary& vocabulary,
                     Rng& rng) const = 0;
  virtual Concurrency concurrency() const { return Concurrency::parallel; }
};

}  // namespace contra
