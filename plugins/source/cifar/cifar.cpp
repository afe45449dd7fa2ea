#include "cifar.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace contra::plugins {

namespace {

constexpr std::size_t plane_bytes = 32 * 32;
constexpr std::size_t chunk_records = 1024;  // read this many records at a time (about 3 MB)

/// What differs between the two data sets.
struct Format {
  const char* name;          // "CIFAR-10"
  std::size_t label_bytes;   // label bytes before the pixels of each record
  std::size_t record_bytes;  // label_bytes + 3072
  const char* folder_hint;   // the folder the binary archive extracts to
  const char* archive;       // the binary archive's name
};

constexpr Format cifar10{"CIFAR-10", 1, 1 + CifarSource::image_bytes, "cifar-10-batches-bin",
                         "cifar-10-binary.tar.gz"};
constexpr Format cifar100{"CIFAR-100", 2, 2 + CifarSource::image_bytes, "cifar-100-binary",
                          "cifar-100-binary.tar.gz"};

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

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string in_folder(const std::string& folder, const std::string& name) {
  return (std::filesystem::path(folder) / name).string();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// An open file descriptor, closed at scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
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

/// One batch file of the split, opened and sized.
struct BatchFile {
  std::string path;
  Fd fd;
  std::uint64_t records = 0;
};

}  // namespace

contra::Schema CifarSource::schema() {
  return contra::Schema("cifar", "CIFAR-10 / CIFAR-100 binary batch files (the published \"binary version\")")
      .required<std::string>("folder", "folder holding the .bin files, e.g. the extracted cifar-10-batches-bin "
                                       "or cifar-100-binary")
      .add<std::string>("variant", "cifar10", "data set: cifar10 (10 classes) or cifar100 (100 fine, 20 coarse)")
      .choices({"cifar10", "cifar100"})
      .add<std::string>("split", "train",
                        "train (data_batch_1..5.bin or train.bin) or test (test_batch.bin or test.bin)")
      .choices({"train", "test"})
      .add<std::string>("label", "fine", "CIFAR-100 label to return: fine (100 classes) or coarse (20 superclasses)")
      .choices({"fine", "coarse"});
}

CifarSource::CifarSource(const contra::Params& p) : folder_(p.path("folder")) {
  const std::string variant = p.get<std::string>("variant");
  const std::string split = p.get<std::string>("split");
  const std::string label = p.get<std::string>("label");
  const bool is100 = variant == "cifar100";
  const Format& fmt = is100 ? cifar100 : cifar10;

  if (!is100 && label == "coarse")
    throw contra::ConfigError(located(p, "label") + key(p, "label") + " = \"coarse\" requires " +
                              key(p, "variant") + " = \"cifar100\"; CIFAR-10 has only one label per image");
  if (folder_.empty())
    throw contra::ConfigError(located(p, "folder") + key(p, "folder") + ": expected the folder holding the " +
                              fmt.name + " .bin files (e.g. " + fmt.folder_hint + "), found \"\"");

  struct stat st {};
  if (::stat(folder_.c_str(), &st) != 0) throw DataError(folder_ + ": cannot open: " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    throw DataError(folder_ + ": not a folder; expected the folder holding the " + fmt.name + " .bin files (e.g. " +
                    fmt.folder_hint + ")");

  std::vector<std::string> names;
  if (is100) names.push_back(split == "train" ? "train.bin" : "test.bin");
  else if (split == "test") names.push_back("test_batch.bin");
  else
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");

  // Every missing file in one message, before anything is read.
  std::vector<std::string> missing;
  for (const auto& n : names) {
    if (::stat(in_folder(folder_, n).c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
      missing.push_back(n);
  }
  if (!missing.empty()) {
    const std::string what = std::string(fmt.name) + " " + split + " " + (names.size() == 1 ? "file" : "files");
    std::string msg = folder_ + ": missing ";
    if (names.size() == 1) msg += "the " + what;
    else if (missing.size() == names.size()) msg += "all " + std::to_string(names.size()) + " " + what;
    else msg += std::to_string(missing.size()) + " of the " + std::to_string(names.size()) + " " + what;
    msg += ": " + join(missing);
    if (missing.size() == names.size()) {
      // Say what the folder holds instead, when it is recognisably something else.
      const std::vector<std::string> other = is100 ? std::vector<std::string>{"data_batch_1.bin", "test_batch.bin"}
                                                   : std::vector<std::string>{"train.bin", "test.bin"};
      const std::vector<std::string> python = is100 ? std::vector<std::string>{"train", "test"}
                                                    : std::vector<std::string>{"data_batch_1", "test_batch"};
      auto found = [&](const std::vector<std::string>& candidates) {
        for (const auto& c : candidates)
          if (exists(in_folder(folder_, c))) return c;
        return std::string();
      };
      if (std::string o = found(other); !o.empty())
        msg += "; the folder holds " + std::string(is100 ? "CIFAR-10" : "CIFAR-100") + " files (" + o + "): set " +
               key(p, "variant") + " = \"" + (is100 ? "cifar10" : "cifar100") + "\"";
      else if (std::string py = found(python); !py.empty())
        msg += "; the folder holds the Python version (" + py + "), expected the binary version (" + fmt.archive + ")";
      else
        msg += "; expected the folder extracted from " + std::string(fmt.archive) + " (" + fmt.folder_hint + ")";
    }
    throw DataError(msg);
  }

  // Open and size every file before allocating anything.
  std::vector<BatchFile> files;
  std::uint64_t total = 0;
  for (const auto& n : names) {
    const std::string path = in_folder(folder_, n);
    // O_NONBLOCK: opening a FIFO must not hang; it changes nothing for regular files.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
    if (::fstat(fd.get(), &st) != 0) throw DataError(path + ": cannot read: " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw DataError(path + ": cannot read: " + std::strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) throw DataError(path + ": not a regular file, expected a " + fmt.name + " batch file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::string rec = std::to_string(fmt.record_bytes) + "-byte " + fmt.name + " records";
    if (size == 0) throw DataError(path + ": empty file, expected " + rec);
    if (size % fmt.record_bytes != 0)
      throw DataError(path + ": truncated: " + plural(size, "byte is", "bytes is") + " not a whole number of " + rec +
                      " (" + plural(size / fmt.record_bytes, "record", "records") + " and " +
                      plural(size % fmt.record_bytes, "byte", "bytes") + ")");
    total += size / fmt.record_bytes;
    files.push_back(BatchFile{path, std::move(fd), size / fmt.record_bytes});
  }

  count_ = static_cast<std::int64_t>(total);
  num_classes_ = is100 ? (label == "coarse" ? 20 : 100) : 10;
  pixels_.resize(static_cast<std::size_t>(total) * image_bytes);
  labels_.resize(static_cast<std::size_t>(total));

  // Read, check the labels, and turn each record's planes (R, G, B; 32x32
  // row-major each) into HWC: pixel (y, x) channel c = plane c at y*32 + x.
  const std::size_t label_at = is100 && label == "fine" ? 1 : 0;
  std::vector<std::uint8_t> buf(chunk_records * fmt.record_bytes);
  std::size_t out = 0;  // index of the next image
  for (auto& f : files) {
    for (std::uint64_t first = 0; first < f.records; first += chunk_records) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_records, f.records - first));
      const std::size_t want = n * fmt.record_bytes;
      const std::size_t got = read_fully(f.fd.get(), buf.data(), want, f.path);
      if (got < want)
        throw DataError(f.path + ": truncated while being read: it held " + plural(f.records, "record", "records") +
                        " when opened but ends after " +
                        plural(first * fmt.record_bytes + got, "byte", "bytes"));
      for (std::size_t r = 0; r < n; ++r, ++out) {
        const std::uint8_t* record = buf.data() + r * fmt.record_bytes;
        const std::uint64_t index = first + r;
        const std::uint64_t offset = index * fmt.record_bytes;
        auto check = [&](std::size_t at, unsigned classes, const char* what) {
          if (record[at] >= classes)
            throw DataError(f.path + ": record " + std::to_string(index) + " (byte offset " +
                            std::to_string(offset + at) + "): " + what + " " + std::to_string(record[at]) +
                            " is out of range, expected 0 to " + std::to_string(classes - 1));
        };
        if (is100) {
          check(0, 20, "coarse label");
          check(1, 100, "fine label");
        } else {
          check(0, 10, "label");
        }
        labels_[out] = record[label_at];
        const std::uint8_t* px = record + fmt.label_bytes;
        std::uint8_t* dst = pixels_.data() + out * image_bytes;
        for (std::size_t i = 0; i < plane_bytes; ++i) {
          dst[3 * i + 0] = px[i];
          dst[3 * i + 1] = px[plane_bytes + i];
          dst[3 * i + 2] = px[2 * plane_bytes + i];
        }
      }
    }
  }
}

contra::SourceInfo CifarSource::info() const {
  contra::SourceInfo s;
  s.size = count_;
  s.shape = {side, side, 3};
  s.num_classes = num_classes_;
  return s;
}

std::int64_t CifarSource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= count_)
    throw DataError(folder_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    plural(static_cast<std::uint64_t>(count_), "image", "images"));
  image.ensure({side, side, 3}, DType::u8);
  std::memcpy(image.data<std::uint8_t>(), pixels_.data() + static_cast<std::size_t>(index) * image_bytes,
              image_bytes);
  return labels_[static_cast<std::size_t>(index)];
}

}  // namespace contra::plugins
