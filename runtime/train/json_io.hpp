#pragma once
// JSON in and out, on nlohmann-json, for every JSON file contra reads or
// writes (run records, sweep.json, safetensors headers, traces): parsing that
// reports malformed text as FILE:LINE:COLUMN, lenient reads for files that
// may come from elsewhere (a member of the wrong type reads as missing), and
// the layout run records are written in.
//
// Values read from outside are only walked member by member: nlohmann
// parses and destroys any nesting depth without recursion, but copying,
// comparing or dumping a value recurses, so a hostile file nested 100000
// deep must never be copied or dumped whole.

#include <nlohmann/json.hpp>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace contra::runtime::json {

/// Objects keep their members in file order, the order people read them in.
using Json = nlohmann::ordered_json;

/// Parse `text` as one JSON value. Malformed text throws contra::DataError
/// "FILE:LINE:COLUMN: error: malformed WHAT: ..." (nlohmann's description),
/// with LINE counted from `first_line`. `what` names the text: "JSON", or
/// "safetensors header" for the JSON inside a safetensors file.
Json parse(std::string_view text, const std::string& file, int first_line = 1, std::string_view what = "JSON");

/// Read a whole file and parse it; a file that cannot be read is a DataError naming it.
Json parse_file(const std::string& path);

/// The lines of `text` that are JSON objects, in order; other lines (what a
/// program printed around them) are skipped.
std::vector<Json> object_lines(std::string_view text);
/// The last of them: the figures a peer program printed at its end; an
/// empty object when there is none.
Json last_object_line(std::string_view text);

/// The member `key` of an object, or nullptr (also when `object` is not one).
const Json* find(const Json& object, std::string_view key);
/// The number at `key`; NaN when missing, null (how NaN is written) or not a number.
double number_at(const Json& object, std::string_view key);
/// The string at `key`; `fallback` when missing or not a string.
std::string string_at(const Json& object, std::string_view key, const std::string& fallback = "");

/// What a value is, for messages: "an object", "an array", "a string", "a
/// number", "a boolean", "null".
std::string kind_of(const Json& value);

/// A figure as run records write it: null for NaN and infinities, else
/// rounded to 9 significant digits (what a float holds; no noise digits).
Json number(double v);

/// `{"a": 1, "b": [1, 2]}`: one line, ", " and ": " between items, the
/// layout of metrics.jsonl and of the values inside documents.
std::string one_line(const Json& value);
/// An object one member per line, two spaces in, each value on one line;
/// the arrays named in `listed` one element per line. Ends with a newline.
/// run.json, summary.json and sweep.json are written so.
std::string document(const Json& object, std::initializer_list<std::string_view> listed = {});

}  // namespace contra::runtime::json
