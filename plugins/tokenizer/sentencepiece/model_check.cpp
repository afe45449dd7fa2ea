#include "model_check.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace contra::plugins::sentencepiece_model {

namespace {

// Field numbers of sentencepiece_model.proto.
constexpr std::uint32_t model_normalizer_spec = 3;    // ModelProto.normalizer_spec
constexpr std::uint32_t model_denormalizer_spec = 5;  // ModelProto.denormalizer_spec
constexpr std::uint32_t normalizer_charsmap = 2;      // NormalizerSpec.precompiled_charsmap

enum WireType : std::uint32_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

/// Protobuf wire format, just enough to find fields: each call consumes one
/// field, or fails (returns false) on anything malformed.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : rest_(bytes) {}
  bool done() const { return rest_.empty(); }

  /// The next field's number and, for a length-delimited field, its bytes;
  /// other fields are skipped.
  bool next(std::uint32_t& number, std::optional<std::string_view>& payload) {
    std::uint64_t tag = 0;
    if (!read_varint(tag)) return false;
    number = static_cast<std::uint32_t>(tag >> 3);
    payload.reset();
    std::uint64_t scratch = 0;
    switch (static_cast<std::uint32_t>(tag & 7)) {
      case varint: return read_varint(scratch);
      case fixed64: return skip(8);
      case fixed32: return skip(4);
      case length_delimited: {
        std::uint64_t size = 0;
        if (!read_varint(size) || size > rest_.size()) return false;
        payload = rest_.substr(0, static_cast<std::size_t>(size));
        rest_.remove_prefix(static_cast<std::size_t>(size));
        return true;
      }
      default: return false;  // groups (wire types 3, 4) never occur in a SentencePiece model
    }
  }

 private:
  bool read_varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return false;
      const auto byte = static_cast<unsigned char>(rest_.front());
      rest_.remove_prefix(1);
      v |= std::uint64_t(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool skip(std::size_t n) {
    if (rest_.size() < n) return false;
    rest_.remove_prefix(n);
    return true;
  }
  std::string_view rest_;
};

// Darts-clone's double-array unit, as libsentencepiece decodes it.
bool has_leaf(std::uint32_t unit) { return ((unit >> 8) & 1) == 1; }
std::uint32_t value(std::uint32_t unit) { return unit & ((1u << 31) - 1); }
std::uint32_t label(std::uint32_t unit) { return unit & ((1u << 31) | 0xff); }
std::uint32_t offset(std::uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }

/// Why the precompiled charsmap `map` is unsafe, or "". Its layout:
/// <trie size, u32 little-endian><double-array units, u32 each><normalized
/// strings, NUL-separated>. Normalizer::NormalizePrefix runs Darts'
/// commonPrefixSearch on the input: from the root's base, each input byte c
/// reads unit base ^ c, and when its label is c moves to base ^ c ^
/// offset; a unit with a leaf has its value at the new base, an index into
/// the strings. So every base reachable from the root must keep base | 0xff
/// (the largest index one byte can reach) inside the units, and every value
/// must point into the strings (or at their end: the model's std::string is
/// NUL-terminated there).
std::string charsmap_problem(std::string_view map) {
  if (map.empty()) return "";  // no map: no trie is read
  std::uint32_t trie_bytes = 0;
  if (map.size() <= sizeof trie_bytes) return "its normalization map is cut short";
  std::memcpy(&trie_bytes, map.data(), sizeof trie_bytes);  // little-endian on the machines contra runs on
  if (trie_bytes >= map.size() - sizeof trie_bytes) return "its normalization map's trie is longer than the map";
  const std::size_t units = trie_bytes / 4;
  const char* trie = map.data() + sizeof trie_bytes;
  const std::size_t strings = map.size() - sizeof trie_bytes - trie_bytes;
  auto unit = [&](std::size_t i) {
    std::uint32_t u = 0;
    std::memcpy(&u, trie + 4 * i, 4);
    return u;
  };
  const std::string broken = "its normalization map's trie points outside the map";
  if (units == 0) return broken;
  const std::size_t root = offset(unit(0));
  if ((root | 0xff) >= units) return broken;
  std::vector<bool> seen(units, false);
  std::vector<std::size_t> bases{root};
  seen[root] = true;
  while (!bases.empty()) {
    const std::size_t base = bases.back();
    bases.pop_back();
    for (std::uint32_t c = 0; c < 256; ++c) {
      const std::uint32_t u = unit(base ^ c);
      if (label(u) != c) continue;
      const std::size_t next = base ^ c ^ offset(u);
      if ((next | 0xff) >= units) return broken;
      if (has_leaf(u) && value(unit(next)) > strings) return broken;
      if (!seen[next]) {
        seen[next] = true;
        bases.push_back(next);
      }
    }
  }
  return "";
}

}  // namespace

std::string unsafe_reason(std::string_view model) {
  // A message field given twice is merged, its last charsmap winning: keep
  // the last one of each spec.
  std::optional<std::string_view> charsmaps[2];
  WireReader fields(model);
  while (!fields.done()) {
    std::uint32_t number = 0;
    std::optional<std::string_view> payload;
    if (!fields.next(number, payload)) return "malformed protobuf";
    if (!payload || (number != model_normalizer_spec && number != model_denormalizer_spec)) continue;
    std::optional<std::string_view>& charsmap = charsmaps[number == model_denormalizer_spec];
    WireReader spec(*payload);
    while (!spec.done()) {
      std::uint32_t spec_number = 0;
      std::optional<std::string_view> spec_payload;
      if (!spec.next(spec_number, spec_payload)) return "malformed protobuf";
      if (spec_payload && spec_number == normalizer_charsmap) charsmap = spec_payload;
    }
  }
  for (const auto& charsmap : charsmaps)
    if (charsmap)
      if (std::string problem = charsmap_problem(*charsmap); !problem.empty()) return problem;
  return "";
}

}  // namespace contra::plugins::sentencepiece_model
