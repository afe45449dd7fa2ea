#include "idx.hpp"

#include <contra/memory_budget.hpp>

#include <zlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

namespace contra::plugins {

namespace {

constexpr std::uint32_t image_magic = 0x00000803u;  // u8, 3 dimensions
constexpr std::uint32_t label_magic = 0x00000801u;  // u8, 1 dimension
constexpr std::size_t image_header_bytes = 16;
constexpr std::size_t label_header_bytes = 8;
constexpr std::uint32_t max_side = 16384;  // larger images are surely a corrupt header

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

/// A file read plain, or inflated when it starts with the gzip magic 1f 8b.
/// gzip data may hold several members one after another (what `cat a.gz
/// b.gz` makes): each is inflated in turn. Anything else after the last
/// member is refused, naming its offset in the file; zlib's gzread would drop
/// it silently.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) file_size_ = static_cast<std::uint64_t>(st.st_size);
    // A plain file is read in place from its first byte: only its first two
    // bytes decide.
    fill();
    gzip_ = have_ >= 2 && in_[next_] == 0x1f && in_[next_ + 1] == 0x8b;
    if (gzip_ && inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) {
      ::close(fd_);
      throw DataError(path + ": cannot open: out of memory");
    }
  }
  ~GzReader() {
    if (gzip_) inflateEnd(&z_);
    ::close(fd_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Reads up to n bytes; fewer only at the end of the data (or where gzip
  /// data is cut short: rest() then says so).
  std::size_t read(void* buf, std::size_t n) {
    auto* out = static_cast<unsigned char*>(buf);
    std::size_t total = 0;
    while (total < n) {
      if (!gzip_) {
        if (!fill()) break;
        const std::size_t k = std::min(n - total, have_);
        std::memcpy(out + total, in_ + next_, k);
        consume(k);
        total += k;
        continue;
      }
      if (member_done_) {
        // After a member: the end of the file, or another member.
        if (have_ < 2 && !fill_to(2)) {
          if (have_ == 0) break;
          trailing();
        }
        if (in_[next_] != 0x1f || in_[next_ + 1] != 0x8b) trailing();
        inflateReset(&z_);
        member_done_ = false;
      }
      // inflate may hold output back for want of room: it is called even
      // when no input is left.
      const bool eof = !fill();
      z_.next_in = in_ + next_;
      z_.avail_in = static_cast<uInt>(have_);
      z_.next_out = out + total;
      z_.avail_out = static_cast<uInt>(std::min<std::size_t>(n - total, 1u << 30));
      const uInt out_before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      const std::size_t used = have_ - z_.avail_in, made = out_before - z_.avail_out;
      consume(used);
      total += made;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
        continue;
      }
      if (rc == Z_MEM_ERROR) throw DataError(path_ + ": cannot inflate: out of memory");
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        throw DataError(path_ + ": corrupt gzip data: " + (z_.msg ? z_.msg : "inflate error " + std::to_string(rc)));
      if (used == 0 && made == 0 && eof) break;  // cut short: rest() says so
    }
    return total;
  }

  /// After the last byte the caller wants: nothing may follow but the end of
  /// the last gzip member (its CRC and length, checked by inflate).
  std::uint64_t rest() {
    std::uint64_t extra = 0;
    unsigned char buf[4096];
    while (std::size_t got = read(buf, sizeof buf)) extra += got;
    if (gzip_ && !member_done_ && have_ == 0)
      throw DataError(path_ + ": truncated gzip data: the file ends after " + std::to_string(offset_) +
                      " bytes, inside a gzip member (before its CRC and length)");
    return extra;
  }

  /// Bytes left after `consumed` when the file is plain (not gzip) and
  /// regular, so that its length is known without reading it.
  std::optional<std::uint64_t> plain_remaining(std::uint64_t consumed) {
    if (!file_size_ || gzip_) return std::nullopt;
    return *file_size_ >= consumed ? *file_size_ - consumed : 0;
  }

 private:
  /// Refills the input buffer when it is empty; false at the end of the file.
  bool fill() {
    if (have_ > 0) return true;
    next_ = 0;
    return fill_to(1);
  }
  /// Reads until `want` bytes are buffered (moving what is left to the
  /// front); false when the file ends first.
  bool fill_to(std::size_t want) {
    if (next_ > 0) {
      std::memmove(in_, in_ + next_, have_);
      next_ = 0;
    }
    while (have_ < want) {
      const ssize_t got = ::read(fd_, in_ + have_, sizeof in_ - have_);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw DataError(path_ + ": cannot read: " + std::strerror(errno));
      }
      if (got == 0) return false;
      have_ += static_cast<std::size_t>(got);
    }
    return true;
  }
  void consume(std::size_t k) {
    next_ += k;
    have_ -= k;
    offset_ += k;
  }
  /// What follows a gzip member that is not another one.
  [[noreturn]] void trailing() {
    const std::size_t shown = std::min<std::size_t>(have_, 8);
    std::string bytes;
    char hex[4];
    for (std::size_t i = 0; i < shown; ++i) {
      std::snprintf(hex, sizeof hex, "%02x", in_[next_ + i]);
      bytes += (i ? " " : "") + std::string(hex);
    }
    std::string what = "bytes starting with " + bytes;
    if (file_size_ && *file_size_ > offset_) {
      const std::uint64_t n = *file_size_ - offset_;
      what = std::to_string(n) + (n == 1 ? " byte, " : " bytes starting with ") + bytes;
    }
    throw DataError(path_ + ": trailing garbage at byte offset " + std::to_string(offset_) + " after the gzip data: " +
                    what + "; expected the end of the file or another gzip member (1f 8b)");
  }

  std::string path_;
  int fd_ = -1;
  std::optional<std::uint64_t> file_size_;
  bool gzip_ = false;
  z_stream z_{};
  bool member_done_ = false;     // the last member inflated to its end
  unsigned char in_[1 << 17];    // file bytes in_[next_, next_ + have_) not yet used
  std::size_t next_ = 0, have_ = 0;
  std::uint64_t offset_ = 0;     // file bytes used so far
};

/// Reads exactly `expected` bytes of payload after a header of `header`
/// bytes into `out`, then checks that nothing follows. A plain file's length
/// is checked before anything large is allocated; a gzip stream is read in
/// chunks, so memory grows only with data actually present.
template <class Truncated, class Trailing>
void read_payload(GzReader& f, std::size_t header, std::uint64_t expected, std::vector<std::uint8_t>& out,
                  Truncated truncated, Trailing trailing) {
  if (auto left = f.plain_remaining(header)) {
    if (*left < expected) throw DataError(truncated(*left));
    if (*left > expected) throw DataError(trailing(*left - expected));
    out.resize(expected);
    std::size_t got = f.read(out.data(), expected);
    if (got < expected) throw DataError(truncated(got));
    return;
  }
  constexpr std::uint64_t chunk = 1u << 20;
  out.clear();
  while (out.size() < expected) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, expected - out.size()));
    std::size_t old = out.size();
    if (out.capacity() < old + want)
      out.reserve(static_cast<std::size_t>(
          std::min<std::uint64_t>(expected, std::max<std::uint64_t>(2 * out.capacity(), old + want))));
    out.resize(old + want);
    std::size_t got = f.read(out.data() + old, want);
    out.resize(old + got);
    if (got < want) throw DataError(truncated(out.size()));
  }
  if (const std::uint64_t extra = f.rest(); extra > 0) throw DataError(trailing(extra));
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

