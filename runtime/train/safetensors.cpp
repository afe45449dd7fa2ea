#include "safetensors.hpp"

#include <contra/device.hpp>
#include <contra/errors.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

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

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else o += c;
  }
  return o + "\"";
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
template <class Writer> void atomic_write(const std::string& path, Writer&& writer) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
}

// A minimal JSON reader for safetensors headers: objects, strings, integers, arrays.
class HeaderParser {
 public:
  HeaderParser(const std::string& s, const std::string& file) : s_(s), file_(file) {}
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  [[noreturn]] void fail(const std::string& what) {
    throw DataError(file_ + ": malformed safetensors header at byte " + std::to_string(8 + i_) + ": " + what);
  }
  void expect(char c) {
    ws();
    if (i_ >= s_.size() || s_[i_] != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool peek(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  std::string string() {
    expect('"');
    std::string o;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      o += s_[i_++];
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return o;
  }
  std::int64_t integer() {
    ws();
    std::size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-')) ++i_;
    if (start == i_) fail("expected an integer");
    return std::stoll(s_.substr(start, i_ - start));
  }
  std::vector<std::int64_t> integers() {
    std::vector<std::int64_t> v;
    expect('[');
    if (peek(']')) return ++i_, v;
    do v.push_back(integer());
    while (peek(',') && ++i_);
    expect(']');
    return v;
  }
  std::size_t pos() const { return i_; }

 private:
  const std::string& s_;
  std::string file_;
  std::size_t i_ = 0;
};

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  atomic_write(path, [&](int fd, const std::string& tmp) { write_all(fd, text.data(), text.size(), tmp); });
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  std::size_t offset = 0;
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it)
      header += (it == metadata.begin() ? "" : ",") + json_string(it->first) + ":" + json_string(it->second);
    header += "}";
    first = false;
  }
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    // A repeated name would leave one tensor unreadable: readers keep one entry per name.
    if (!names.insert(name).second)
      throw UsageError("safetensors: two tensors named '" + name + "' written to " + path);
    // Device tensors (GPU runs) are copied to the host by the caller.
    expect_host(*t, ("safetensors: tensor '" + name + "' written to " + path).c_str());
    std::string shape = "[";
    for (int d = 0; d < t->rank(); ++d) shape += (d ? "," : "") + std::to_string(t->dim(d));
    shape += "]";
    header += (first ? "" : ",") + json_string(name) + ":{\"dtype\":\"" + st_dtype(t->dtype()) + "\",\"shape\":" +
              shape + ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t->nbytes()) +
              "]}";
    offset += t->nbytes();
    first = false;
  }
  header += "}";
  while (header.size() % 8) header += ' ';  // aligned data, as the reference writer pads
  atomic_write(path, [&](int fd, const std::string& tmp) {
    std::uint64_t n = header.size();
    unsigned char len[8];
    for (int b = 0; b < 8; ++b) len[b] = static_cast<unsigned char>(n >> (8 * b));
    write_all(fd, len, 8, tmp);
    write_all(fd, header.data(), header.size(), tmp);
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
  const std::string header = bytes.substr(8, n);
  const std::size_t data_start = 8 + n;
  SafetensorsFile out;
  HeaderParser p(header, path);
  p.expect('{');
  if (!p.peek('}')) {
    do {
      std::string name = p.string();
      p.expect(':');
      if (name == "__metadata__") {
        p.expect('{');
        if (!p.peek('}')) {
          do {
            std::string k = p.string();
            p.expect(':');
            out.metadata[k] = p.string();
          } while (p.peek(',') && (p.expect(','), true));
        }
        p.expect('}');
        continue;
      }
      std::string dtype;
      std::vector<std::int64_t> shape, range;
      p.expect('{');
      do {
        std::string k = p.string();
        p.expect(':');
        if (k == "dtype") dtype = p.string();
        else if (k == "shape") shape = p.integers();
        else if (k == "data_offsets") range = p.integers();
        else p.fail("unexpected key '" + k + "'");
      } while (p.peek(',') && (p.expect(','), true));
      p.expect('}');
      DType t;
      if (!parse_dtype(dtype, t)) throw DataError(path + ": tensor '" + name + "' has dtype '" + dtype + "'; expected U8, I32, I64 or F32");
      if (range.size() != 2 || range[0] < 0 || range[1] < range[0] || shape.size() > 6)
        throw DataError(path + ": tensor '" + name + "' has malformed data_offsets or shape");
      Shape s;
      if (shape.empty()) s = Shape{1};
      else {
        s = Shape{};
        for (std::size_t d = 0; d < shape.size(); ++d) {
          // Shape has no push_back; build through an initializer of the right rank.
        }
        switch (shape.size()) {
          case 1: s = Shape{shape[0]}; break;
          case 2: s = Shape{shape[0], shape[1]}; break;
          case 3: s = Shape{shape[0], shape[1], shape[2]}; break;
          case 4: s = Shape{shape[0], shape[1], shape[2], shape[3]}; break;
          case 5: s = Shape{shape[0], shape[1], shape[2], shape[3], shape[4]}; break;
          default: s = Shape{shape[0], shape[1], shape[2], shape[3], shape[4], shape[5]}; break;
        }
      }
      const auto bytes_needed = static_cast<std::int64_t>(static_cast<std::size_t>(s.numel()) * dtype_size(t));
      if (range[1] - range[0] != bytes_needed)
        throw DataError(path + ": tensor '" + name + "' of shape " + s.str() + " needs " + std::to_string(bytes_needed) +
                        " bytes, its data_offsets span " + std::to_string(range[1] - range[0]));
      if (data_start + static_cast<std::size_t>(range[1]) > bytes.size())
        throw DataError(path + ": truncated: tensor '" + name + "' ends at byte " +
                        std::to_string(data_start + static_cast<std::size_t>(range[1])) + ", the file has " +
                        std::to_string(bytes.size()));
      Tensor tensor = Tensor::empty(s, t);
      std::memcpy(tensor.raw(), bytes.data() + data_start + range[0], static_cast<std::size_t>(bytes_needed));
      out.tensors[name] = std::move(tensor);
    } while (p.peek(',') && (p.expect(','), true));
  }
  p.expect('}');
  return out;
}

}  // namespace contra::runtime
