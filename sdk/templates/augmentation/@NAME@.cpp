// @NAME@: a contra augmentation plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [[augment.chain]] table against this and `contra plugins
  // --describe` prints it.
  return contra::Schema("@NAME@", "inverts the image with probability p")
      .add<double>("p", 0.5, "probability of inverting an image").range(0.0, 1.0);
}

@CLASS@::@CLASS@(const contra::Params& p) : p_(p.get<double>("p")) {}

contra::ImageFormat @CLASS@::output_format(const contra::ImageFormat& in) const { return in; }

// Skeleton: with probability p, u8 pixels become 255 − x (f32 values −x).
// Replace with your transform; draw every random number from `rng` (keyed by
// seed, epoch, sample, view and position in the chain) so that runs are
// reproducible at any thread count, and reuse `out` with out.ensure().
void @CLASS@::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  const bool invert = rng.bernoulli(p_);
  out.ensure(in.shape(), in.dtype());
  if (in.dtype() == contra::DType::u8) {
    const std::uint8_t* x = in.data<std::uint8_t>();
    std::uint8_t* y = out.data<std::uint8_t>();
    for (std::int64_t i = 0; i < in.numel(); ++i) y[i] = invert ? static_cast<std::uint8_t>(255 - x[i]) : x[i];
  } else {
    const float* x = in.data<float>();
    float* y = out.data<float>();
    for (std::int64_t i = 0; i < in.numel(); ++i) y[i] = invert ? -x[i] : x[i];
  }
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_AUGMENTATION(@CLASS@))
