#include "manifest.hpp"

#include <contra/errors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <unordered_map>
#include <utility>

namespace contra::plugins::image_text {

namespace {

/// Integer labels are taken as they are up to this value; num_classes is the
/// largest plus one, so a larger "integer" is more likely an id than a class.
constexpr std::int64_t max_integer_label = (std::int64_t(1) << 24) - 1;

/// How many names a message lists before "and N more".
constexpr std::size_t names_shown = 10;

[[noreturn]] void fail(const std::string& file, std::size_t line, const std::string& what) {
  throw ConfigError(file + ":" + std::to_string(line) + ": " + what);
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string listed(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < names_shown; ++i) s += (i ? ", " : "") + in_quotes(names[i]);
  if (names.size() > names_shown) s += " and " + std::to_string(names.size() - names_shown) + " more";
  return s.empty() ? "none" : s;
}

/// A byte as a message shows it: 'x', or its value when it does not print.
std::string shown(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
  return buf;
}

/// The value of a decimal integer label, or nothing for any other text.
std::optional<std::int64_t> integer_label(std::string_view s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max_integer_label) return std::nullopt;
  return v;
}

/// Collects the label of each row; once every row is in, the labels are the
/// values themselves if all are integers, else indices of the names.
class LabelCollector {
 public:
  void add(std::string_view value) {
    auto [at, fresh] = index_.try_emplace(std::string(value), names_.size());
    if (fresh) {
      names_.emplace_back(value);
      all_integers_ = all_integers_ && integer_label(value).has_value();
    }
    ids_.push_back(static_cast<std::int64_t>(at->second));
  }

  void finish(Manifest& m) {
    if (all_integers_) {
      std::vector<std::int64_t> value_of(names_.size());
      for (std::size_t i = 0; i < names_.size(); ++i) value_of[i] = *integer_label(names_[i]);
      m.labels.reserve(ids_.size());
      for (std::int64_t id : ids_) m.labels.push_back(value_of[static_cast<std::size_t>(id)]);
      m.num_classes = *std::max_element(value_of.begin(), value_of.end()) + 1;
    } else {
      m.labels = std::move(ids_);
      m.num_classes = static_cast<std::int64_t>(names_.size());
      m.class_names = std::move(names_);
    }
  }

