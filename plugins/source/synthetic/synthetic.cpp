#include "synthetic.hpp"

#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace contra::plugins {

namespace {

constexpr int max_side = 1024;
constexpr double two_pi = 6.283185307179586;

double frac(double x) { return x - std::floor(x); }

}  // namespace

contra::Schema SyntheticSource::schema() {
  return contra::Schema("synthetic", "deterministic generated labelled images (class patterns plus noise)")
      .add<std::int64_t>("size", 1024, "number of samples").at_least(1)
      .add<std::int64_t>("height", 28, "image height in pixels").range(1, max_side)
      .add<std::int64_t>("width", 28, "image width in pixels").range(1, max_side)
      .add<std::int64_t>("channels", 1, "channels per pixel").range(1, 4)
      .add<std::int64_t>("classes", 10, "number of classes; sample i has label i % classes").range(1, 1000)
      .add<std::int64_t>("seed", 0, "seed of the per-sample jitter and noise").at_least(0);
}

SyntheticSource::SyntheticSource(const contra::Params& p)
    : size_(p.get<std::int64_t>("size")),
      height_(p.get<std::int64_t>("height")),
      width_(p.get<std::int64_t>("width")),
      channels_(p.get<std::int64_t>("channels")),
      classes_(p.get<std::int64_t>("classes")),
      seed_(p.get<std::uint64_t>("seed")) {
  // Orientation, frequency and blob position follow low-discrepancy
  // sequences, so that the first few classes are as far apart as possible.
  patterns_.resize(static_cast<std::size_t>(classes_));
  for (std::int64_t c = 0; c < classes_; ++c) {
    ClassPattern& k = patterns_[static_cast<std::size_t>(c)];
    double cd = static_cast<double>(c);
    double theta = 3.141592653589793 * frac(0.5 + cd * 0.6180339887498949);
    k.cos_t = static_cast<float>(std::cos(theta));
    k.sin_t = static_cast<float>(std::sin(theta));
    k.freq = static_cast<float>(1.5 + 2.5 * frac(0.5 + cd * 0.4142135623730950));
    k.bx = static_cast<float>(0.6 * frac(0.5 + cd * 0.7548776662466927) - 0.3);
    k.by = static_cast<float>(0.6 * frac(0.5 + cd * 0.5698402909980532) - 0.3);
    for (int ch = 0; ch < 4; ++ch) {
      std::uint64_t h = contra::mix64(static_cast<std::uint64_t>(c) * 4 + static_cast<std::uint64_t>(ch) + 0x5eedull);
      k.tint[ch] = static_cast<float>(0.55 + 0.45 * static_cast<double>(h >> 11) * 0x1.0p-53);
    }
  }
}

contra::SourceInfo SyntheticSource::info() const {
  contra::SourceInfo s;
  s.size = size_;
  s.shape = {height_, width_, channels_};
  s.num_classes = classes_;
  return s;
}

std::vector<std::int64_t> SyntheticSource::labels() const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) out[static_cast<std::size_t>(i)] = i % classes_;
  return out;
}

std::int64_t SyntheticSource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= size_)
    throw DataError("synthetic: sample index " + std::to_string(index) + " is out of range for " +
                    std::to_string(size_) + (size_ == 1 ? " sample" : " samples"));
  const std::int64_t label = index % classes_;
  const ClassPattern& k = patterns_[static_cast<std::size_t>(label)];
  const std::int64_t H = height_, W = width_, C = channels_;
  image.ensure({H, W, C}, DType::u8);
  std::uint8_t* out = image.data<std::uint8_t>();

  contra::Rng rng(seed_, 0, static_cast<std::uint64_t>(index), 0, 0);
  const std::int64_t max_shift = std::max<std::int64_t>(1, std::min(H, W) / 28);
  const double dx = static_cast<double>(rng.integer(-max_shift, max_shift));
  const double dy = static_cast<double>(rng.integer(-max_shift, max_shift));
  const double phase = rng.uniform(-0.4, 0.4);
  const float contrast = static_cast<float>(rng.uniform(0.8, 1.2));
  const float brightness = static_cast<float>(rng.uniform(-0.08, 0.08));
  constexpr float noise = 0.08f;  // amplitude, in units of full scale

  // v(x, y) = brightness + contrast * (0.3 + 0.22 cos(u x + w y + phase) + 0.45 blob) + noise,
  // with x, y normalised to [-0.5, 0.5] after the shift. The cosine and the
  // Gaussian blob both separate into a column part and a row part.
  constexpr float sigma = 0.12f;
  const double u = two_pi * k.freq * k.cos_t, w = two_pi * k.freq * k.sin_t;
  float col_cos[max_side], col_sin[max_side], col_blob[max_side];
  for (std::int64_t x = 0; x < W; ++x) {
    double xn = (static_cast<double>(x) - dx + 0.5) / static_cast<double>(W) - 0.5;
    col_cos[x] = static_cast<float>(std::cos(u * xn + phase));
    col_sin[x] = static_cast<float>(std::sin(u * xn + phase));
    double d = xn - k.bx;
    col_blob[x] = static_cast<float>(std::exp(-d * d / (2.0 * sigma * sigma)));
  }
  float gain[4];
  for (std::int64_t ch = 0; ch < C; ++ch) gain[ch] = 255.0f * k.tint[ch];

  for (std::int64_t y = 0; y < H; ++y) {
    double yn = (static_cast<double>(y) - dy + 0.5) / static_cast<double>(H) - 0.5;
    const float rc = static_cast<float>(std::cos(w * yn)), rs = static_cast<float>(std::sin(w * yn));
    const double d = yn - k.by;
    const float rb = static_cast<float>(std::exp(-d * d / (2.0 * sigma * sigma)));
    std::uint8_t* row = out + y * W * C;
    for (std::int64_t x = 0; x < W; ++x) {
      // cos(a + b) = cos a cos b - sin a sin b
      float g = col_cos[x] * rc - col_sin[x] * rs;
      float v = brightness + contrast * (0.3f + 0.22f * g + 0.45f * col_blob[x] * rb);
      for (std::int64_t ch = 0; ch < C; ++ch) {
        float n = noise * (static_cast<float>(rng.next_u32() >> 8) * 0x1.0p-23f - 1.0f);
        float q = (v + n) * gain[ch] + 0.5f;
        row[x * C + ch] = static_cast<std::uint8_t>(std::clamp(q, 0.0f, 255.0f));
      }
    }
  }
  return label;
}

}  // namespace contra::plugins
