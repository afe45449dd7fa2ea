#include "safetensors.hpp"
#include "json_io.hpp"

#include <contra/device.hpp>
#include <contra/errors.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace contra::runtime {

namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::f32: return "F32";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "U8") return out = DType::u8, true;
  if (s == "I32") return out = DType::i32, true;
  if (s == "I64") return out = DType::i64, true;
  if (s == "F32") return out = DType::f32, true;
  return false;
}

void write_all(int fd, const void* data, std::size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write " + path + ": " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Temporary file, fsync, rename: a reader sees the old file or the new one.
// The temporary name is this writer's own (process id and a counter, created
// exclusively), so two writers of one file never write into each other's.
template <class Writer> void atomic_write(const std::string& path, Writer&& writer) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
  try {
    writer(fd, tmp);
    if (::fsync(fd) != 0) throw Error("cannot sync " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  // The rename itself reaches the disk with its folder's entry: synced too,
  // so that a power loss cannot bring the old file back.
  const std::string folder = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) throw Error("cannot open " + folder + " to sync it: " + std::strerror(errno));
  const int synced = ::fsync(dir);
  const int err = errno;
  ::close(dir);
  if (synced != 0 && err != EINVAL) throw Error("cannot sync " + folder + ": " + std::strerror(err));
}

// Shape has no push_back: a shape of the right rank, then its dimensions.
// Rank 0 (a scalar) is one element.
Shape shape_of(const std::vector<std::int64_t>& dims) {
  if (dims.empty()) return Shape{1};
  static const Shape zeros[] = {{0}, {0, 0}, {0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}};
  Shape s = zeros[dims.size() - 1];
  for (std::size_t d = 0; d < dims.size(); ++d) s[static_cast<int>(d)] = dims[d];
  return s;
}

// An array of at most `max_size` integers in [0, 2^63), or false.
bool read_integers(const json::Json& v, std::size_t max_size, std::vector<std::int64_t>& out) {
  if (!v.is_array() || v.size() > max_size) return false;
  out.clear();
  for (const auto& x : v) {
    if (!x.is_number_unsigned() || x.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) return false;
    out.push_back(static_cast<std::int64_t>(x.get<std::uint64_t>()));
  }
  return true;
}

// One tensor's entry of the header, checked against the file's bytes.
Tensor read_tensor(const std::string& path, const std::string& name, const json::Json& entry, const std::string& bytes,
                   std::size_t data_start) {
  if (!entry.is_object())
    throw DataError(path + ": tensor '" + name + "' is described by " + json::kind_of(entry) +
                    "; expected an object with dtype, shape and data_offsets");
  for (const auto& [key, value] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw DataError(path + ": tensor '" + name + "' has the unexpected key '" + key +
                      "'; expected dtype, shape and data_offsets");
  const std::string dtype = json::string_at(entry, "dtype");
  DType t;
  if (!parse_dtype(dtype, t))
    throw DataError(path + ": tensor '" + name + "' has dtype '" + dtype + "'; expected U8, I32, I64 or F32");
  std::vector<std::int64_t> dims, range;
  const json::Json* shape = json::find(entry, "shape");
  if (!shape || !read_integers(*shape, Shape::max_rank, dims))
    throw DataError(path + ": tensor '" + name + "' has a malformed shape; expected an array of at most " +
                    std::to_string(Shape::max_rank) + " non-negative integers");
  const json::Json* offsets = json::find(entry, "data_offsets");
  if (!offsets || !read_integers(*offsets, 2, range) || range.size() != 2 || range[1] < range[0])
    throw DataError(path + ": tensor '" + name + "' has malformed data_offsets; expected [begin, end] with "
                    "0 <= begin <= end");
  // The size the shape needs, without overflow: a hostile shape may multiply past 2^63.
  std::int64_t bytes_needed = static_cast<std::int64_t>(dtype_size(t));
  for (std::int64_t d : dims)
    if (__builtin_mul_overflow(bytes_needed, d, &bytes_needed))
      throw DataError(path + ": tensor '" + name + "' has a shape of more than 2^63 bytes");
  const Shape s = shape_of(dims);
  if (range[1] - range[0] != bytes_needed)
    throw DataError(path + ": tensor '" + name + "' of shape " + s.str() + " needs " + std::to_string(bytes_needed) +
                    " bytes, its data_offsets span " + std::to_string(range[1] - range[0]));
  if (static_cast<std::uint64_t>(range[1]) > bytes.size() - data_start)
    throw DataError(path + ": truncated: tensor '" + name + "' ends at byte " +
                    std::to_string(static_cast<std::uint64_t>(data_start) + static_cast<std::uint64_t>(range[1])) +
                    ", the file has " + std::to_string(bytes.size()));
  Tensor tensor = Tensor::empty(s, t);
  std::memcpy(tensor.raw(), bytes.data() + data_start + range[0], static_cast<std::size_t>(bytes_needed));
  return tensor;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  atomic_write(path, [&](int fd, const std::string& tmp) { write_all(fd, text.data(), text.size(), tmp); });
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json::Json header = json::Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    // A repeated name would leave one tensor unreadable: readers keep one entry per name.
    if (name == "__metadata__") throw UsageError("safetensors: a tensor named '__metadata__' written to " + path);
    if (header.contains(name)) throw UsageError("safetensors: two tensors named '" + name + "' written to " + path);
    // Device tensors (GPU runs) are copied to the host by the caller.
    expect_host(*t, ("safetensors: tensor '" + name + "' written to " + path).c_str());
    std::vector<std::int64_t> shape;
    for (int d = 0; d < t->rank(); ++d) shape.push_back(t->dim(d));
    header[name] = {{"dtype", st_dtype(t->dtype())},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + t->nbytes()}}};
    offset += t->nbytes();
  }
  std::string text = header.dump(-1, ' ', false, json::Json::error_handler_t::replace);
  text.resize((text.size() + 7) / 8 * 8, ' ');  // aligned data, as the reference writer pads
  atomic_write(path, [&](int fd, const std::string& tmp) {
    std::uint64_t n = text.size();
    unsigned char len[8];
    for (int b = 0; b < 8; ++b) len[b] = static_cast<unsigned char>(n >> (8 * b));
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const auto& [name, t] : tensors) write_all(fd, t->raw(), t->nbytes(), tmp);
  });
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(path + ": cannot open: " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  if (bytes.size() < 8) throw DataError(path + ": truncated: " + std::to_string(bytes.size()) + " bytes, a safetensors file starts with an 8-byte header length");
  std::uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[b])) << (8 * b);
  if (n > bytes.size() - 8)
    throw DataError(path + ": truncated: the header declares " + std::to_string(n) + " bytes, the file has " +
                    std::to_string(bytes.size() - 8) + " after the length");
  const std::size_t data_start = 8 + n;
  const json::Json header = json::parse(std::string_view(bytes).substr(8, n), path, 1, "safetensors header");
  if (!header.is_object())
    throw DataError(path + ": the safetensors header is " + json::kind_of(header) + "; expected an object");
  SafetensorsFile out;
  for (const auto& [name, entry] : header.items()) {
    if (name != "__metadata__") {
      out.tensors[name] = read_tensor(path, name, entry, bytes, data_start);
      continue;
    }
    if (!entry.is_object())
      throw DataError(path + ": __metadata__ is " + json::kind_of(entry) + "; expected an object of strings");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string())
        throw DataError(path + ": __metadata__ '" + key + "' is " + json::kind_of(value) +
                        "; expected a string");
      out.metadata[key] = value.get<std::string>();
    }
  }
  return out;
}

}  // namespace contra::runtime