 private:
  std::unordered_map<std::string, std::size_t> index_;  // name -> first-seen index
  std::vector<std::string> names_;
  std::vector<std::int64_t> ids_;
  bool all_integers_ = true;
};

/// One row's values, checked and added to the manifest.
void add_row(Manifest& m, LabelCollector* labels, std::string_view image, std::string_view text,
             std::string_view label, const ManifestColumns& columns, const std::string& file, std::size_t line) {
  if (image.empty())
    fail(file, line, "the image path (" + in_quotes(columns.image) + ", " + columns.image_key + ") is empty");
  m.images.push_back(image);
  m.texts.push_back(text);
  if (labels) {
    if (label.empty())
      fail(file, line, "the label (" + in_quotes(columns.label) + ", " + columns.label_key + ") is empty");
    labels->add(label);
  }
}

// ---------------------------------------------------------------------------
// CSV and TSV (RFC 4180, with `separator` for the comma).

/// Splits delimited text into records of fields.
class DelimitedReader {
 public:
  DelimitedReader(std::string_view text, char separator, const std::string& file)
      : text_(text), separator_(separator), file_(file) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);  // a UTF-8 byte order mark
  }

  /// The next record that is not a blank line into `fields`, and the line it
  /// starts on into `line`; false at the end of the text.
  bool next(std::vector<std::string>& fields, std::size_t& line) {
    while (pos_ < text_.size()) {
      line = line_;
      fields.clear();
      bool blank = true;  // nothing yet but a line end
      for (;;) {
        fields.emplace_back();
        if (at('"')) {
          blank = false;
          read_quoted(fields.back(), fields.size());
        } else {
          const std::string_view raw = read_plain();
          blank = blank && raw.empty();
          fields.back().assign(raw);
        }
        if (at(separator_)) {
          ++pos_;
          blank = false;
          continue;
        }
        if (pos_ < text_.size()) {  // at the '\n'
          ++pos_;
          ++line_;
        }
        break;
      }
      if (!blank) return true;
    }
    return false;
  }

  /// "a ','" or "a tab", for messages.
  std::string separator_name() const { return separator_ == '\t' ? "a tab" : "a ','"; }

 private:
  bool at(char c) const noexcept { return pos_ < text_.size() && text_[pos_] == c; }

  /// True at "\r" that ends a line (before "\n" or the end of the text).
  bool at_line_end_cr() const noexcept {
    return at('\r') && (pos_ + 1 == text_.size() || text_[pos_ + 1] == '\n');
  }

  /// A field in double quotes, the opening one at pos_; "" inside is one ".
  void read_quoted(std::string& out, std::size_t field) {
    const std::size_t opened_on = line_;
    ++pos_;
    for (;;) {
      if (pos_ == text_.size())
        fail(file_, opened_on,
             "unterminated quote: field " + std::to_string(field) +
                 " opens a '\"' here that is never closed; expected a closing '\"' (a '\"' inside a quoted field "
                 "is written '\"\"')");
      const char c = text_[pos_++];
      if (c == '"') {
        if (!at('"')) break;
        ++pos_;
      } else if (c == '\n') {
        ++line_;
      }
      out += c;
    }
    if (at_line_end_cr()) ++pos_;
    if (pos_ < text_.size() && !at(separator_) && !at('\n'))
      fail(file_, line_,
           "field " + std::to_string(field) + ": expected " + separator_name() +
               " or the end of the line after the closing '\"', found " + shown(text_[pos_]) +
               " (a '\"' inside a quoted field is written '\"\"')");
  }

  /// A field without quotes: up to the separator or the line end. A '"'
  /// inside it is kept as it is, as Python's csv module and pandas do.
  std::string_view read_plain() {
    const std::size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != separator_ && text_[pos_] != '\n') ++pos_;
    std::string_view raw = text_.substr(begin, pos_ - begin);
    if (!raw.empty() && raw.back() == '\r' && !at(separator_)) raw.remove_suffix(1);
    return raw;
  }

  std::string_view text_;
  char separator_;
  const std::string& file_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
};

/// The index of `name` among the header's fields; ConfigError naming the
/// key when it is missing or named twice.
std::size_t column_index(const std::vector<std::string>& header, const std::string& name, const std::string& key,
                         const std::string& file, std::size_t line) {
  const auto first = std::find(header.begin(), header.end(), name);
  if (first == header.end())
    fail(file, line, "no column " + in_quotes(name) + " (" + key + ") in the header row; its columns: " + listed(header));
  const auto second = std::find(first + 1, header.end(), name);
  if (second != header.end())
    fail(file, line,
         "the header row names column " + in_quotes(name) + " (" + key + ") twice, as fields " +
             std::to_string(first - header.begin() + 1) + " and " + std::to_string(second - header.begin() + 1));
  return static_cast<std::size_t>(first - header.begin());
}

void parse_delimited(Manifest& m, LabelCollector* labels, std::string_view bytes, char separator,
                     const ManifestColumns& columns, const std::string& file) {
  DelimitedReader reader(bytes, separator, file);
  std::vector<std::string> fields;
  std::size_t line = 0;
  if (!reader.next(fields, line))
    throw ConfigError(file + ": no header row; expected a first row naming the columns, " + in_quotes(columns.image) +
                      " and " + in_quotes(columns.text) + " among them");
  const std::vector<std::string> header = fields;
  const std::size_t header_line = line;
  const std::size_t image = column_index(header, columns.image, columns.image_key, file, header_line);
  const std::size_t text = column_index(header, columns.text, columns.text_key, file, header_line);
  const std::size_t label =
      labels ? column_index(header, columns.label, columns.label_key, file, header_line) : std::size_t(0);
  while (reader.next(fields, line)) {
    if (fields.size() != header.size())
      fail(file, line,
           std::to_string(fields.size()) + (fields.size() == 1 ? " field" : " fields") + ", expected " +
               std::to_string(header.size()) + " as in the header row (line " + std::to_string(header_line) +
               "); a value holding " + reader.separator_name() + " must be in double quotes");
    add_row(m, labels, fields[image], fields[text], labels ? std::string_view(fields[label]) : std::string_view(),
            columns, file, line);
  }
}

