#include "image_folder.hpp"

#include "../image_codec/image_codec.hpp"
#include "../image_codec/source_messages.hpp"

#include <contra/data_defaults.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>

namespace contra::plugins {

namespace fs = std::filesystem;
using image_codec::dims;

namespace {

using image_codec::located;
using image_codec::key;
using image_codec::data_key;
using image_codec::plural;

// ---------------------------------------------------------------------------
// Small helpers, in the style of the other sources.

/// 0.0312 for 1/32.
std::string fraction(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", f);
  return buf;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// ".png, .jpg or .jpeg"
std::string either(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += i + 1 == names.size() ? " or " : ", ";
    s += names[i];
  }
  return s;
}

std::string join(const std::vector<std::string>& names, std::size_t at_most) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < at_most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > at_most) s += " and " + std::to_string(names.size() - at_most) + " more";
  return s;
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

/// A FILE* closed at scope exit.
class CFile {
 public:
  explicit CFile(std::FILE* f) : f_(f) {}
  ~CFile() {
    if (f_) std::fclose(f_);
  }
  CFile(const CFile&) = delete;
  CFile& operator=(const CFile&) = delete;
  std::FILE* get() const noexcept { return f_; }

 private:
  std::FILE* f_;
};

std::string what_of(const std::string& path, std::int64_t index) {
  return path + ": sample " + std::to_string(index) + ": ";
}

// ---------------------------------------------------------------------------
// Building the file list.

bool has_extension(const std::string& name, const std::vector<std::string>& extensions) {
  const std::string l = lower(name);
  for (const auto& e : extensions)
    if (l.size() > e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

/// Reads a whole text file; DataError with the system's reason on failure.
std::string read_text(const std::string& path) {
  std::FILE* raw = std::fopen(path.c_str(), "rbe");
  if (!raw) throw DataError(path + ": cannot open: " + std::strerror(errno));
  CFile f(raw);
  struct stat st {};
  if (::fstat(::fileno(raw), &st) == 0 && S_ISDIR(st.st_mode))
    throw DataError(path + ": cannot read: " + std::strerror(EISDIR));
  std::string text;
  char buf[1 << 16];
  while (std::size_t got = std::fread(buf, 1, sizeof buf, raw)) text.append(buf, got);
  if (std::ferror(raw)) throw DataError(path + ": cannot read: " + std::strerror(errno));
  return text;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

contra::Schema ImageFolderSource::schema() {
  return contra::Schema("image_folder",
                        "PNG and JPEG images in one sub-folder per class, like torchvision's ImageFolder")
      .required<std::string>("folder", "root folder; each sub-folder is a class, labelled 0, 1, ... in name order")
      .add<std::string>("files", "",
                        "text file listing image paths relative to folder, one per line, the first folder being the "
                        "class; \"\" scans folder")
      .add<std::vector<std::string>>("extensions", std::vector<std::string>{".png", ".jpg", ".jpeg"},
                                     "file name endings the scan takes, case-insensitive")
      .length(1, -1)
      .add<std::int64_t>("size", 0,
                         "resize every image to size x size pixels (bilinear, antialiased like Pillow); 0 keeps "
                         "each image's size, which must then be the same for all")
      .range(0, 16384)
      .add<std::int64_t>("channels", 0, "output channels: 1 (gray), 3 (RGB), or 0 for those of the first image")
      .range(0, 3)
      .add<std::string>("on_error", "fail",
                        "an image whose header cannot be read when the source is built (or, with size = 0, whose "
                        "size differs from the first readable one's) stops it, or is set aside (load() then refuses "
                        "it); left unset in a pipeline, [data] on_error")
      .choices({"fail", "skip"})
      .add<double>("max_skip_fraction", contra::data_defaults::max_skip_fraction,
                   "with on_error = skip: the fraction of the images that may be set aside when the source is "
                   "built; left unset in a pipeline, [data] max_skip_fraction")
      .range(0, 1)
      .add<std::int64_t>("max_image_pixels", contra::data_defaults::max_image_pixels,
                         "an image whose stored width x height is larger is refused before it is decoded; left "
                         "unset in a pipeline, [data] max_image_pixels")
      .range(1, contra::data_defaults::max_image_pixels_bound);
}

ImageFolderSource::ImageFolderSource(const contra::Params& p)
    : folder_(p.path("folder")), size_key_(key(p, "size")), max_pixels_(p.get<std::int64_t>("max_image_pixels")),
      pixels_key_(data_key(p, "max_image_pixels")), size_(p.get<std::int64_t>("size")) {
  const std::int64_t channels = p.get<std::int64_t>("channels");
  if (channels == 2)
    throw contra::ConfigError(located(p, "channels") + key(p, "channels") +
                              " = 2: expected 1 (gray), 3 (RGB) or 0 (as the first image)");
  std::vector<std::string> extensions = p.get<std::vector<std::string>>("extensions");
  for (std::size_t i = 0; i < extensions.size(); ++i) {
    if (extensions[i].size() < 2 || extensions[i][0] != '.')
      throw contra::ConfigError(located(p, "extensions") + key(p, "extensions") + "[" + std::to_string(i) +
                                "] = \"" + extensions[i] + "\": expected a file name ending that starts with '.', "
                                "e.g. \".png\"");
    extensions[i] = lower(extensions[i]);
  }
  if (folder_.empty())
    throw contra::ConfigError(located(p, "folder") + key(p, "folder") +
                              ": expected the folder holding one sub-folder of images per class, found \"\"");

  struct stat st {};
  if (::stat(folder_.c_str(), &st) != 0) throw DataError(folder_ + ": cannot open: " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    throw DataError(folder_ + ": not a folder; expected the folder holding one sub-folder of images per class");

  const std::string list = p.path("files");
  try {
    // Classes: the sub-folders, hidden ones aside, sorted by name.
    std::size_t loose = 0;  // images directly in the folder, for the hint below
    for (const auto& e : fs::directory_iterator(folder_)) {
      if (hidden(e.path())) continue;
      if (e.is_directory()) classes_.push_back(e.path().filename().string());
      else if (has_extension(e.path().filename().string(), extensions)) ++loose;
    }
    std::sort(classes_.begin(), classes_.end());
    if (classes_.empty()) {
      std::string msg = folder_ + ": no class sub-folders; expected one sub-folder of images per class (" +
                        (fs::path(folder_) / "<class>" / "<image>").string() + ")";
      if (loose > 0) msg += ", found " + plural(loose, "image", "images") + " directly in the folder";
      throw DataError(msg);
    }

    if (list.empty()) {
      // Scan: every matching file under each class folder, sorted by path.
      std::vector<std::string> empty;
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        const fs::path dir = fs::path(folder_) / classes_[c];
        std::vector<std::string> found;
        for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
          if (hidden(it->path())) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
          }
          if (it->is_regular_file() && has_extension(it->path().filename().string(), extensions))
            found.push_back(it->path().string());
        }
        if (found.empty()) empty.push_back(classes_[c]);
        std::sort(found.begin(), found.end());
        for (auto& f : found) {
          paths_.push_back(std::move(f));
          labels_.push_back(static_cast<std::int64_t>(c));
        }
      }
      if (!empty.empty())
        throw DataError(folder_ + ": " + plural(empty.size(), "class folder holds", "class folders hold") +
                        " no " + either(extensions) + " files: " + join(empty, 10) +
                        "; every sub-folder is a class and needs at least one image");
    } else {
      // File list: one path relative to the folder per line, kept in order.
      const std::string text = read_text(list);
      std::unordered_map<std::string, std::size_t> seen;  // path -> line
      std::size_t line_no = 0;
      for (std::size_t at = 0; at < text.size();) {
        std::size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = trim(text.substr(at, end - at));
        at = end + 1;
        ++line_no;
        if (line.empty()) continue;
        const std::string where = list + ":" + std::to_string(line_no) + ": ";
        const fs::path rel(line);
        if (rel.is_absolute())
          throw DataError(where + "'" + line + "' is an absolute path, expected a path relative to " + folder_);
        const fs::path norm = rel.lexically_normal();
        std::vector<std::string> parts;
        for (const auto& part : norm) parts.push_back(part.string());
        if (!parts.empty() && parts.back().empty()) parts.pop_back();  // "a/b/" ends in an empty name
        if (std::find(parts.begin(), parts.end(), "..") != parts.end())
          throw DataError(where + "'" + line + "' leaves the folder; expected <class>/<file> inside " + folder_);
        if (parts.size() < 2)
          throw DataError(where + "'" + line + "' has no class folder; expected <class>/<file>, relative to " +
                          folder_);
        const std::string full = (fs::path(folder_) / norm).string();
        if (::stat(full.c_str(), &st) != 0)
          throw DataError(where + full + ": cannot open: " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) throw DataError(where + full + ": not a regular file, expected an image");
        const auto cls = std::lower_bound(classes_.begin(), classes_.end(), parts[0]);
        if (cls == classes_.end() || *cls != parts[0])
          throw DataError(where + "'" + line + "': '" + parts[0] + "' is not one of the " +
                          plural(classes_.size(), "class folder", "class folders") + " of " + folder_ +
                          " (hidden folders are not classes)");
        const std::string id = norm.generic_string();
        if (auto [it, fresh] = seen.emplace(id, line_no); !fresh)
          throw DataError(where + "'" + line + "' is listed twice (first at line " + std::to_string(it->second) +
                          ")");
        paths_.push_back(full);
        labels_.push_back(static_cast<std::int64_t>(cls - classes_.begin()));
      }
      if (paths_.empty())
        throw DataError(list + ": lists no files; expected one image path per line, relative to " + folder_);
    }
  } catch (const fs::filesystem_error& e) {
    throw DataError(e.path1().string() + ": cannot read: " + e.code().message());
  }

  // One shape for every image: the first readable image's header fixes the
  // channels (and, without `size`, the size every other image must have).
  // With on_error = "skip" an image that fails here is set aside, keeping its
  // index: load() refuses it with the reason found now, and the run skips it.
  const bool skip = p.get<std::string>("on_error") == "skip";
  const double max_skip = p.get<double>("max_skip_fraction");
  const image_codec::PixelLimit limit{max_pixels_, &pixels_key_};
  auto read_header = [&](std::size_t i) {
    return image_codec::read_header(paths_[i], what_of(paths_[i], static_cast<std::int64_t>(i)), limit);
  };
  const std::size_t n = paths_.size();
  auto set_aside = [&](std::size_t i, const std::string& why) {
    if (!skip) throw DataError(why);
    unreadable_.emplace(static_cast<std::int64_t>(i), why);
    const auto bad = static_cast<double>(unreadable_.size());
    if (bad > max_skip * static_cast<double>(n))
      throw DataError(folder_ + ": " + std::to_string(unreadable_.size()) + " of the " +
                      plural(n, "image", "images") + " (" + fraction(bad / static_cast<double>(n)) +
                      " of them) cannot be read, more than " + data_key(p, "max_skip_fraction") + " = " +
                      fraction(max_skip) + " allows (" + data_key(p, "on_error") + " = \"skip\"); the last: " + why);
  };
  std::size_t first_index = 0;
  image_codec::ImageHeader first;
  for (; first_index < n; ++first_index) {
    try {
      first = read_header(first_index);
      break;
    } catch (const DataError& e) {
      set_aside(first_index, e.what());
    }
  }
  if (first_index == n)
    throw DataError(folder_ + ": none of the " + plural(n, "image", "images") + " can be read; the last: " +
                    unreadable_.rbegin()->second);
  channels_ = channels != 0 ? channels : first.channels;
  if (size_ != 0) {
    height_ = width_ = size_;
  } else {
    height_ = first.height;
    width_ = first.width;
    const std::string first_is =
        (first_index == 0 ? "the first image, " : "the first readable image, ") + paths_[first_index];
    for (std::size_t i = first_index + 1; i < n; ++i) {
      image_codec::ImageHeader h;
      try {
        h = read_header(i);
      } catch (const DataError& e) {
        set_aside(i, e.what());
        continue;
      }
      if (h.width != first.width || h.height != first.height)
        set_aside(i, what_of(paths_[i], static_cast<std::int64_t>(i)) + dims(h.width, h.height) +
                         " pixels (width x height), but " + first_is + ", is " + dims(first.width, first.height) +
                         "; a source reports one shape, so set " + size_key_ + " to resize every image to size x size");
    }
  }
  mismatch_ = "the source reports " + dims(width_, height_) +
              " for every image (the file changed after the source was built?); set " + size_key_ +
              " to resize every image";
  if (!unreadable_.empty()) {
    // Said once, on stderr: the run goes on without these images.
    constexpr std::size_t shown = 5;
    std::string msg = "warning: " + folder_ + ": " + std::to_string(unreadable_.size()) + " of the " +
                      plural(n, "image", "images") + " cannot be read and will be skipped (" +
                      data_key(p, "on_error") + " = \"skip\"):\n";
    std::size_t k = 0;
    for (const auto& [index, why] : unreadable_) {
      if (k++ == shown) break;
      msg += "  " + why + "\n";
    }
    if (unreadable_.size() > shown) msg += "  and " + std::to_string(unreadable_.size() - shown) + " more\n";
    std::fputs(msg.c_str(), stderr);
  }
}

contra::SourceInfo ImageFolderSource::info() const {
  contra::SourceInfo s;
  s.size = static_cast<std::int64_t>(paths_.size());
  s.shape = {height_, width_, channels_};
  s.num_classes = static_cast<std::int64_t>(classes_.size());
  return s;
}

std::int64_t ImageFolderSource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= static_cast<std::int64_t>(paths_.size()))
    throw DataError(folder_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    plural(paths_.size(), "image", "images"));
  const auto i = static_cast<std::size_t>(index);
  if (const auto bad = unreadable_.find(index); bad != unreadable_.end()) throw DataError(bad->second);
  const image_codec::Target target{static_cast<int>(channels_), width_, height_, size_ != 0, &mismatch_,
                                   {max_pixels_, &pixels_key_}};
  image_codec::decode(paths_[i], what_of(paths_[i], index), target, image);
  return labels_[i];
}

}  // namespace contra::plugins
