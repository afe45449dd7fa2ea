#include "npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace contra::plugins {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the npy source reads little-endian data in place");

constexpr unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t chunk_bytes = 4u << 20;  // NCHW data is read and transposed this much at a time
constexpr std::int64_t max_label = std::numeric_limits<std::int32_t>::max();

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

std::string hex_bytes(const unsigned char* p, std::size_t n) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    s += (i ? " " : "") + std::string(buf);
  }
  return s;
}

/// A shape as Python prints it: (3, 28, 28), (3,), ().
std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// An open file descriptor, closed at scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

/// Reads up to n bytes; fewer only at the end of the file.
std::size_t read_fully(int fd, void* buf, std::size_t n, const std::string& path) {
  std::size_t total = 0;
  while (total < n) {
    ssize_t got = ::read(fd, static_cast<char*>(buf) + total, n - total);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw DataError(path + ": cannot read: " + std::strerror(errno));
    }
    if (got == 0) break;
    total += static_cast<std::size_t>(got);
  }
  return total;
}

// ---------------------------------------------------------------------------
// The header: a Python dict literal such as
//   {'descr': '|u1', 'fortran_order': False, 'shape': (3, 28, 28), }
// parsed just far enough: strings, integers (with Python 2's L suffix),
// True/False/None, tuples, lists and dicts.

struct PyValue {
  enum Kind { string, integer, boolean, none, tuple, list, dict } kind = none;
  std::string text;  // the value as written
  std::string str;
  std::int64_t integer_value = 0;
  bool boolean_value = false;
  std::vector<PyValue> items;  // tuple and list elements; dict keys and values alternating
};

class HeaderParser {
 public:
  HeaderParser(const std::string& header, const std::string& path) : s_(header), path_(path) {}

  PyValue parse() {
    PyValue v = value();
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the dict");
    if (v.kind != PyValue::dict) {
      pos_ = 0;
      fail("expected a dict");
    }
    return v;
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string shown = s_;
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.pop_back();
    if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
    const std::string at = pos_ >= shown.size() ? " at the end" : " at character " + std::to_string(pos_ + 1);
    throw DataError(path_ + ": malformed .npy header: " + what + at + " of " + shown);
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }

  // A real header nests two levels (the dict, the shape tuple); a hostile
  // one nesting thousands would overflow the stack of this recursive parser.
  static constexpr int max_depth = 16;

  PyValue value(int depth = 0) {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end of the header");
    if (depth > max_depth) fail("values nested deeper than " + std::to_string(max_depth) + " levels");
    const std::size_t start = pos_;
    PyValue v;
    const char c = s_[pos_];
    if (c == '\'' || c == '"') {
      v.kind = PyValue::string;
      ++pos_;
      while (pos_ < s_.size() && s_[pos_] != c) {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
        v.str += s_[pos_++];
      }
      if (pos_ >= s_.size()) {
        pos_ = start;
        fail("unterminated string");
      }
      ++pos_;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::integer;
      const bool negative = c == '-';
      if (negative) ++pos_;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("expected a digit");
      std::uint64_t n = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        const unsigned d = static_cast<unsigned>(s_[pos_] - '0');
        if (n > (std::numeric_limits<std::uint64_t>::max() - d) / 10 ||
            n * 10 + d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          pos_ = start;
          fail("integer too large");
        }
        n = n * 10 + d;
        ++pos_;
      }
      if (pos_ < s_.size() && (s_[pos_] == 'L' || s_[pos_] == 'l')) ++pos_;  // Python 2 long
      v.integer_value = negative ? -static_cast<std::int64_t>(n) : static_cast<std::int64_t>(n);
    } else if (s_.compare(pos_, 4, "True") == 0 || s_.compare(pos_, 5, "False") == 0) {
      v.kind = PyValue::boolean;
      v.boolean_value = s_[pos_] == 'T';
      pos_ += v.boolean_value ? 4 : 5;
    } else if (s_.compare(pos_, 4, "None") == 0) {
      pos_ += 4;
    } else if (c == '(' || c == '[') {
      v.kind = c == '(' ? PyValue::tuple : PyValue::list;
      const char close = c == '(' ? ')' : ']';
      ++pos_;
      while (!eat(close)) {
        v.items.push_back(value(depth + 1));
        if (!eat(',') && !peek(close)) fail(std::string("expected ',' or '") + close + "'");
      }
    } else if (c == '{') {
      v.kind = PyValue::dict;
      ++pos_;
      while (!eat('}')) {
        v.items.push_back(value(depth + 1));
        if (!eat(':')) fail("expected ':'");
        v.items.push_back(value(depth + 1));
        if (!eat(',') && !peek('}')) fail("expected ',' or '}'");
      }
    } else {
      fail(std::string("unexpected '") + c + "'");
    }
    v.text = s_.substr(start, pos_ - start);
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

/// What a .npy header says, and where the data starts.
struct NpyArray {
  std::string path;
  std::uint64_t file_size = 0;
  std::uint64_t data_offset = 0;  // preamble + header
  PyValue descr;                  // a string for plain dtypes; a list for structured ones
  bool fortran_order = false;
  std::vector<std::int64_t> shape;

