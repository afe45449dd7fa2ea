#include "color_jitter.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

namespace contra::plugins {

namespace {

/// torchvision's tensor rgb_to_grayscale on uint8, bit for bit:
/// (0.2989 r + 0.587 g) + 0.114 b in float32, truncated.
inline std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  const float l = (0.2989f * static_cast<float>(r) + 0.587f * static_cast<float>(g)) + 0.114f * static_cast<float>(b);
  return static_cast<std::uint8_t>(static_cast<int>(l));
}

/// clamp(v, 0, 255) then truncation toward zero, as `.clamp(0, 255).to(uint8)`.
inline std::uint8_t clamp_trunc(float v) {
  return static_cast<std::uint8_t>(static_cast<int>(std::clamp(v, 0.0f, 255.0f)));
}

/// torch's `%` on floats with divisor 1: the remainder with the divisor's sign.
/// a − trunc(a) is exactly fmod(a, 1) for finite a (the subtraction is exact),
/// and vectorises where fmod is a library call.
inline float mod1(float a) {
  float m = a - std::trunc(a);
  return m < 0.0f ? m + 1.0f : m;
}

inline void hue_pixel(const std::uint8_t* s, std::uint8_t* d, float shift) {
  // _rgb2hsv
  const float r = static_cast<float>(s[0]) / 255.0f, g = static_cast<float>(s[1]) / 255.0f,
              b = static_cast<float>(s[2]) / 255.0f;
  const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  const bool eqc = maxc == minc;
  const float cr = maxc - minc;
  const float sat = cr / (eqc ? 1.0f : maxc);
  const float crd = eqc ? 1.0f : cr;
  const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
  const float h0 = maxc == r ? bc - gc : maxc == g ? (2.0f + rc) - bc : (4.0f + gc) - rc;
  const float h = mod1(mod1(h0 / 6.0f + 1.0f) + shift);
  // _hsv2rgb
  const float h6 = h * 6.0f;
  const float fi = std::floor(h6);
  const float f = h6 - fi;
  const int i = static_cast<int>(fi) % 6;
  const float v = maxc;
  const float p = std::clamp(v * (1.0f - sat), 0.0f, 1.0f);
  const float q = std::clamp(v * (1.0f - sat * f), 0.0f, 1.0f);
  const float t = std::clamp(v * (1.0f - sat * (1.0f - f)), 0.0f, 1.0f);
  float R, G, B;
  switch (i) {
    case 0: R = v, G = t, B = p; break;
    case 1: R = q, G = v, B = p; break;
    case 2: R = p, G = v, B = t; break;
    case 3: R = p, G = q, B = v; break;
    case 4: R = t, G = p, B = v; break;
    default: R = v, G = p, B = q; break;
  }
  d[0] = static_cast<std::uint8_t>(static_cast<int>(R * 255.0f));
  d[1] = static_cast<std::uint8_t>(static_cast<int>(G * 255.0f));
  d[2] = static_cast<std::uint8_t>(static_cast<int>(B * 255.0f));
}

std::string strength_help(const char* what) {
  return std::string("strength s: the ") + what + " factor is drawn uniformly from [max(0, 1 - s), 1 + s]; 0 = off";
}

}  // namespace

void adjust_brightness_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t n, double factor) {
  // torchvision: _blend(img, zeros, factor) = factor * img + (1 - factor) * 0.
  const float a = static_cast<float>(factor);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = clamp_trunc(a * static_cast<float>(src[i]));
}

void adjust_contrast_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, std::int64_t channels,
                        double factor) {
  // Mean of the gray image in float32, as torch.mean: the sum of integers is
  // exact in float32 up to 2^24, then divided once.
  std::int64_t sum = 0;
  if (channels == 3)
    for (std::int64_t i = 0; i < pixels; ++i) sum += luma(src[3 * i], src[3 * i + 1], src[3 * i + 2]);
  else
    for (std::int64_t i = 0; i < pixels; ++i) sum += src[i];
  const float mean = static_cast<float>(sum) / static_cast<float>(pixels);
  const float a = static_cast<float>(factor), bm = static_cast<float>(1.0 - factor) * mean;
  const std::int64_t n = pixels * channels;
  for (std::int64_t i = 0; i < n; ++i) dst[i] = clamp_trunc(a * static_cast<float>(src[i]) + bm);
}

