// @NAME@: a contra tokenizer plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>

namespace {
// The ids before the alphabet's: contra::Vocabulary's defaults.
constexpr std::int32_t pad = 0, bos = 1, eos = 2, unk = 3;
constexpr std::int32_t first_character_id = 4;

bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
unsigned char to_lower(unsigned char c) { return is_upper(c) ? static_cast<unsigned char>(c - 'A' + 'a') : c; }
}  // namespace

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [tower.NAME.tokenizer] table against this and `contra plugins
  // --describe` prints it. A model or vocabulary file would be a string
  // parameter read with p.path("name"), which resolves it relative to the
  // pipeline file.
  return contra::Schema("@NAME@", "one token per character of an alphabet; upper-case letters read as lower-case")
      .add<std::string>("alphabet", "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-",
                        "the characters that are tokens: ASCII, each once, no upper-case letter; any other "
                        "character is unk");
}

// Skeleton: the vocabulary is the alphabet. Replace with loading your
// tokenizer's model; throw contra::ConfigError naming the parameter (and
// the file) when it cannot be used, never later in encode().
@CLASS@::@CLASS@(const contra::Params& p) : alphabet_(p.get<std::string>("alphabet")) {
  if (alphabet_.empty()) throw contra::ConfigError("@NAME@.alphabet is empty: expected the characters that are tokens");
  id_of_ascii_.fill(unk);
  for (std::size_t i = 0; i < alphabet_.size(); ++i) {
    const auto c = static_cast<unsigned char>(alphabet_[i]);
    const std::string at = "@NAME@.alphabet: character " + std::to_string(i) + " ";
    if (c >= 0x80 || is_upper(c))
      throw contra::ConfigError(at + "(byte " + std::to_string(c) +
                                ") is not ASCII or is an upper-case letter, which encode() reads as lower-case");
    if (id_of_ascii_[c] != unk) throw contra::ConfigError(at + "('" + alphabet_[i] + "') appears twice");
    id_of_ascii_[c] = first_character_id + static_cast<std::int32_t>(i);
  }
}

contra::Vocabulary @CLASS@::vocabulary() const {
  contra::Vocabulary v;
  v.size = first_character_id + static_cast<std::int64_t>(alphabet_.size());
  v.pad = pad;
  v.bos = bos;
  v.eos = eos;
  v.unk = unk;
  return v;
}

void @CLASS@::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  out.clear();
  out.reserve(text.size());
  unsigned char previous = 0;
  for (const char byte : text) {
    const auto c = static_cast<unsigned char>(byte);
    // A character outside ASCII is one unk, not one per UTF-8 byte: its
    // continuation bytes (10xxxxxx after another non-ASCII byte) add none.
    const bool continues_character = c >= 0x80 && previous >= 0x80 && (c & 0xC0) == 0x80;
    previous = c;
    if (continues_character) continue;
    out.push_back(c < 0x80 ? id_of_ascii_[to_lower(c)] : unk);
  }
}

std::string @CLASS@::decode(const std::vector<std::int32_t>& tokens) const {
  std::string text;
  text.reserve(tokens.size());
  for (const std::int32_t id : tokens)
    if (id >= first_character_id && id - first_character_id < static_cast<std::int64_t>(alphabet_.size()))
      text += alphabet_[static_cast<std::size_t>(id - first_character_id)];
  return text;
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_TOKENIZER(@CLASS@))
