#pragma once
// A small JSON reader for the files of a run folder (run.json, summary.json,
// metrics.jsonl, sweep.json): objects, arrays, strings (with \u escapes),
// numbers, true, false, null. Unknown keys are the caller's to ignore; a
// malformed input throws contra::DataError "FILE:LINE:COLUMN: error: ...".

#include <contra/errors.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace contra::cli::json {

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  ///< in file order

  bool is_null() const { return type == Type::null; }
  bool is_number() const { return type == Type::number; }
  bool is_string() const { return type == Type::string; }
  bool is_array() const { return type == Type::array; }
  bool is_object() const { return type == Type::object; }

  /// The member named `key` of an object (the last one if repeated), or nullptr.
  const Value* find(std::string_view key) const {
    if (type != Type::object) return nullptr;
    for (auto it = object.rbegin(); it != object.rend(); ++it)
      if (it->first == key) return &it->second;
    return nullptr;
  }
  /// A number; NaN for null (how run records write NaN and infinities) or anything else.
  double as_number() const { return type == Type::number ? number : NAN; }
  double number_at(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_number() : NAN;
  }
  std::string string_at(std::string_view key, std::string fallback = "") const {
    const Value* v = find(key);
    return v && v->type == Type::string ? v->string : fallback;
  }
};

namespace detail {

class Parser {
 public:
  Parser(std::string_view text, const std::string& file, int first_line)
      : s_(text), file_(file), line_(first_line) {}

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (i_ < s_.size()) fail("unexpected '" + shown(s_[i_]) + "' after the JSON value");
    return v;
  }

 private:
  std::string_view s_;
  const std::string& file_;
  std::size_t i_ = 0;
  int line_;
  std::size_t line_start_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(file_ + ":" + std::to_string(line_) + ":" + std::to_string(i_ - line_start_ + 1) +
                    ": error: malformed JSON: " + what);
  }
  static std::string shown(char c) {
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      return buf;
    }
    return std::string(1, c);
  }
  void skip_ws() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\n') {
        ++line_;
        line_start_ = ++i_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
      } else {
        break;
      }
    }
  }
  char peek() {
    if (i_ >= s_.size()) fail("unexpected end of input");
    return s_[i_];
  }
  void expect_word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) fail("expected a value, found '" + shown(s_[i_]) + "'");
    i_ += w.size();
  }

  Value value(int depth) {
    if (depth > 256) fail("nested deeper than 256 levels");
    Value v;
    char c = peek();
    if (c == '{') {
      v.type = Value::Type::object;
      ++i_;
      skip_ws();
      if (peek() == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key, found '" + shown(s_[i_]) + "'");
        std::string key = string();
        skip_ws();
        if (peek() != ':') fail("expected ':' after the key \"" + key + "\"");
        ++i_;
        skip_ws();
        Value member = value(depth + 1);
        v.object.emplace_back(std::move(key), std::move(member));
        skip_ws();
        char d = peek();
        ++i_;
        if (d == '}') return v;
        if (d != ',') {
          --i_;
          fail("expected ',' or '}' in an object, found '" + shown(d) + "'");
        }
      }
    }
    if (c == '[') {
      v.type = Value::Type::array;
      ++i_;
      skip_ws();
      if (peek() == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        skip_ws();
        v.array.push_back(value(depth + 1));
        skip_ws();
        char d = peek();
        ++i_;
        if (d == ']') return v;
        if (d != ',') {
          --i_;
          fail("expected ',' or ']' in an array, found '" + shown(d) + "'");
        }
      }
    }
    if (c == '"') {
      v.type = Value::Type::string;
      v.string = string();
      return v;
    }
    if (c == 't') {
      expect_word("true");
      v.type = Value::Type::boolean;
      v.boolean = true;
      return v;
    }
    if (c == 'f') {
      expect_word("false");
      v.type = Value::Type::boolean;
      return v;
    }
    if (c == 'n') {
      expect_word("null");
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Value::Type::number;
      v.number = number();
      return v;
    }
    fail("expected a value, found '" + shown(c) + "'");
  }

  double number() {
    std::size_t start = i_;
    auto digits = [&] {
      std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - d;
    };
    if (s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      fail("a number needs digits");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) fail("a number needs digits after '.'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) fail("a number needs digits in its exponent");
    }
    std::string text(s_.substr(start, i_ - start));
    return std::strtod(text.c_str(), nullptr);
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("\\u needs four hex digits");
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      char h = s_[i_++];
      u <<= 4;
      if (h >= '0' && h <= '9') u |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') u |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') u |= static_cast<unsigned>(h - 'A' + 10);
      else fail("\\u needs four hex digits");
    }
    return u;
  }

  static void utf8(std::string& o, unsigned cp) {
    if (cp < 0x80) {
      o += static_cast<char>(cp);
    } else if (cp < 0x800) {
      o += static_cast<char>(0xC0 | (cp >> 6));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      o += static_cast<char>(0xE0 | (cp >> 12));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      o += static_cast<char>(0xF0 | (cp >> 18));
      o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    ++i_;  // the opening quote
    std::string o;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_];
      if (c == '"') {
        ++i_;
        return o;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character '" + shown(c) + "' in a string");
      ++i_;
      if (c != '\\') {
        o += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case '"': o += '"'; break;
        case '\\': o += '\\'; break;
        case '/': o += '/'; break;
        case 'b': o += '\b'; break;
        case 'f': o += '\f'; break;
        case 'n': o += '\n'; break;
        case 'r': o += '\r'; break;
        case 't': o += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            std::size_t save = i_;
            i_ += 2;
            unsigned lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else i_ = save;
          }
          utf8(o, cp);
          break;
        }
        default:
          --i_;
          fail("unknown escape '\\" + shown(e) + "' in a string");
      }
    }
  }
};

}  // namespace detail

/// Parse one JSON value from `text`; `file` and `first_line` place errors.
inline Value parse(std::string_view text, const std::string& file, int first_line = 1) {
  return detail::Parser(text, file, first_line).document();
}

/// Read and parse a whole file; a missing file is a DataError naming it.
inline Value parse_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(path + ": cannot be read");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse(text, path);
}

}  // namespace contra::cli::json