  /// "'<f4'" for a plain dtype, the list as written for a structured one.
  std::string dtype_text() const {
    return descr.kind == PyValue::string ? "'" + descr.str + "'" : descr.text;
  }
};

/// Opens `path` and reads its preamble and header; every problem is a
/// DataError naming the file. Leaves the descriptor at the first data byte.
NpyArray read_npy_header(const std::string& path, Fd& fd) {
  NpyArray a;
  a.path = path;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw DataError(path + ": cannot read: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw DataError(path + ": cannot read: " + std::strerror(EISDIR));
  if (!S_ISREG(st.st_mode)) throw DataError(path + ": not a regular file, expected a .npy file");
  a.file_size = static_cast<std::uint64_t>(st.st_size);

  unsigned char pre[12];
  const std::size_t n = read_fully(fd.get(), pre, sizeof pre, path);
  if (n == 0) throw DataError(path + ": empty file, expected a .npy array");
  const std::size_t m = std::min<std::size_t>(n, sizeof npy_magic);
  if (std::memcmp(pre, npy_magic, m) != 0)
    throw DataError(path + ": not a .npy file: it starts with " + hex_bytes(pre, m) +
                    ", expected 93 4e 55 4d 50 59 (\\x93NUMPY)");
  const std::size_t preamble = n >= 7 && pre[6] >= 2 ? 12 : 10;
  auto truncated = [&](std::uint64_t total) {
    return DataError(path + ": truncated: the file ends after " + plural(a.file_size, "byte", "bytes") +
                     ", inside the " + std::to_string(total) + "-byte .npy header");
  };
  if (n < 8) throw truncated(preamble);
  const unsigned major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0)
    throw DataError(path + ": .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                    " is not supported; expected 1.0, 2.0 or 3.0");
  if (n < preamble) throw truncated(preamble);
  const std::uint64_t header_len = major == 1 ? std::uint64_t(pre[8]) | std::uint64_t(pre[9]) << 8
                                              : std::uint64_t(pre[8]) | std::uint64_t(pre[9]) << 8 |
                                                    std::uint64_t(pre[10]) << 16 | std::uint64_t(pre[11]) << 24;
  if (header_len > NpySource::max_header_bytes)
    throw DataError(path + ": the .npy preamble declares a header of " + plural(header_len, "byte", "bytes") +
                    ", expected at most " + std::to_string(NpySource::max_header_bytes));
  a.data_offset = preamble + header_len;
  if (a.file_size < a.data_offset) throw truncated(a.data_offset);

  // The preamble of version 1.0 is 10 bytes, of which 12 were read.
  std::string header(reinterpret_cast<const char*>(pre) + preamble, n - preamble);
  const std::size_t have = header.size();
  header.resize(static_cast<std::size_t>(header_len));
  if (header_len > have) {
    const std::size_t got = read_fully(fd.get(), header.data() + have, header.size() - have, path);
    if (got < header.size() - have) throw truncated(a.data_offset);
  } else if (header_len < have) {
    // A header shorter than the bytes already read: step back to the data.
    if (::lseek(fd.get(), static_cast<off_t>(a.data_offset), SEEK_SET) < 0)
      throw DataError(path + ": cannot read: " + std::strerror(errno));
  }

  HeaderParser parser(header, path);
  const PyValue dict = parser.parse();
  const PyValue *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PyValue& k = dict.items[i];
    if (k.kind != PyValue::string) continue;
    if (k.str == "descr") descr = &dict.items[i + 1];
    else if (k.str == "fortran_order") fortran = &dict.items[i + 1];
    else if (k.str == "shape") shape = &dict.items[i + 1];
  }
  auto missing = [&](const char* name) {
    return DataError(path + ": malformed .npy header: no '" + name + "' key in " + dict.text);
  };
  if (!descr) throw missing("descr");
  if (!fortran) throw missing("fortran_order");
  if (!shape) throw missing("shape");
  if (fortran->kind != PyValue::boolean)
    throw DataError(path + ": malformed .npy header: 'fortran_order' is " + fortran->text + ", expected True or False");
  if (shape->kind != PyValue::tuple)
    throw DataError(path + ": malformed .npy header: 'shape' is " + shape->text + ", expected a tuple of integers");
  for (const auto& d : shape->items) {
    if (d.kind != PyValue::integer || d.integer_value < 0)
      throw DataError(path + ": malformed .npy header: 'shape' is " + shape->text +
                      ", expected a tuple of integers of at least 0");
    a.shape.push_back(d.integer_value);
  }
  a.descr = *descr;
  a.fortran_order = fortran->boolean_value;
  if (a.fortran_order)
    throw DataError(path + ": fortran_order is True; expected a C-order array (save np.ascontiguousarray(a))");
  return a;
}

/// Checks that the file holds exactly `count` elements of `itemsize` bytes
/// after its header, before anything is allocated.
void check_data_size(const NpyArray& a, std::uint64_t count, std::uint64_t itemsize) {
  std::uint64_t bytes = 0;
  const std::string declares = "the header declares shape " + shape_str(a.shape) + " of " + a.dtype_text();
  if (__builtin_mul_overflow(count, itemsize, &bytes))
    throw DataError(a.path + ": " + declares + ", which is too large");
  const std::string need = declares + " (" + plural(bytes, "byte", "bytes") + " of data)";
  const std::uint64_t have = a.file_size - a.data_offset;
  if (have < bytes)
    throw DataError(a.path + ": truncated: " + need + " but the data ends after " + plural(have, "byte", "bytes"));
  if (have > bytes)
    throw DataError(a.path + ": " + need + " but " + plural(have - bytes, "more byte follows", "more bytes follow") +
                    " them");
}

int open_npy(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; it changes nothing for regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  return fd;
}

/// Integer label dtypes: '<i8', '<i4', '<i2', '|i1', '|u1', '<u2', '<u4', '<u8'
/// (and '=' for native order). Returns the item size and signedness, or
/// throws naming what was found.
std::pair<int, bool> label_dtype(const NpyArray& a) {
  const std::string expected = "expected an integer dtype such as '<i8' (int64), '<i4' (int32) or '|u1' (uint8)";
  if (a.descr.kind != PyValue::string)
    throw DataError(a.path + ": dtype " + a.dtype_text() + " is not supported for labels; " + expected);
  const std::string& d = a.descr.str;
  const bool shaped = d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=') &&
                      (d[1] == 'i' || d[1] == 'u') && (d[2] == '1' || d[2] == '2' || d[2] == '4' || d[2] == '8');
  if (!shaped) throw DataError(a.path + ": dtype '" + d + "' is not supported for labels; " + expected);
  const int size = d[2] - '0';
  if (d[0] == '>' && size > 1)
    throw DataError(a.path + ": dtype '" + d + "' is big-endian; expected little-endian ('<" + d.substr(1) +
                    "'): save arr.astype('<" + d.substr(1) + "')");
  return {size, d[1] == 'i'};
}

}  // namespace

