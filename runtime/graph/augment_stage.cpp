#include "augment_stage.hpp"

#include "loader/registry.hpp"

#include <contra/errors.hpp>

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>

namespace contra::runtime {

namespace {

std::string format_text(const ImageFormat& f) {
  return std::string(dtype_name(f.dtype)) + " " + std::to_string(f.shape.height) + "x" +
         std::to_string(f.shape.width) + "x" + std::to_string(f.shape.channels);
}

// u8 HWC -> f32 CHW scaled to [0, 1], or a copy of f32 CHW, into `dst`.
void collate(const Tensor& img, float* dst, const ImageFormat& fmt) {
  const std::int64_t h = fmt.shape.height, w = fmt.shape.width, c = fmt.shape.channels;
  if (fmt.dtype == DType::f32) {
    std::copy_n(img.data<float>(), h * w * c, dst);
    return;
  }
  const std::uint8_t* src = img.data<std::uint8_t>();
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t i = 0; i < h * w; ++i) dst[ch * h * w + i] = src[i * c + ch] * (1.0f / 255.0f);
}

Shape layout_of(const ImageFormat& f) {
  return f.dtype == DType::f32 ? Shape{f.shape.channels, f.shape.height, f.shape.width}
                               : Shape{f.shape.height, f.shape.width, f.shape.channels};
}

}  // namespace

AugmentStage::AugmentStage(const PipelineSpec& spec, const PluginRegistry& reg, const ImageShape& source_shape,
                           std::uint64_t seed)
    : seed_(seed) {
  std::vector<ImageFormat> finals;
  for (const ViewSpec& vs : spec.views) {
    std::vector<Op> chain;
    for (const PluginSpec& ps : vs.chain) {
      const PluginRecord* rec = reg.find(ps.kind, ps.name, ps.device);
      if (!rec) throw PluginError(ps.label() + ": plugin not found");
      try {
        chain.push_back({reg.create<Augmentation>(*rec, ps.params), &ps});
      } catch (const std::exception& e) {
        throw PluginError(ps.label() + ": " + e.what());
      }
    }
    // Formats along the chain, and what a skip (random_apply) may leave out.
    std::vector<ImageFormat> formats{ImageFormat{source_shape, DType::u8}};
    for (const Op& op : chain) {
      try {
        formats.push_back(op.plugin->output_format(formats.back()));
      } catch (const std::exception& e) {
        throw ConfigError(op.spec->label() + ": " + e.what());
      } catch (...) {
        throw ConfigError(op.spec->label() + ": output_format() threw something that is not a std::exception");
      }
      parallel_ = parallel_ && op.plugin->concurrency() == Concurrency::parallel;
    }
    for (std::size_t i = 0; i < chain.size(); ++i) {
      const std::int64_t m = chain[i].plugin->max_skip();
      if (m <= 0) continue;
      if (i + static_cast<std::size_t>(m) >= chain.size())
        throw ConfigError(chain[i].spec->label() + ": skips up to " + std::to_string(m) +
                          " following augmentations, but only " + std::to_string(chain.size() - i - 1) +
                          " follow it");
      for (std::int64_t k = 1; k <= m; ++k)
        if (!(formats[i + 1 + k] == formats[i + 1]))
          throw ConfigError(chain[i].spec->label() + ": skipping the next " + std::to_string(k) +
                            " augmentation(s) would change the image from " + format_text(formats[i + 1 + k]) +
                            " to " + format_text(formats[i + 1]) + "; only format-preserving ones can be skipped");
    }
    for (std::int64_t c = 0; c < vs.count; ++c) {
      view_chain_.push_back(chains_.size());
      finals.push_back(formats.back());
    }
    chains_.push_back(std::move(chain));
  }
  for (std::size_t v = 0; v < finals.size(); ++v) {
    // Views are grouped when consecutive and of one final size; the encoder
    // sees every group, so channels must agree throughout.
    if (finals[v].shape.channels != finals[0].shape.channels)
      throw ConfigError("augment: view " + std::to_string(v) + " ends with " +
                        std::to_string(finals[v].shape.channels) + " channels, view 0 with " +
                        std::to_string(finals[0].shape.channels) + "; every view must have the same channels");
    if (groups_.empty() || !(groups_.back().format.shape == finals[v].shape))
      groups_.push_back({static_cast<std::int64_t>(v), 0, finals[v]});
    groups_.back().count++;
    view_group_.push_back(groups_.size() - 1);
  }
}

Shape AugmentStage::encoder_input() const {
  const ImageShape& s = groups_.front().format.shape;
  return Shape{s.channels, s.height, s.width};
}

void AugmentStage::run(BatchWork& w) const {
  const auto n = static_cast<std::int64_t>(w.indices.size());
  const std::int64_t views = this->views();
  w.batch.views = views;
  w.batch.more_images.resize(groups_.size() - 1);
  std::vector<float*> group_data(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ImageShape& s = groups_[g].format.shape;
    Tensor& t = g == 0 ? w.batch.images : w.batch.more_images[g - 1];
    t.ensure({groups_[g].count * n, s.channels, s.height, s.width}, DType::f32);
    group_data[g] = t.data<float>();
  }
  if (w.scratch.size() < static_cast<std::size_t>(2 * views * n)) w.scratch.resize(static_cast<std::size_t>(2 * views * n));

  auto one = [&](std::int64_t task) {
    const std::int64_t v = task / n, i = task % n;
    const std::vector<Op>& chain = chains_[view_chain_[v]];
    const Tensor* cur = &w.raw[i];
    int flip = 0;
    std::int64_t skip = 0;
    for (std::size_t op = 0; op < chain.size(); ++op) {
      if (skip > 0) {
        --skip;
        continue;
      }
      Tensor& out = w.scratch[2 * task + flip];
      Rng rng(seed_, static_cast<std::uint64_t>(w.batch.epoch), static_cast<std::uint64_t>(w.indices[i]),
              static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(op));
      try {
        skip = chain[op].plugin->skip_following(rng);
        chain[op].plugin->apply(*cur, out, rng);
      } catch (const std::exception& e) {
        throw PluginError("augment stage: " + chain[op].spec->label() + " failed on sample " +
                          std::to_string(w.indices[i]) + ", view " + std::to_string(v) + " (step " +
                          std::to_string(w.batch.step) + "): " + e.what());
      } catch (...) {
        throw PluginError("augment stage: " + chain[op].spec->label() + " failed on sample " +
                          std::to_string(w.indices[i]) + ", view " + std::to_string(v) + " (step " +
                          std::to_string(w.batch.step) + "): it threw something that is not a std::exception");
      }
      cur = &out;
      flip ^= 1;
    }
    const Group& g = groups_[view_group_[v]];
    const ImageFormat& f = g.format;
    if (cur->dtype() != f.dtype || cur->shape() != layout_of(f)) {
      std::string who = chain.empty() ? std::string("the source") : chain.back().spec->label();
      throw PluginError("augment stage: " + who + " produced a " + dtype_name(cur->dtype()) + " image of shape " +
                        cur->shape().str() + " for view " + std::to_string(v) + ", expected " + dtype_name(f.dtype) +
                        " " + layout_of(f).str() + " as its output_format() said");
    }
    const std::int64_t elems = f.shape.channels * f.shape.height * f.shape.width;
    collate(*cur, group_data[view_group_[v]] + ((v - g.first_view) * n + i) * elems, f);
  };
  if (parallel_)
    tbb::parallel_for(std::int64_t(0), views * n, one);
  else
    for (std::int64_t t = 0; t < views * n; ++t) one(t);
}

}  // namespace contra::runtime
