#include "bytes.hpp"

namespace contra::plugins {

namespace {
constexpr std::int32_t byte_values = 256;
}  // namespace

contra::Schema BytesTokenizer::schema() {
  return contra::Schema("bytes", "one token per UTF-8 byte (id = byte + 4); no model needed");
}

BytesTokenizer::BytesTokenizer(const contra::Params&) {}

contra::Vocabulary BytesTokenizer::vocabulary() const {
  contra::Vocabulary v;
  v.size = first_byte_id + byte_values;
  v.pad = 0;
  v.bos = 1;
  v.eos = 2;
  v.unk = 3;
  return v;
}

void BytesTokenizer::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  out.resize(text.size());
  for (std::size_t i = 0; i < text.size(); ++i)
    out[i] = first_byte_id + static_cast<std::int32_t>(static_cast<unsigned char>(text[i]));
}

std::string BytesTokenizer::decode(const std::vector<std::int32_t>& tokens) const {
  std::string text;
  text.reserve(tokens.size());
  for (std::int32_t id : tokens)
    if (id >= first_byte_id && id < first_byte_id + byte_values) text += static_cast<char>(id - first_byte_id);
  return text;
}

}  // namespace contra::plugins
