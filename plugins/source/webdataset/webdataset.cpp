#include "webdataset.hpp"

#include "../image_codec/image_codec.hpp"
#include "../image_codec/source_messages.hpp"
#include "brace_pattern.hpp"
#include "tar_index.hpp"

#include <contra/data_defaults.hpp>
#include <contra/errors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace contra::plugins {

namespace fs = std::filesystem;

namespace {

using image_codec::located;
using image_codec::key;
using image_codec::data_key;
using image_codec::plural;

/// A shard path as written, relative ones taken relative to the pipeline
/// file that set `shards`, as Params::path does for one path.
std::string resolved(const contra::Params& p, const std::string& path) {
  const contra::SourceLocation& where = p.where("shards");
  if (!p.is_set("shards") || where.file.empty() || where.line <= 0 || fs::path(path).is_absolute()) return path;
  return (fs::path(where.file).parent_path() / path).lexically_normal().string();
}

/// A file descriptor closed at scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

/// A whole file mapped read-only for indexing: only the pages of its tar
/// headers are then read from disk, not the members' data.
class MappedFile {
 public:
  MappedFile(const std::string& path, const std::string& where) {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw ConfigError(where + path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw ConfigError(where + path + ": cannot read: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw ConfigError(where + path + ": not a regular file; expected a tar shard");
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) throw ConfigError(where + path + ": cannot map into memory: " + std::strerror(errno));
    data_ = static_cast<const std::uint8_t*>(p);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const std::uint8_t> bytes() const noexcept { return {data_, size_}; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// `size` bytes from byte `offset` of `shard` into `out`. DataError, after
/// `what`, when the shard is gone or shorter than when it was indexed.
void read_member(const std::string& shard, std::uint64_t offset, std::size_t size, void* out,
                 const std::string& what) {
  FileDescriptor fd(::open(shard.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw DataError(what + "cannot open the shard: " + std::strerror(errno));
  auto* dst = static_cast<char*>(out);
  for (std::size_t done = 0; done < size;) {
    const ssize_t got = ::pread(fd.get(), dst + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw DataError(what + "cannot read the shard: " + std::strerror(errno));
    if (got == 0)
      throw DataError(what + "the shard ends at byte " + std::to_string(offset + done) + ", before the member's " +
                      plural(size, "byte", "bytes") + " from byte " + std::to_string(offset) +
                      " (did it change after the source was built?)");
    done += static_cast<std::size_t>(got);
  }
}

/// Why a key is not a sample, for messages.
std::string missing_of(const webdataset::KeyGroup& g) {
  if (!g.image && !g.text) return "neither an image (.jpg, .jpeg or .png) nor a text (.txt)";
  return g.image ? "no text (.txt)" : "no image (.jpg, .jpeg or .png)";
}

}  // namespace

contra::Schema WebDatasetSource::schema() {
  return contra::Schema("webdataset",
                        "image and caption pairs in uncompressed tar shards of the WebDataset layout (KEY.jpg + "
                        "KEY.txt, optionally KEY.cls); records of an image and its text")
      .required<std::vector<std::string>>(
          "shards", "tar files, each entry a path or a brace pattern (\"cc3m-{000000..000331}.tar\"), in order")
      .add<std::string>("incomplete", "skip",
                        "a key lacking its image or its text: skipped (counted on stderr), or fail the source")
      .choices({"skip", "fail"})
      .add<std::int64_t>("height", 0,
                         "resize every image to height x width (bilinear, antialiased like Pillow); 0, with "
                         "width = 0, keeps the first image's size, which every image must then have")
      .range(0, 16384)
      .add<std::int64_t>("width", 0, "see height").range(0, 16384)
      .add<std::int64_t>("channels", 0, "output channels: 1 (gray), 3 (RGB), or 0 for those of the first image")
      .range(0, 3)
      .add<std::int64_t>("max_image_pixels", contra::data_defaults::max_image_pixels,
                         "an image whose stored width x height is larger is refused before it is decoded; left "
                         "unset in a pipeline, [data] max_image_pixels")
      .range(1, contra::data_defaults::max_image_pixels_bound);
}

WebDatasetSource::WebDatasetSource(const contra::Params& p)
    : height_(p.get<std::int64_t>("height")),
      width_(p.get<std::int64_t>("width")),
      channels_(p.get<std::int64_t>("channels")),
      max_pixels_(p.get<std::int64_t>("max_image_pixels")),
      pixels_key_(data_key(p, "max_image_pixels")) {
  if (channels_ == 2)
    throw ConfigError(located(p, "channels") + key(p, "channels") +
                      " = 2: expected 1 (gray), 3 (RGB) or 0 (as the first image)");
  if ((height_ == 0) != (width_ == 0)) {
    const char* set = height_ != 0 ? "height" : "width";
    const char* unset = height_ != 0 ? "width" : "height";
    throw ConfigError(located(p, set) + key(p, set) + " = " + std::to_string(height_ != 0 ? height_ : width_) +
                      " but " + key(p, unset) + " = 0: set both to resize every image to height x width, or "
                      "neither to keep the first image's size");
  }

  const std::string where = located(p, "shards") + key(p, "shards") + ": ";
  for (const std::string& pattern : p.get<std::vector<std::string>>("shards")) {
    if (pattern.empty()) throw ConfigError(where + "an empty entry; expected a tar file's path or a brace pattern");
    for (const std::string& path : webdataset::expand_braces(pattern, where)) shards_.push_back(resolved(p, path));
    if (shards_.size() > webdataset::max_expanded_paths)
      throw ConfigError(where + "more than " + std::to_string(webdataset::max_expanded_paths) + " shards");
  }

  // Index every shard; keys lacking their image or text are set aside.
  const bool skip_incomplete = p.get<std::string>("incomplete") == "skip";
  constexpr std::size_t shown = 5;  // incomplete keys a message names
  std::vector<std::string> incomplete;
  std::vector<std::int64_t> labels;  // -1: no .cls
  for (std::size_t s = 0; s < shards_.size(); ++s) {
    const MappedFile file(shards_[s], where);
    for (webdataset::KeyGroup& g : webdataset::index_tar(file.bytes(), shards_[s])) {
      if (!g.image || !g.text) {
        if (!skip_incomplete)
          throw DataError(shards_[s] + ": key \"" + g.key + "\": " + missing_of(g) +
                          "; every key needs an image and a text (" + key(p, "incomplete") +
                          " = \"fail\"; \"skip\" passes such keys over)");
        if (incomplete.size() < shown) incomplete.push_back(shards_[s] + ": key \"" + g.key + "\": " + missing_of(g));
        ++incomplete_;
        continue;
      }
      // Sizes fit: index_tar refuses members over max_image_bytes / max_text_bytes.
      samples_.push_back(Sample{g.image->offset, g.text->offset, names_.size(),
                                static_cast<std::uint32_t>(g.image->size), static_cast<std::uint32_t>(g.text->size),
                                static_cast<std::uint32_t>(g.image->name.size()),
                                static_cast<std::uint32_t>(g.key.size()), static_cast<std::uint32_t>(s)});
      names_ += g.image->name;
      labels.push_back(g.label.value_or(-1));
    }
  }
  if (incomplete_ > 0) {
    // Said once, on stderr: the run goes on without these keys.
    std::string msg = "warning: webdataset: " + std::to_string(incomplete_) + " of the " +
                      plural(samples_.size() + static_cast<std::size_t>(incomplete_), "key", "keys") + " in " +
                      plural(shards_.size(), "shard", "shards") + " lack an image or a text and are skipped (" +
                      key(p, "incomplete") + " = \"skip\"):\n";
    for (const std::string& why : incomplete) msg += "  " + why + "\n";
    if (incomplete_ > static_cast<std::int64_t>(shown))
      msg += "  and " + std::to_string(incomplete_ - static_cast<std::int64_t>(shown)) + " more\n";
    std::fputs(msg.c_str(), stderr);
  }
  if (samples_.empty())
    throw DataError(where + "no samples in " + plural(shards_.size(), "shard", "shards") + " (" + shards_.front() +
                    (shards_.size() > 1 ? ", ..." : "") +
                    "); expected tar members KEY.jpg, KEY.jpeg or KEY.png, each with its KEY.txt");

  // Labels: every sample's .cls, or none at all.
  const auto labelled = std::count_if(labels.begin(), labels.end(), [](std::int64_t l) { return l >= 0; });
  if (labelled == static_cast<std::ptrdiff_t>(labels.size())) {
    num_classes_ = *std::max_element(labels.begin(), labels.end()) + 1;
    labels_ = std::move(labels);
  } else if (labelled > 0) {
    const auto i = static_cast<std::int64_t>(std::find(labels.begin(), labels.end(), -1) - labels.begin());
    throw DataError(shards_[samples_[static_cast<std::size_t>(i)].shard] + ": key \"" + sample_key(i) +
                    "\": no .cls member, but other samples have one; expected a label for every sample or none");
  }

  // The shape: what is set, the rest from the first image's header.
  resize_ = height_ != 0;
  if (resize_ && channels_ != 0) return;
  const Sample& first = samples_.front();
  std::vector<std::uint8_t> encoded(first.image_size);
  image_codec::ImageHeader header;
  try {
    read_member(shards_[first.shard], first.image_offset, encoded.size(), encoded.data(), what_of(0));
    header = image_codec::read_header(image_codec::Bytes(encoded), what_of(0), {max_pixels_, &pixels_key_});
  } catch (const DataError& e) {
    throw DataError(std::string(e.what()) + "; the first image gives the shape unless " + key(p, "height") + ", " +
                    key(p, "width") + " and " + key(p, "channels") + " are set");
  }
  if (channels_ == 0) channels_ = header.channels;
  if (!resize_) {
    height_ = header.height;
    width_ = header.width;
    mismatch_ = "the first image, " + shards_[first.shard] + ": " + names_.substr(0, first.name_size) + ", is " +
                image_codec::dims(width_, height_) + "; a source reports one shape, so set " + key(p, "height") +
                " and " + key(p, "width") + " to resize every image";
  }
}

std::string WebDatasetSource::sample_key(std::int64_t index) const {
  const Sample& s = samples_[static_cast<std::size_t>(index)];
  return names_.substr(s.name_begin, s.key_size);
}

std::string WebDatasetSource::what_of(std::int64_t index) const {
  const Sample& s = samples_[static_cast<std::size_t>(index)];
  return shards_[s.shard] + ": " + names_.substr(s.name_begin, s.name_size) + ": sample " + std::to_string(index) +
         ": ";
}

contra::SourceInfo WebDatasetSource::info() const {
  contra::SourceInfo s;
  s.size = static_cast<std::int64_t>(samples_.size());
  s.shape = {height_, width_, channels_};
  s.num_classes = num_classes_;
  s.fields = {{"image", contra::FieldKind::image, s.shape}, {"text", contra::FieldKind::text, {}}};
  return s;
}

void WebDatasetSource::read(std::int64_t index, contra::Tensor* image, std::string* text) const {
  if (index < 0 || index >= static_cast<std::int64_t>(samples_.size()))
    throw DataError("webdataset (" + shards_.front() + (shards_.size() > 1 ? ", ..." : "") + "): sample index " +
                    std::to_string(index) + " is out of range for " + plural(samples_.size(), "sample", "samples"));
  const Sample& s = samples_[static_cast<std::size_t>(index)];
  const std::string what = what_of(index);
  if (image) {
    thread_local std::vector<std::uint8_t> encoded;  // reused from call to call
    encoded.resize(s.image_size);
    read_member(shards_[s.shard], s.image_offset, encoded.size(), encoded.data(), what);
    const image_codec::Target target{static_cast<int>(channels_), width_, height_, resize_, &mismatch_,
                                     {max_pixels_, &pixels_key_}};
    image_codec::decode(image_codec::Bytes(encoded), what, target, *image);
  }
  if (text) {
    text->resize(s.text_size);
    read_member(shards_[s.shard], s.text_offset, s.text_size, text->data(), what + "its text: ");
  }
}

std::int64_t WebDatasetSource::load(std::int64_t index, contra::Tensor& image) const {
  read(index, &image, nullptr);
  return labels_.empty() ? -1 : labels_[static_cast<std::size_t>(index)];
}

std::int64_t WebDatasetSource::load_record(std::int64_t index, contra::Record& out) const {
  out.images.resize(1);
  out.texts.resize(1);
  read(index, &out.images[0], &out.texts[0]);
  return labels_.empty() ? -1 : labels_[static_cast<std::size_t>(index)];
}

}  // namespace contra::plugins