// ---------------------------------------------------------------------------
// JSON Lines.

/// nlohmann's reason without its prefix ("[json.exception...] parse error at
/// line 1, column 9: "): the line and byte are said otherwise.
std::string json_reason(const nlohmann::json::parse_error& e) {
  const std::string what = e.what();
  const std::size_t column = what.find("column ");
  const std::size_t colon = column == std::string::npos ? column : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

/// "an array", "a string", "null": a JSON value's type, for messages.
std::string type_of(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  const std::string name = v.type_name();
  return (name[0] == 'a' || name[0] == 'o' ? "an " : "a ") + name;
}

std::vector<std::string> keys_of(const nlohmann::json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

/// The string value of `name` in `object`; `integer_too` also takes an
/// integer, as its decimal text (labels).
std::string json_value(const nlohmann::json& object, const std::string& name, const std::string& key,
                       bool integer_too, const std::string& file, std::size_t line) {
  const auto it = object.find(name);
  if (it == object.end())
    fail(file, line, "no key " + in_quotes(name) + " (" + key + ") in the object; its keys: " + listed(keys_of(object)));
  if (it->is_string()) return it->get<std::string>();
  if (integer_too && it->is_number_integer()) return it->dump();
  fail(file, line,
       in_quotes(name) + " (" + key + ") is " + type_of(*it) + ", expected a string" +
           (integer_too ? " or an integer" : ""));
}

void parse_json_lines(Manifest& m, LabelCollector* labels, std::string_view bytes, const ManifestColumns& columns,
                      const std::string& file) {
  std::size_t line = 0;
  for (std::size_t pos = 0; pos < bytes.size();) {
    std::size_t end = bytes.find('\n', pos);
    if (end == std::string_view::npos) end = bytes.size();
    std::string_view text = bytes.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (line == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 byte order mark
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;     // a blank line
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail(file, line, "invalid JSON at byte " + std::to_string(e.byte) + " of the line: " + json_reason(e));
    }
    if (!object.is_object())
      fail(file, line, "expected a JSON object ({...}) per line, found " + type_of(object));
    const std::string image = json_value(object, columns.image, columns.image_key, false, file, line);
    const std::string text_value = json_value(object, columns.text, columns.text_key, false, file, line);
    const std::string label =
        labels ? json_value(object, columns.label, columns.label_key, true, file, line) : std::string();
    add_row(m, labels, image, text_value, label, columns, file, line);
  }
}

}  // namespace

Manifest parse_manifest(std::string_view bytes, ManifestFormat format, const ManifestColumns& columns,
                        const std::string& file) {
  Manifest m;
  LabelCollector labels;
  LabelCollector* with_labels = columns.label.empty() ? nullptr : &labels;
  switch (format) {
    case ManifestFormat::csv: parse_delimited(m, with_labels, bytes, ',', columns, file); break;
    case ManifestFormat::tsv: parse_delimited(m, with_labels, bytes, '\t', columns, file); break;
    case ManifestFormat::jsonl: parse_json_lines(m, with_labels, bytes, columns, file); break;
  }
  if (m.images.size() == 0)
    throw ConfigError(file + ": no rows" + (format == ManifestFormat::jsonl ? "" : " after the header") +
                      "; expected one image path and its caption per " +
                      (format == ManifestFormat::jsonl ? "line" : "row"));
  if (with_labels) labels.finish(m);
  return m;
}

}  // namespace contra::plugins::image_text
