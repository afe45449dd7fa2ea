#include "assembly/augment_chain.hpp"

#include "assembly/make_plugin.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>
#include <contra/rng.hpp>

#include <algorithm>

namespace contra::runtime {

std::string format_text(const ImageFormat& f) {
  return std::string(dtype_name(f.dtype)) + " " + std::to_string(f.shape.height) + "x" +
         std::to_string(f.shape.width) + "x" + std::to_string(f.shape.channels);
}

AugmentChain::AugmentChain(const std::vector<PluginSpec>& chain, const PluginRegistry& registry,
                           const ImageFormat& input)
    : formats_{input} {
  for (const PluginSpec& ps : chain) {
    ops_.push_back({make_plugin<Augmentation>(registry, ps), ps.label()});
    const Op& op = ops_.back();
    formats_.push_back(guarded<ConfigError>(op.label, [&] { return op.plugin->output_format(formats_.back()); }));
    parallel_ = parallel_ && op.plugin->concurrency() == Concurrency::parallel;
  }
  // What a skip (random_apply) may leave out: only format-preserving ones.
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    const std::int64_t m = ops_[i].plugin->max_skip();
    if (m <= 0) continue;
    if (i + static_cast<std::size_t>(m) >= ops_.size())
      throw ConfigError(ops_[i].label + ": skips up to " + std::to_string(m) + " following augmentations, but only " +
                        std::to_string(ops_.size() - i - 1) + " follow it");
    for (std::int64_t k = 1; k <= m; ++k)
      if (!(formats_[i + 1 + k] == formats_[i + 1]))
        throw ConfigError(ops_[i].label + ": skipping the next " + std::to_string(k) +
                          " augmentation(s) would change the image from " + format_text(formats_[i + 1 + k]) +
                          " to " + format_text(formats_[i + 1]) + "; only format-preserving ones can be skipped");
  }
}

namespace {
Shape layout_of(const ImageFormat& f) {
  return f.dtype == DType::f32 ? Shape{f.shape.channels, f.shape.height, f.shape.width}
                               : Shape{f.shape.height, f.shape.width, f.shape.channels};
}
}  // namespace

void AugmentChain::collate(const Tensor& image, float* dst, const char* stage, std::int64_t view) const {
  const ImageFormat& f = output_format();
  if (image.dtype() != f.dtype || image.shape() != layout_of(f))
    throw PluginError(std::string(stage) + ": " + last_label() + " produced a " + dtype_name(image.dtype()) +
                      " image of shape " + image.shape().str() + " for view " + std::to_string(view) + ", expected " +
                      dtype_name(f.dtype) + " " + layout_of(f).str() + " as its output_format() said");
  const std::int64_t h = f.shape.height, w = f.shape.width, c = f.shape.channels;
  if (f.dtype == DType::f32) {
    std::copy_n(image.data<float>(), h * w * c, dst);
    return;
  }
  const std::uint8_t* src = image.data<std::uint8_t>();
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t i = 0; i < h * w; ++i) dst[ch * h * w + i] = src[i * c + ch] * (1.0f / 255.0f);
}

std::uint64_t AugmentChain::scratch_bytes() const {
  std::uint64_t buffer[2] = {0, 0}, largest = 0;
  bool skips = false;
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    const ImageShape& s = formats_[i + 1].shape;
    const auto bytes = static_cast<std::uint64_t>(s.height * s.width * s.channels) * dtype_size(formats_[i + 1].dtype);
    buffer[i % 2] = std::max(buffer[i % 2], bytes);
    largest = std::max(largest, bytes);
    skips = skips || ops_[i].plugin->max_skip() > 0;
  }
  return skips ? 2 * largest : buffer[0] + buffer[1];
}

std::string AugmentChain::last_label() const { return ops_.empty() ? std::string("the source") : ops_.back().label; }

const Tensor& AugmentChain::apply(const Tensor& in, Tensor* scratch, const Draw& draw, const char* stage) const {
  const Tensor* cur = &in;
  int flip = 0;
  std::int64_t skip = 0;
  for (std::size_t op = 0; op < ops_.size(); ++op) {
    if (skip > 0) {
      --skip;
      continue;
    }
    Tensor& out = scratch[flip];
    Rng rng(draw.seed, draw.epoch, draw.sample, draw.view, static_cast<std::uint32_t>(op));
    auto fail = [&](const std::string& why) {
      throw PluginError(std::string(stage) + ": " + ops_[op].label + " failed on sample " +
                        std::to_string(draw.sample) + ", view " + std::to_string(draw.view) +
                        (draw.step >= 0 ? " (step " + std::to_string(draw.step) + ")" : std::string()) + ": " + why);
    };
    try {
      skip = ops_[op].plugin->skip_following(rng);
      ops_[op].plugin->apply(*cur, out, rng);
    } catch (...) {
      fail(current_exception_message());
    }
    cur = &out;
    flip ^= 1;
  }
  return *cur;
}

}  // namespace contra::runtime