void adjust_saturation_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, double factor) {
  const float a = static_cast<float>(factor), b = static_cast<float>(1.0 - factor);
  for (std::int64_t i = 0; i < pixels; ++i) {
    const std::uint8_t* s = src + 3 * i;
    const float bg = b * static_cast<float>(luma(s[0], s[1], s[2]));
    const float r = a * static_cast<float>(s[0]) + bg, g = a * static_cast<float>(s[1]) + bg,
                bl = a * static_cast<float>(s[2]) + bg;
    dst[3 * i] = clamp_trunc(r);
    dst[3 * i + 1] = clamp_trunc(g);
    dst[3 * i + 2] = clamp_trunc(bl);
  }
}

void adjust_hue_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t pixels, double hue_factor) {
  const float shift = static_cast<float>(hue_factor);
  // The same float operations as hue_pixel, in blocks of pixels laid out as
  // separate r, g, b arrays with selects instead of branches, so that the
  // compiler vectorises them; the results are bit for bit the same.
  constexpr std::int64_t block = 64;
  alignas(64) float R[block], G[block], B[block];
  std::int64_t done = 0;
  for (; done + block <= pixels; done += block) {
    const std::uint8_t* s = src + 3 * done;
    for (std::int64_t k = 0; k < block; ++k) {
      R[k] = static_cast<float>(s[3 * k]) / 255.0f;
      G[k] = static_cast<float>(s[3 * k + 1]) / 255.0f;
      B[k] = static_cast<float>(s[3 * k + 2]) / 255.0f;
    }
    for (std::int64_t k = 0; k < block; ++k) {
      const float r = R[k], g = G[k], b = B[k];
      const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
      const bool eqc = maxc == minc;
      const float cr = maxc - minc;
      const float sat = cr / (eqc ? 1.0f : maxc);
      const float crd = eqc ? 1.0f : cr;
      const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
      const float hr = bc - gc, hg = (2.0f + rc) - bc, hb = (4.0f + gc) - rc;
      const float h0 = maxc == r ? hr : (maxc == g ? hg : hb);
      const float h = mod1(mod1(h0 / 6.0f + 1.0f) + shift);
      const float h6 = h * 6.0f;
      const float fi = std::floor(h6);
      const float f = h6 - fi;
      const float v = maxc;
      // clamp as min(max()), and selects without short-circuits: no branches.
      const float p = std::min(std::max(v * (1.0f - sat), 0.0f), 1.0f);
      const float q = std::min(std::max(v * (1.0f - sat * f), 0.0f), 1.0f);
      const float t = std::min(std::max(v * (1.0f - sat * (1.0f - f)), 0.0f), 1.0f);
      // Sector i = int(fi) % 6, as hue_pixel's switch.
      const float i = fi >= 6.0f ? fi - 6.0f : fi;
      const bool i0 = i == 0.0f, i1 = i == 1.0f, i2 = i == 2.0f, i3 = i == 3.0f, i4 = i == 4.0f, i5 = i == 5.0f;
      R[k] = (i0 | i5) ? v : (i1 ? q : (i4 ? t : p));
      G[k] = (i1 | i2) ? v : (i0 ? t : (i3 ? q : p));
      B[k] = (i3 | i4) ? v : (i2 ? t : (i5 ? q : p));
    }
    std::uint8_t* d = dst + 3 * done;
    for (std::int64_t k = 0; k < block; ++k) {
      d[3 * k] = static_cast<std::uint8_t>(static_cast<int>(R[k] * 255.0f));
      d[3 * k + 1] = static_cast<std::uint8_t>(static_cast<int>(G[k] * 255.0f));
      d[3 * k + 2] = static_cast<std::uint8_t>(static_cast<int>(B[k] * 255.0f));
    }
  }
  for (std::int64_t i = done; i < pixels; ++i) hue_pixel(src + 3 * i, dst + 3 * i, shift);
}

