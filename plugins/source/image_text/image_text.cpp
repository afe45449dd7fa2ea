#include "image_text.hpp"

#include "../image_codec/image_codec.hpp"
#include "../image_codec/source_messages.hpp"

#include <contra/data_defaults.hpp>
#include <contra/errors.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace contra::plugins {

namespace fs = std::filesystem;
using image_text::ManifestFormat;

namespace {

using image_codec::located;
using image_codec::key;
using image_codec::data_key;

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// The manifest's bytes; ConfigError naming the key that gave the path.
std::string read_manifest(const std::string& path, const std::string& where) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rbe"), std::fclose);
  if (!f) throw ConfigError(where + path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) == 0 && S_ISDIR(st.st_mode))
    throw ConfigError(where + path + ": a folder; expected a .csv, .tsv or .jsonl manifest file");
  std::string bytes;
  char buf[1 << 16];
  while (std::size_t got = std::fread(buf, 1, sizeof buf, f.get())) bytes.append(buf, got);
  if (std::ferror(f.get())) throw ConfigError(where + path + ": cannot read: " + std::strerror(errno));
  return bytes;
}

ManifestFormat manifest_format(const contra::Params& p, const std::string& path) {
  const std::string format = p.get<std::string>("format");
  if (format == "csv") return ManifestFormat::csv;
  if (format == "tsv") return ManifestFormat::tsv;
  if (format == "jsonl") return ManifestFormat::jsonl;
  const std::string extension = lower(fs::path(path).extension().string());
  if (extension == ".csv") return ManifestFormat::csv;
  if (extension == ".tsv") return ManifestFormat::tsv;
  if (extension == ".jsonl") return ManifestFormat::jsonl;
  throw ConfigError(located(p, "manifest") + key(p, "manifest") + ": cannot tell the format of " + path +
                    " from its extension; expected .csv, .tsv or .jsonl, or set " + key(p, "format") +
                    " to csv, tsv or jsonl");
}

}  // namespace

contra::Schema ImageTextSource::schema() {
  return contra::Schema("image_text",
                        "images and their captions listed in a CSV, TSV or JSON Lines manifest (open_clip's CSV "
                        "data sets); records of an image and its text")
      .required<std::string>("manifest",
                             "the manifest: a header row naming the columns then one row per image (CSV, TSV), or "
                             "one JSON object per line (JSON Lines); image paths are relative to its folder")
      .add<std::string>("format", "auto", "csv, tsv, jsonl, or auto: by the manifest's extension")
      .choices({"auto", "csv", "tsv", "jsonl"})
      .add<std::string>("image_column", "filepath", "the column (JSON key) holding each image's path")
      .add<std::string>("text_column", "title", "the column (JSON key) holding each caption")
      .add<std::string>("label_column", "",
                        "the column (JSON key) holding each label: integers, or names numbered in first-seen "
                        "order; \"\" for none")
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

ImageTextSource::ImageTextSource(const contra::Params& p)
    : manifest_path_(p.path("manifest")),
      height_(p.get<std::int64_t>("height")),
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
  if (manifest_path_.empty())
    throw ConfigError(located(p, "manifest") + key(p, "manifest") +
                      ": expected the path of a .csv, .tsv or .jsonl manifest, found \"\"");
  const ManifestFormat format = manifest_format(p, manifest_path_);
  const std::string bytes = read_manifest(manifest_path_, located(p, "manifest") + key(p, "manifest") + ": ");
  const image_text::ManifestColumns columns{
      p.get<std::string>("image_column"), key(p, "image_column"), p.get<std::string>("text_column"),
      key(p, "text_column"), p.get<std::string>("label_column"), key(p, "label_column")};
  for (const char* column : {"image_column", "text_column"})
    if (p.get<std::string>(column).empty())
      throw ConfigError(located(p, column) + key(p, column) + ": expected the name of a column of " +
                        manifest_path_ + ", found \"\"");
  manifest_ = image_text::parse_manifest(bytes, format, columns, manifest_path_);
  folder_ = fs::path(manifest_path_).parent_path().string();

  // The shape: what is set, the rest from the first image. Only its header
  // is read here; every other image is checked by load().
  resize_ = height_ != 0;
  if (resize_ && channels_ != 0) return;
  const std::string first = image_path(0);
  image_codec::ImageHeader header;
  try {
    header = image_codec::read_header(first, first + ": sample 0: ", {max_pixels_, &pixels_key_});
  } catch (const DataError& e) {
    throw DataError(std::string(e.what()) + "; the first image gives the shape unless " + key(p, "height") + ", " +
                    key(p, "width") + " and " + key(p, "channels") + " are set");
  }
  if (channels_ == 0) channels_ = header.channels;
  if (!resize_) {
    height_ = header.height;
    width_ = header.width;
    mismatch_ = "the first image, " + first + ", is " + image_codec::dims(width_, height_) +
                "; a source reports one shape, so set " + key(p, "height") + " and " + key(p, "width") +
                " to resize every image";
  }
}

std::string ImageTextSource::image_path(std::int64_t index) const {
  const fs::path path(manifest_.images[static_cast<std::size_t>(index)]);
  return path.is_absolute() ? path.string() : (fs::path(folder_) / path).string();
}

contra::SourceInfo ImageTextSource::info() const {
  contra::SourceInfo s;
  s.size = static_cast<std::int64_t>(manifest_.images.size());
  s.shape = {height_, width_, channels_};
  s.num_classes = manifest_.num_classes;
  s.fields = {{"image", contra::FieldKind::image, s.shape}, {"text", contra::FieldKind::text, {}}};
  return s;
}

std::int64_t ImageTextSource::load(std::int64_t index, contra::Tensor& image) const {
  const auto rows = static_cast<std::int64_t>(manifest_.images.size());
  if (index < 0 || index >= rows)
    throw DataError(manifest_path_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    std::to_string(rows) + (rows == 1 ? " row" : " rows"));
  const std::string path = image_path(index);
  const image_codec::Target target{static_cast<int>(channels_), width_, height_, resize_, &mismatch_,
                                   {max_pixels_, &pixels_key_}};
  image_codec::decode(path, path + ": sample " + std::to_string(index) + ": ", target, image);
  return manifest_.labels.empty() ? -1 : manifest_.labels[static_cast<std::size_t>(index)];
}

std::int64_t ImageTextSource::load_record(std::int64_t index, contra::Record& out) const {
  out.images.resize(1);
  const std::int64_t label = load(index, out.images[0]);
  out.texts.assign(1, std::string(manifest_.texts[static_cast<std::size_t>(index)]));
  return label;
}

}  // namespace contra::plugins
