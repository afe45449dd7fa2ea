#pragma once
/// \file
/// The manifest of the `image_text` source: one image path and its caption
/// (and optionally a label) per row of a CSV, TSV or JSON Lines file, as
/// open_clip's CSV data sets have them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace contra::plugins::image_text {

enum class ManifestFormat { csv, tsv, jsonl };

/// The columns (JSON keys) a manifest is read for, each with the parameter
/// that named it (`source.image_column`), for messages.
struct ManifestColumns {
  std::string image, image_key;
  std::string text, text_key;
  std::string label, label_key;  ///< label "": the manifest has no label column
};

/// Many strings in one buffer: a manifest of millions of rows costs its
/// bytes plus 8 per string, not a std::string each.
class PackedStrings {
 public:
  void push_back(std::string_view s) {
    chars_.append(s);
    ends_.push_back(chars_.size());
  }
  std::string_view operator[](std::size_t i) const noexcept {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(chars_).substr(begin, ends_[i] - begin);
  }
  std::size_t size() const noexcept { return ends_.size(); }

 private:
  std::string chars_;
  std::vector<std::size_t> ends_;
};

/// What a manifest says, row by row.
struct Manifest {
  PackedStrings images;  ///< image paths as written (relative to the manifest's folder, or absolute)
  PackedStrings texts;   ///< captions, UTF-8 as written
  /// With a label column: each row's label, and the class names. Labels are
  /// the values themselves when every value is a decimal integer (then
  /// `class_names` is empty and num_classes is the largest plus one), else
  /// indices of the distinct values in first-seen order (`class_names`).
  std::vector<std::int64_t> labels;
  std::vector<std::string> class_names;
  std::int64_t num_classes = 0;
};

/// Parses `bytes`, the contents of the manifest `file`. CSV and TSV follow
/// RFC 4180 (fields in double quotes may hold separators, doubled quotes and
/// line breaks; CRLF or LF line ends; blank lines skipped), with the columns
/// named by a header row; JSON Lines holds one object per line. Throws
/// ConfigError naming `file`, the line and what was expected: a missing
/// column or key, an unterminated quote, a row with another number of fields
/// than the header, invalid JSON (with its position), a value of the wrong
/// type, an empty image path, no rows at all.
Manifest parse_manifest(std::string_view bytes, ManifestFormat format, const ManifestColumns& columns,
                        const std::string& file);

}  // namespace contra::plugins::image_text
