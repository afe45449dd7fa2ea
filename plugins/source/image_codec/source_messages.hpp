#pragma once
/// \file
/// How the image sources (`image_folder`, `image_text`, `webdataset`) name
/// their parameters and counts in messages, once for the three.

#include <contra/schema.hpp>

#include <cstdint>
#include <string>

namespace contra::plugins::image_codec {

/// "p.toml:12:1: " where the parameter was set; "" when it was not.
inline std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

/// The parameter's key as the pipeline writes it ("source.width").
inline std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

/// The key a value came from: the source's own when its table set it, else
/// [data]'s, which a pipeline passes to the source (or its default, which is
/// the same).
inline std::string data_key(const contra::Params& p, const char* name) {
  return p.is_set(name) ? key(p, name) : std::string("data.") + name;
}

/// "1 file", "3 files".
inline std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace contra::plugins::image_codec
