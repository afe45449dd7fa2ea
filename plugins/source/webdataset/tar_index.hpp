#pragma once
/// \file
/// The members of one WebDataset shard (an uncompressed tar), grouped into
/// samples by key, with where each member's bytes lie in the file.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace contra::plugins::webdataset {

/// Largest member read as an encoded image, and as a caption: a shard is
/// outside data, and load() reads a member whole.
inline constexpr std::uint64_t max_image_bytes = std::uint64_t(256) << 20;
inline constexpr std::uint64_t max_text_bytes = std::uint64_t(1) << 20;

/// A member's data: `size` bytes from byte `offset` of the shard file.
struct Member {
  std::string name;  ///< as stored, e.g. "part/000123.jpg"
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

/// The members of one key, in WebDataset's sense: a member name up to the
/// first '.' of its base name ("part/000123" of "part/000123.seg.jpg"); the
/// rest, lower-cased, is the extension that says what the member holds.
struct KeyGroup {
  std::string key;
  std::optional<Member> image;        ///< KEY.jpg, KEY.jpeg or KEY.png
  std::optional<Member> text;         ///< KEY.txt
  std::optional<std::int64_t> label;  ///< KEY.cls: a non-negative decimal integer
};

/// The key groups of the tar `bytes` (the file `shard`, for messages), in
/// member order. Members of one key are grouped while they follow each
/// other, as WebDataset does: a key that comes back later starts a new
/// group. Members that are not regular files, or whose base name has no '.'
/// or starts with one, are passed over; members of other extensions (.json,
/// ...) belong to their key but are not read.
///
/// Throws DataError naming the shard (and the member and its header's byte
/// offset where there is one) for: compressed bytes (gzip, bzip2, xz, zstd,
/// lz4: members could not be read in place), bytes that are not a tar, a
/// damaged header, a member cut short by the end of the file, a sparse
/// member, two members of one role for a key (KEY.jpg and KEY.png), an
/// image or text over its limit, a .cls that is not an integer.
std::vector<KeyGroup> index_tar(std::span<const std::uint8_t> bytes, const std::string& shard);

}  // namespace contra::plugins::webdataset
