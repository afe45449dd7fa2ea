#include "tar_index.hpp"

#include <contra/errors.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <string_view>

namespace contra::plugins::webdataset {

namespace {

struct ArchiveFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
using Archive = std::unique_ptr<archive, ArchiveFree>;

std::string reason_of(archive* a) {
  const char* why = archive_error_string(a);
  return why ? why : "unknown error";
}

/// What a compressed stream starts with, and the tool that undoes it.
struct Compression {
  std::string_view magic;
  const char* name;
  const char* tool;
};

constexpr Compression compressions[] = {
    {"\x1f\x8b", "gzip", "gunzip"},
    {"BZh", "bzip2", "bunzip2"},
    {std::string_view("\xfd" "7zXZ\x00", 6), "xz", "unxz"},
    {"\x28\xb5\x2f\xfd", "zstd", "unzstd"},
    {"\x04\x22\x4d\x18", "lz4", "unlz4"},
};

/// Compressed shards are refused: a member of an uncompressed tar is read
/// in place at its offset, which a compressed stream does not have.
void refuse_compressed(std::string_view head, const std::string& shard) {
  for (const Compression& c : compressions)
    if (head.substr(0, c.magic.size()) == c.magic)
      throw DataError(shard + ": " + c.name +
                      "-compressed; expected an uncompressed tar, whose members are read in place (decompress it "
                      "first: " + c.tool + ")");
}

enum class Role { image, text, label, other };

Role role_of(std::string extension) {
  for (char& c : extension)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (extension == "jpg" || extension == "jpeg" || extension == "png") return Role::image;
  if (extension == "txt") return Role::text;
  if (extension == "cls") return Role::label;
  return Role::other;
}

/// The class label a .cls member holds: a non-negative decimal integer,
/// blanks around it allowed.
std::optional<std::int64_t> parse_label(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return std::nullopt;
  s = s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
  if (s.size() > 9) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

/// Reads one shard's headers, member by member.
class ShardReader {
 public:
  ShardReader(std::span<const std::uint8_t> bytes, const std::string& shard)
      : bytes_(bytes), shard_(shard), archive_(archive_read_new()) {
    if (!archive_) throw DataError(shard_ + ": cannot read: out of memory");
    // Tar alone (ustar, pax, GNU), no decompression filter: every member's
    // data then lies in `bytes` itself, where archive_read_data_block points.
    archive_read_support_format_tar(archive_.get());
    if (archive_read_open_memory(archive_.get(), bytes_.data(), bytes_.size()) != ARCHIVE_OK) refuse_format();
  }

  std::vector<KeyGroup> groups() {
    std::vector<KeyGroup> groups;
    for (;;) {
      archive_entry* entry = nullptr;
      const int r = archive_read_next_header(archive_.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      header_at_ = archive_read_header_position(archive_.get());
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {  // ARCHIVE_RETRY too: a header whose checksum is wrong
        if (members_ == 0) refuse_format();
        fail_here("damaged tar header: " + reason_of(archive_.get()));
      }
      ++members_;
      if (archive_entry_filetype(entry) != AE_IFREG) continue;
      const char* raw_name = archive_entry_pathname(entry);
      if (!raw_name) fail_here("a member whose name cannot be read");
      const std::string_view name(raw_name);
      // WebDataset's key: the name up to the first '.' of its base name.
      const std::size_t base = name.rfind('/') == std::string_view::npos ? 0 : name.rfind('/') + 1;
      const std::size_t dot = name.find('.', base);
      if (dot == std::string_view::npos || dot == base) continue;
      const std::string_view key = name.substr(0, dot);
      if (groups.empty() || groups.back().key != key) groups.push_back(KeyGroup{std::string(key), {}, {}, {}});
      add(groups.back(), entry, name, role_of(std::string(name.substr(dot + 1))));
    }
    return groups;
  }

 private:
  [[noreturn]] void refuse_format() const {
    throw DataError(shard_ + ": not a tar archive (" + reason_of(archive_.get()) +
                    "); expected an uncompressed tar of WebDataset samples");
  }

  [[noreturn]] void fail_here(const std::string& what) const {
    throw DataError(shard_ + ": " + (header_at_ >= 0 ? "at byte " + std::to_string(header_at_) + ": " : "") + what);
  }

  [[noreturn]] void fail_member(std::string_view name, const std::string& what) const {
    fail_here("member " + std::string(name) + ": " + what);
  }

  void add(KeyGroup& g, archive_entry* entry, std::string_view name, Role role) {
    if (role == Role::other) return;
    const bool taken = (role == Role::image && g.image) || (role == Role::text && g.text) ||
                       (role == Role::label && g.label);
    if (taken) {
      const std::string first = role == Role::image ? g.image->name : role == Role::text ? g.text->name : "";
      fail_member(name, std::string("a second ") +
                            (role == Role::image ? "image" : role == Role::text ? "text" : "label") +
                            " for key \"" + g.key + "\"" + (first.empty() ? "" : " after " + first) +
                            "; expected one image (.jpg, .jpeg or .png), one .txt and at most one .cls per key");
    }
    const std::uint64_t limit = role == Role::image ? max_image_bytes : role == Role::text ? max_text_bytes : 64;
    Member m = locate(entry, name, limit);
    switch (role) {
      case Role::image: g.image = std::move(m); break;
      case Role::text: g.text = std::move(m); break;
      case Role::label: {
        const auto text = std::string_view(reinterpret_cast<const char*>(bytes_.data() + m.offset), m.size);
        g.label = parse_label(text);
        if (!g.label)
          fail_member(name, "\"" + std::string(text) + "\" is not a class label; expected a non-negative integer");
        break;
      }
      case Role::other: break;
    }
  }

  /// Where the member's data lies in the shard.
  Member locate(archive_entry* entry, std::string_view name, std::uint64_t limit) {
    if (archive_entry_sparse_count(entry) > 0)
      fail_member(name, "a sparse file; expected a plain member (tar without --sparse)");
    const la_int64_t declared = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
    if (declared < 0) fail_member(name, "a negative size in its header");
    Member m{std::string(name), 0, static_cast<std::uint64_t>(declared)};
    if (m.size > limit)
      fail_member(name, std::to_string(m.size) + " bytes, more than the " + std::to_string(limit) +
                            " such a member may have");
    if (m.size == 0) return m;
    const void* block = nullptr;
    std::size_t got = 0;
    la_int64_t at = 0;
    const int r = archive_read_data_block(archive_.get(), &block, &got, &at);
    if (r == ARCHIVE_EOF || (r == ARCHIVE_OK && at == 0 && got < m.size))
      fail_member(name, std::to_string(m.size) + " bytes declared, but the file ends after " +
                            std::to_string(r == ARCHIVE_EOF ? 0 : got) + " of them (a truncated tar)");
    if (r != ARCHIVE_OK) fail_member(name, "cannot read its data: " + reason_of(archive_.get()));
    // With no filter, libarchive hands out pointers into `bytes` itself.
    const auto* p = static_cast<const std::uint8_t*>(block);
    if (at != 0 || got != m.size || p < bytes_.data() || p + got > bytes_.data() + bytes_.size())
      fail_member(name, "its data is not stored in one piece; expected a plain tar member");
    m.offset = static_cast<std::uint64_t>(p - bytes_.data());
    return m;
  }

  std::span<const std::uint8_t> bytes_;
  const std::string& shard_;
  Archive archive_;
  la_int64_t header_at_ = -1;  // the current member's header offset, -1 before the first
  std::size_t members_ = 0;
};

}  // namespace

std::vector<KeyGroup> index_tar(std::span<const std::uint8_t> bytes, const std::string& shard) {
  if (bytes.empty()) throw DataError(shard + ": empty file; expected an uncompressed tar of WebDataset samples");
  refuse_compressed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), shard);
  return ShardReader(bytes, shard).groups();
}

}  // namespace contra::plugins::webdataset
