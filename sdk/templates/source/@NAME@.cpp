// @NAME@: a contra source plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [source] table against this and `contra plugins --describe`
  // prints it. A file parameter would be read with p.path("name"), which
  // resolves it relative to the pipeline file.
  return contra::Schema("@NAME@", "generated images, one brightness ramp per class")
      .add<std::int64_t>("size", 1000, "number of samples").at_least(1)
      .add<std::int64_t>("height", 28, "image height").range(1, 4096)
      .add<std::int64_t>("width", 28, "image width").range(1, 4096)
      .add<std::int64_t>("channels", 1, "channels per pixel").range(1, 4)
      .add<std::int64_t>("classes", 10, "number of classes; label = index % classes").range(1, 1000)
      .add<std::int64_t>("seed", 0, "seed of the per-sample noise").at_least(0);
}

@CLASS@::@CLASS@(const contra::Params& p)
    : size_(p.get<std::int64_t>("size")),
      height_(p.get<std::int64_t>("height")),
      width_(p.get<std::int64_t>("width")),
      channels_(p.get<std::int64_t>("channels")),
      classes_(p.get<std::int64_t>("classes")),
      seed_(p.get<std::int64_t>("seed")) {}

// Fields set by name: the others (a paired source's `fields`) keep their
// defaults, and fields a newer SDK adds need no change here.
contra::SourceInfo @CLASS@::info() const {
  contra::SourceInfo info;
  info.size = size_;
  info.shape = {height_, width_, channels_};
  info.num_classes = classes_;
  return info;
}

std::vector<std::int64_t> @CLASS@::labels() const {
  std::vector<std::int64_t> l(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) l[static_cast<std::size_t>(i)] = i % classes_;
  return l;
}

// Skeleton: a horizontal brightness ramp whose slope depends on the class,
// plus noise drawn from Rng(seed, 0, index, 0, 0). Replace with reading your
// data; throw contra::DataError naming the file and the sample when one is bad.
std::int64_t @CLASS@::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= size_)
    throw contra::DataError("@NAME@: sample " + std::to_string(index) + " is outside [0, " + std::to_string(size_) + ")");
  const std::int64_t label = index % classes_;
  contra::Rng rng(static_cast<std::uint64_t>(seed_), 0, static_cast<std::uint64_t>(index), 0, 0);
  image.ensure({height_, width_, channels_}, contra::DType::u8);
  std::uint8_t* px = image.data<std::uint8_t>();
  const double slope = 255.0 * static_cast<double>(label + 1) / static_cast<double>(classes_);
  for (std::int64_t y = 0; y < height_; ++y)
    for (std::int64_t x = 0; x < width_; ++x)
      for (std::int64_t c = 0; c < channels_; ++c) {
        double v = slope * static_cast<double>(x) / static_cast<double>(width_) + rng.uniform(-20.0, 20.0);
        px[(y * width_ + x) * channels_ + c] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
      }
  return label;
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_SOURCE(@CLASS@))
