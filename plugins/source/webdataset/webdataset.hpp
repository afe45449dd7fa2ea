#pragma once
/// \file
/// `webdataset` source: image and caption pairs in tar shards of the
/// WebDataset layout (KEY.jpg + KEY.txt, optionally KEY.cls), as img2dataset
/// writes them; records of an image and its text.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Indexes every shard at construction: each is mapped into memory and its
/// tar headers read with libarchive (not its data), which gives each
/// sample's image and text offsets in the file. load() then reads those
/// bytes with pread() and decodes the image (image_codec), opening the shard
/// per call, so any number of threads may load at once and a shard changed
/// underneath is an error, never a crash. Samples come in shard order, then
/// member order.
class WebDatasetSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Expands the shard patterns and indexes the shards; throws ConfigError
  /// for a bad parameter, a bad pattern or a shard that cannot be opened,
  /// DataError for a shard that is not a usable tar (tar_index.hpp), for
  /// incomplete keys with `incomplete = "fail"`, and for a first image that
  /// cannot be read when the shape must come from it.
  explicit WebDatasetSource(const contra::Params& p);

  contra::SourceInfo info() const override;
  /// Decodes sample `index`'s image into `image` as u8 [height, width,
  /// channels]; returns its label (KEY.cls), or -1 when the shards have none.
  /// Throws DataError naming the shard, the member and the sample.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  /// The image and, as the record's one text, the caption (KEY.txt).
  std::int64_t load_record(std::int64_t index, contra::Record& out) const override;
  std::vector<std::int64_t> labels() const override { return labels_; }

  /// The shard files, patterns expanded, in sample order.
  const std::vector<std::string>& shards() const noexcept { return shards_; }
  /// Sample `index`'s key ("000123"), as its shard stores it.
  std::string sample_key(std::int64_t index) const;
  /// How many keys the shards hold that lack an image or a text (skipped).
  std::int64_t incomplete_keys() const noexcept { return incomplete_; }

 private:
  /// Where one sample's bytes lie: kept small, as there may be millions.
  struct Sample {
    std::uint64_t image_offset;
    std::uint64_t text_offset;
    std::uint64_t name_begin;   // the image member's name in names_
    std::uint32_t image_size;   // at most max_image_bytes
    std::uint32_t text_size;    // at most max_text_bytes
    std::uint32_t name_size;
    std::uint32_t key_size;     // the key: the name's first key_size bytes
    std::uint32_t shard;
  };

  /// Reads sample `index`: its image decoded into `image`, its caption into
  /// `text` (either may be null).
  void read(std::int64_t index, contra::Tensor* image, std::string* text) const;
  std::string what_of(std::int64_t index) const;

  std::vector<std::string> shards_;
  std::vector<Sample> samples_;
  std::string names_;                  // every sample's image member name, one after another
  std::vector<std::int64_t> labels_;   // empty when the shards have no .cls
  std::int64_t num_classes_ = 0;
  std::int64_t incomplete_ = 0;
  std::int64_t height_ = 0, width_ = 0, channels_ = 0;  // what load() produces
  bool resize_ = false;                // height and width set: every image is resized to them
  std::string mismatch_;               // without resize_: what load() says of an image of another size
  std::int64_t max_pixels_ = 0;        // max_image_pixels
  std::string pixels_key_;             // the key that set it: "data.max_image_pixels", for messages
};

}  // namespace contra::plugins
