#pragma once
/// \file
/// `bytes` tokenizer: one token per UTF-8 byte, no model.

#include <contra/roles/tokenizer.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace contra::plugins {

/// Byte b becomes id b + 4; ids 0-3 are pad, bos, eos and unk, so the
/// vocabulary has 260 ids. Every byte sequence is encodable (invalid UTF-8
/// included), so encode() never makes `unk`. Stateless: thread-safe.
class BytesTokenizer final : public contra::Tokenizer {
 public:
  static constexpr std::int32_t first_byte_id = 4;  // after pad, bos, eos, unk

  static contra::Schema schema();
  explicit BytesTokenizer(const contra::Params& p);

  contra::Vocabulary vocabulary() const override;
  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  /// The bytes of ids 4..259 in order; every other id (special or out of
  /// range) is skipped.
  std::string decode(const std::vector<std::int32_t>& tokens) const override;
};

}  // namespace contra::plugins
