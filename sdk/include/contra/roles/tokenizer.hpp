#pragma once
/// \file
/// Tokenizer: text -> token ids, for a text tower. Since SDK ABI 4.

#include <contra/roles/plugin.hpp>
#include <contra/vocabulary.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace contra {

class Tokenizer : public Plugin {
 public:
  /// Size and special ids; valid right after construction.
  virtual Vocabulary vocabulary() const = 0;
  /// The tokens of `text` (UTF-8) into `out` (cleared first), without bos,
  /// eos or padding: the runtime adds those and cuts the row to the tower's
  /// length. Never throws for any bytes: what cannot be encoded becomes
  /// `unk`. Called from several threads at once.
  virtual void encode(std::string_view text, std::vector<std::int32_t>& out) const = 0;
  /// The text of `tokens` (special ids skipped), for diagnostics and tests.
  virtual std::string decode(const std::vector<std::int32_t>& tokens) const = 0;
};

}  // namespace contra
