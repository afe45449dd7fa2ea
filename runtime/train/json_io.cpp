#include "json_io.hpp"

#include <contra/errors.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace contra::runtime::json {

namespace {

// nlohmann's message without its "[json.exception.parse_error.101] parse
// error at line L, column C: " prefix: the place is said our way.
std::string description(std::string_view what) {
  if (what.starts_with("[json.exception.")) {
    if (auto close = what.find("] "); close != std::string_view::npos) what.remove_prefix(close + 2);
  }
  if (what.starts_with("parse error")) {
    if (auto colon = what.find(": "); colon != std::string_view::npos) what.remove_prefix(colon + 2);
  }
  return std::string(what);
}

// nlohmann's parse_error::byte counts the characters read, the failing one
// included (1 for the first): the failing character is at byte - 1, or at
// the end of the text when the text ended first.
std::string place(std::string_view text, std::size_t byte, int first_line) {
  const std::size_t at = std::min(byte > 0 ? byte - 1 : 0, text.size());
  const std::string_view before = text.substr(0, at);
  const auto line = first_line + std::count(before.begin(), before.end(), '\n');
  const std::size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
  return std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

void write_one_line(const Json& v, std::string& out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, member] : v.items()) {
      out += first ? "" : ", ";
      first = false;
      out += Json(key).dump(-1, ' ', false, Json::error_handler_t::replace);
      out += ": ";
      write_one_line(member, out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      out += i ? ", " : "";
      write_one_line(v[i], out);
    }
    out += ']';
  } else {
    // Bytes that are not UTF-8 (a path, a message) become U+FFFD: a record
    // is always written, and always valid JSON.
    out += v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

}  // namespace

Json parse(std::string_view text, const std::string& file, int first_line, std::string_view what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    throw DataError(file + ":" + place(text, e.byte, first_line) + ": error: malformed " + std::string(what) + ": " +
                    description(e.what()));
  } catch (const Json::exception& e) {
    // A number beyond a double's range: nlohmann says which, not where; the
    // line is known when the text is one.
    const bool one = text.find('\n') == std::string_view::npos;
    throw DataError(file + (one ? ":" + std::to_string(first_line) : "") + ": error: malformed " + std::string(what) +
                    ": " + description(e.what()));
  }
}

Json parse_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(path + ": cannot be read");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse(text, path);
}

std::vector<Json> object_lines(std::string_view text) {
  std::vector<Json> out;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    Json v = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (v.is_object()) out.push_back(std::move(v));
  }
  return out;
}

Json last_object_line(std::string_view text) {
  std::vector<Json> lines = object_lines(text);
  return lines.empty() ? Json::object() : std::move(lines.back());
}

const Json* find(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

double number_at(const Json& object, std::string_view key) {
  const Json* v = find(object, key);
  return v && v->is_number() ? v->get<double>() : NAN;
}

std::string string_at(const Json& object, std::string_view key, const std::string& fallback) {
  const Json* v = find(object, key);
  return v && v->is_string() ? v->get_ref<const std::string&>() : fallback;
}

std::string kind_of(const Json& value) {
  if (value.is_null()) return "null";
  const std::string name = value.type_name();
  return (value.is_object() || value.is_array() ? "an " : "a ") + name;
}

Json number(double v) {
  if (!std::isfinite(v)) return nullptr;
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return std::strtod(text, nullptr);
}

std::string one_line(const Json& value) {
  std::string out;
  write_one_line(value, out);
  return out;
}

std::string document(const Json& object, std::initializer_list<std::string_view> listed) {
  if (!object.is_object() || object.empty()) return one_line(object) + "\n";
  std::string out = "{";
  bool first = true;
  for (const auto& [key, member] : object.items()) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += Json(key).dump(-1, ' ', false, Json::error_handler_t::replace) + ": ";
    if (member.is_array() && !member.empty() && std::find(listed.begin(), listed.end(), key) != listed.end()) {
      out += "[";
      for (std::size_t i = 0; i < member.size(); ++i) out += (i ? ",\n    " : "\n    ") + one_line(member[i]);
      out += "\n  ]";
    } else {
      out += one_line(member);
    }
  }
  return out + "\n}\n";
}

}  // namespace contra::runtime::json
