#pragma once
// safetensors files (the format of Hugging Face's `safetensors`): an 8-byte
// little-endian header length, a JSON header mapping each tensor's name to
// its dtype, shape and byte range, then the raw data. Python reads them with
// `safetensors.numpy.load_file` or a few lines of json + numpy.

#include <contra/tensor.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;           ///< owning copies
  std::map<std::string, std::string> metadata;     ///< "__metadata__": string to string
};

/// Write atomically: a temporary file beside `path`, fsync, rename. Throws
/// contra::Error naming the file on any failure.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata);

/// Read a file written by write_safetensors (or any safetensors file with
/// dtypes U8, I32, I64, F32). Throws DataError naming the file and what is
/// wrong for a truncated or malformed one.
SafetensorsFile read_safetensors(const std::string& path);

/// Write `text` to `path` atomically (temporary file, fsync, rename).
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace contra::runtime