contra::Schema NpySource::schema() {
  return contra::Schema("npy", "NumPy .npy arrays: uint8 images (N, H, W[, C]) and optional integer labels (N,)")
      .required<std::string>("images", ".npy file of dtype uint8, shape (N, H, W), (N, H, W, C) or, with "
                                       "layout = \"nchw\", (N, C, H, W); C is 1 or 3")
      .add<std::string>("labels", "", ".npy file of integer labels, shape (N,); \"\" for no labels")
      .add<std::string>("layout", "nhwc", "axis order of 4-d images: nhwc (N, H, W, C) or nchw (N, C, H, W)")
      .choices({"nhwc", "nchw"});
}

NpySource::NpySource(const contra::Params& p) : images_path_(p.path("images")), labels_path_(p.path("labels")) {
  const bool nchw = p.get<std::string>("layout") == "nchw";
  if (images_path_.empty())
    throw contra::ConfigError(located(p, "images") + key(p, "images") +
                              ": expected a .npy file of uint8 images, found \"\"");
  {
    const std::string& path = images_path_;
    Fd fd(open_npy(path));
    const NpyArray a = read_npy_header(path, fd);
    const std::string& d = a.descr.str;
    if (a.descr.kind != PyValue::string || d.size() != 3 || d[1] != 'u' || d[2] != '1' ||
        (d[0] != '|' && d[0] != '<' && d[0] != '>' && d[0] != '='))
      throw DataError(path + ": dtype " + a.dtype_text() + " is not supported for images; expected '|u1' (uint8)");

    const std::string forms = nchw ? "(N, H, W) or (N, C, H, W) (layout \"nchw\")"
                                   : "(N, H, W) or (N, H, W, C) (layout \"nhwc\")";
    const auto& s = a.shape;
    if (s.size() != 3 && s.size() != 4)
      throw DataError(path + ": shape " + shape_str(s) + " is not supported for images; expected " + forms);
    count_ = s[0];
    if (s.size() == 3) {
      height_ = s[1];
      width_ = s[2];
      channels_ = 1;
    } else if (nchw) {
      channels_ = s[1];
      height_ = s[2];
      width_ = s[3];
    } else {
      height_ = s[1];
      width_ = s[2];
      channels_ = s[3];
    }
    if (channels_ != 1 && channels_ != 3) {
      std::string msg = path + ": shape " + shape_str(s) + " has " + std::to_string(channels_) +
                        " channels; expected 1 or 3 in " + forms;
      if (!nchw && (s[1] == 1 || s[1] == 3)) msg += "; for (N, C, H, W) data set " + key(p, "layout") + " = \"nchw\"";
      if (nchw && (s[3] == 1 || s[3] == 3)) msg += "; for (N, H, W, C) data set " + key(p, "layout") + " = \"nhwc\"";
      throw DataError(msg);
    }
    if (count_ == 0 || height_ == 0 || width_ == 0)
      throw DataError(path + ": shape " + shape_str(s) +
                      " holds no pixels; expected at least one image of at least 1x1 pixels");
    if (height_ > max_side || width_ > max_side)
      throw DataError(path + ": shape " + shape_str(s) + " declares images of " + std::to_string(height_) + "x" +
                      std::to_string(width_) + ", expected at most " + std::to_string(max_side) +
                      " pixels on each side");
    const std::uint64_t image_bytes = static_cast<std::uint64_t>(height_ * width_ * channels_);
    std::uint64_t total = 0;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(count_), image_bytes, &total))
      throw DataError(path + ": the header declares shape " + shape_str(s) + " of " + a.dtype_text() +
                      ", which is too large");
    check_data_size(a, total, 1);

    pixels_.resize(static_cast<std::size_t>(total));
    if (!nchw || channels_ == 1) {
      // HWC already (a single plane is the same in both layouts).
      const std::size_t got = read_fully(fd.get(), pixels_.data(), pixels_.size(), path);
      if (got < pixels_.size())
        throw DataError(path + ": truncated while being read: it ends after " +
                        plural(a.data_offset + got, "byte", "bytes"));
    } else {
      // (C, H, W) planes of each image become (H, W, C), a chunk of images at a time.
      const std::size_t ib = static_cast<std::size_t>(image_bytes);
      const std::size_t per_chunk = std::max<std::size_t>(1, chunk_bytes / ib);
      const std::size_t plane = static_cast<std::size_t>(height_ * width_);
      const std::size_t c = static_cast<std::size_t>(channels_);
      std::vector<std::uint8_t> buf(std::min<std::size_t>(per_chunk, static_cast<std::size_t>(count_)) * ib);
      for (std::size_t first = 0; first < static_cast<std::size_t>(count_); first += per_chunk) {
        const std::size_t n = std::min<std::size_t>(per_chunk, static_cast<std::size_t>(count_) - first);
        const std::size_t got = read_fully(fd.get(), buf.data(), n * ib, path);
        if (got < n * ib)
          throw DataError(path + ": truncated while being read: it ends after " +
                          plural(a.data_offset + first * ib + got, "byte", "bytes"));
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint8_t* src = buf.data() + i * ib;
          std::uint8_t* dst = pixels_.data() + (first + i) * ib;
          for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t k = 0; k < plane; ++k) dst[k * c + ch] = src[ch * plane + k];
        }
      }
    }
  }
  if (labels_path_.empty()) return;

  const std::string& lpath = labels_path_;
  Fd fd(open_npy(lpath));
  const NpyArray a = read_npy_header(lpath, fd);
  const auto [size, is_signed] = label_dtype(a);
  if (a.shape.size() != 1)
    throw DataError(lpath + ": shape " + shape_str(a.shape) + " is not supported for labels; expected (N,)");
  if (a.shape[0] != count_)
    throw DataError(lpath + ": shape " + shape_str(a.shape) + " holds " +
                    plural(static_cast<std::uint64_t>(a.shape[0]), "label", "labels") + " but " + images_path_ +
                    " holds " + plural(static_cast<std::uint64_t>(count_), "image", "images"));
  check_data_size(a, static_cast<std::uint64_t>(count_), static_cast<std::uint64_t>(size));
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(count_) * static_cast<std::size_t>(size));
  const std::size_t got = read_fully(fd.get(), raw.data(), raw.size(), lpath);
  if (got < raw.size())
    throw DataError(lpath + ": truncated while being read: it ends after " +
                    plural(a.data_offset + got, "byte", "bytes"));
  labels_.resize(static_cast<std::size_t>(count_));
  for (std::size_t i = 0; i < labels_.size(); ++i) {
    const std::uint8_t* q = raw.data() + i * static_cast<std::size_t>(size);
    std::int64_t v = 0;
    bool too_large = false;
    switch (size) {
      case 1: v = is_signed ? std::int64_t(std::int8_t(q[0])) : std::int64_t(q[0]); break;
      case 2: {
        std::uint16_t u;
        std::memcpy(&u, q, 2);
        v = is_signed ? std::int64_t(std::int16_t(u)) : std::int64_t(u);
        break;
      }
      case 4: {
        std::uint32_t u;
        std::memcpy(&u, q, 4);
        v = is_signed ? std::int64_t(std::int32_t(u)) : std::int64_t(u);
        break;
      }
      default: {
        std::uint64_t u;
        std::memcpy(&u, q, 8);
        if (!is_signed && u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) too_large = true;
        v = static_cast<std::int64_t>(u);
        break;
      }
    }
    if (too_large || v < 0 || v > max_label) {
      std::string shown;
      if (too_large) {
        std::uint64_t u;
        std::memcpy(&u, q, 8);
        shown = std::to_string(u);
      } else {
        shown = std::to_string(v);
      }
      throw DataError(lpath + ": label " + shown + " at index " + std::to_string(i) + " (byte offset " +
                      std::to_string(a.data_offset + i * static_cast<std::uint64_t>(size)) +
                      ") is out of range, expected 0 to " + std::to_string(max_label));
    }
    labels_[i] = v;
  }
  num_classes_ = *std::max_element(labels_.begin(), labels_.end()) + 1;
}

contra::SourceInfo NpySource::info() const {
  contra::SourceInfo s;
  s.size = count_;
  s.shape = {height_, width_, channels_};
  s.num_classes = num_classes_;
  return s;
}

std::int64_t NpySource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= count_)
    throw DataError(images_path_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    plural(static_cast<std::uint64_t>(count_), "image", "images"));
  image.ensure({height_, width_, channels_}, DType::u8);
  const std::size_t n = static_cast<std::size_t>(height_ * width_ * channels_);
  std::memcpy(image.data<std::uint8_t>(), pixels_.data() + static_cast<std::size_t>(index) * n, n);
  return labels_.empty() ? -1 : labels_[static_cast<std::size_t>(index)];
}

}  // namespace contra::plugins