contra::Schema IdxSource::schema() {
  return contra::Schema("idx", "MNIST / Fashion-MNIST IDX image and label files, gzip-compressed or plain")
      .required<std::string>("images", "IDX image file (magic 0x00000803), e.g. train-images-idx3-ubyte.gz")
      .add<std::string>("labels", "", "IDX label file (magic 0x00000801); \"\" for no labels");
}

IdxSource::IdxSource(const contra::Params& p)
    : images_path_(p.path("images")), labels_path_(p.path("labels")) {
  const std::string& path = images_path_;
  {
    GzReader f(path);
    unsigned char h[image_header_bytes];
    std::size_t n = f.read(h, sizeof h);
    if (n == 0) throw DataError(path + ": empty file, expected an IDX image file");
    if (n >= 4 && be32(h) != image_magic)
      throw DataError(path + ": not an IDX image file: magic number " + hex32(be32(h)) + ", expected " +
                      hex32(image_magic));
    if (n < sizeof h)
      throw DataError(path + ": truncated: the file ends after " + plural(n, "byte", "bytes") +
                      ", inside the 16-byte IDX image header");
    std::uint32_t count = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    std::string what = plural(count, "image", "images") + " of " + std::to_string(rows) + "x" +
                       std::to_string(cols);
    if (count == 0 || rows == 0 || cols == 0)
      throw DataError(path + ": the header declares " + what +
                      ", expected at least one image of at least 1x1 pixels");
    if (rows > max_side || cols > max_side)
      throw DataError(path + ": the header declares " + what + ", expected at most " +
                      std::to_string(max_side) + " pixels on each side");
    std::uint64_t bytes = std::uint64_t(count) * rows * cols;
    std::string declares = "the header declares " + what + " (" + std::to_string(bytes) + " bytes of pixels)";
    // gzip data inflates to what it holds, which may be a thousand times the
    // file: a header declaring more than this machine has is refused first.
    if (const contra::AvailableMemory avail = contra::available_memory(); bytes > avail.bytes)
      throw DataError(path + ": " + declares + ", more than this machine has (" + avail.text() +
                      "): a damaged header, or a data set for a larger machine");
    read_payload(
        f, sizeof h, bytes, pixels_,
        [&](std::uint64_t got) {
          return path + ": truncated: " + declares + " but the data ends after " + plural(got, "byte", "bytes");
        },
        [&](std::uint64_t extra) {
          return path + ": " + declares + " but " + plural(extra, "more byte follows", "more bytes follow") +
                 " them";
        });
    count_ = count;
    rows_ = rows;
    cols_ = cols;
  }
  if (labels_path_.empty()) return;

  const std::string& lpath = labels_path_;
  GzReader f(lpath);
  unsigned char h[label_header_bytes];
  std::size_t n = f.read(h, sizeof h);
  if (n == 0) throw DataError(lpath + ": empty file, expected an IDX label file");
  if (n >= 4 && be32(h) != label_magic)
    throw DataError(lpath + ": not an IDX label file: magic number " + hex32(be32(h)) + ", expected " +
                    hex32(label_magic));
  if (n < sizeof h)
    throw DataError(lpath + ": truncated: the file ends after " + plural(n, "byte", "bytes") +
                    ", inside the 8-byte IDX label header");
  std::uint32_t count = be32(h + 4);
  if (count != count_)
    throw DataError(lpath + ": the header declares " + plural(count, "label", "labels") + " but " + path +
                    " has " + plural(static_cast<std::uint64_t>(count_), "image", "images"));
  std::vector<std::uint8_t> raw;
  std::string declares = "the header declares " + plural(count, "label", "labels");
  read_payload(
      f, sizeof h, count, raw,
      [&](std::uint64_t got) {
        return lpath + ": truncated: " + declares + " but the data ends after " + plural(got, "byte", "bytes");
      },
      [&](std::uint64_t extra) {
        return lpath + ": " + declares + " but " + plural(extra, "more byte follows", "more bytes follow") +
               " them";
      });
  // Labels are single bytes, so every value is below 256 by construction.
  labels_.assign(raw.begin(), raw.end());
  num_classes_ = *std::max_element(labels_.begin(), labels_.end()) + 1;
}

contra::SourceInfo IdxSource::info() const {
  contra::SourceInfo s;
  s.size = count_;
  s.shape = {rows_, cols_, 1};
  s.num_classes = num_classes_;
  return s;
}

std::int64_t IdxSource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= count_)
    throw DataError(images_path_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    plural(static_cast<std::uint64_t>(count_), "image", "images"));
  image.ensure({rows_, cols_, 1}, DType::u8);
  const std::size_t n = static_cast<std::size_t>(rows_ * cols_);
  std::memcpy(image.data<std::uint8_t>(), pixels_.data() + static_cast<std::size_t>(index) * n, n);
  return labels_.empty() ? -1 : labels_[static_cast<std::size_t>(index)];
}

}  // namespace contra::plugins