contra::Schema ColorJitter::schema() {
  return contra::Schema("color_jitter",
                        "random brightness, contrast, saturation and hue in a random order, with probability p "
                        "(torchvision ColorJitter)")
      .add<double>("brightness", 0.0, strength_help("brightness"))
      .range(0.0, 10.0)
      .add<double>("contrast", 0.0, strength_help("contrast"))
      .range(0.0, 10.0)
      .add<double>("saturation", 0.0, strength_help("saturation") + " (RGB only)")
      .range(0.0, 10.0)
      .add<double>("hue", 0.0, "strength h: the hue shift is drawn uniformly from [-h, h] turns; 0 = off (RGB only)")
      .range(0.0, 0.5)
      .add<double>("p", 1.0, "probability of jittering at all")
      .range(0.0, 1.0);
}

ColorJitter::ColorJitter(const contra::Params& p)
    : strength_{p.get<double>("brightness"), p.get<double>("contrast"), p.get<double>("saturation"),
                p.get<double>("hue")},
      p_(p.get<double>("p")) {}

contra::ImageFormat ColorJitter::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("color_jitter: expects u8 HWC images, but the image here is ") +
                      dtype_name(in.dtype) + " CHW; place it before normalize, which must be the last step of a chain");
  if (in.shape.channels != 1 && in.shape.channels != 3)
    throw ConfigError("color_jitter: expects 1 (gray) or 3 (RGB) channels, but the image has " +
                      std::to_string(in.shape.channels));
  return in;
}

JitterDraw ColorJitter::sample(contra::Rng& rng) const {
  JitterDraw d;
  d.applied = rng.bernoulli(p_);
  if (!d.applied) return d;
  for (int i = 3; i > 0; --i)
    std::swap(d.order[static_cast<std::size_t>(i)], d.order[static_cast<std::size_t>(rng.integer(0, i))]);
  auto factor = [&](double s) { return rng.uniform(std::max(0.0, 1.0 - s), 1.0 + s); };
  if (enabled(0)) d.brightness = factor(strength_[0]);
  if (enabled(1)) d.contrast = factor(strength_[1]);
  if (enabled(2)) d.saturation = factor(strength_[2]);
  if (enabled(3)) d.hue = rng.uniform(-strength_[3], strength_[3]);
  return d;
}

void ColorJitter::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || (in.dim(2) != 1 && in.dim(2) != 3))
    throw UsageError(std::string("color_jitter: expects a u8 [H, W, C] image with 1 or 3 channels, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  out.ensure(in.shape(), DType::u8);
  const JitterDraw d = sample(rng);
  const std::int64_t pixels = in.dim(0) * in.dim(1), C = in.dim(2);
  const std::uint8_t* src = in.data<std::uint8_t>();
  std::uint8_t* dst = out.data<std::uint8_t>();
  if (d.applied) {
    for (int op : d.order) {
      if (!enabled(op) || (C == 1 && op >= 2)) continue;  // saturation and hue are identities on gray
      switch (op) {
        case 0: adjust_brightness_u8(src, dst, pixels * C, d.brightness); break;
        case 1: adjust_contrast_u8(src, dst, pixels, C, d.contrast); break;
        case 2: adjust_saturation_u8(src, dst, pixels, d.saturation); break;
        default: adjust_hue_u8(src, dst, pixels, d.hue); break;
      }
      src = dst;  // the remaining operations work in place on out
    }
  }
  if (src != dst) std::memcpy(dst, src, in.nbytes());
}

}  // namespace contra::plugins
