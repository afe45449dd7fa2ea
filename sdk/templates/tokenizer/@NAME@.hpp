#pragma once
// @NAME@: a contra tokenizer plugin (one token per character of an alphabet,
// upper-case letters read as lower-case).

#include <contra/roles/tokenizer.hpp>
#include <contra/schema.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

class @CLASS@ final : public contra::Tokenizer {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema(); throws
  /// contra::ConfigError for an alphabet it cannot use.
  explicit @CLASS@(const contra::Params& p);

  /// pad 0, bos 1, eos 2, unk 3, then one id per character of the alphabet.
  contra::Vocabulary vocabulary() const override;
  /// Never throws, for any bytes; only reads the tables built by the
  /// constructor, so it may run on several threads at once.
  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  /// The characters of `tokens`; special ids and ids outside the vocabulary
  /// are skipped.
  std::string decode(const std::vector<std::int32_t>& tokens) const override;

 private:
  std::string alphabet_;                         // id first_character_id + i is alphabet_[i]
  std::array<std::int32_t, 128> id_of_ascii_{};  // each ASCII byte's id; unk outside the alphabet
};
