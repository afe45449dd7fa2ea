#include "gaussian_blur.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

/// Round to nearest, ties to even (as torch.round), for v in about [0, 255]:
/// adding and subtracting 2^23 rounds in the FPU's default mode; vectorises.
inline std::uint8_t round_to_u8(float v) {
  constexpr float magic = 0x1.0p23f;
  return static_cast<std::uint8_t>(std::clamp((v + magic) - magic, 0.0f, 255.0f));
}

[[noreturn]] void bad_param(const contra::Params& p, const char* name, const std::string& what) {
  contra::Diagnostic d{p.where(name), p.prefix() + "." + name, what};
  throw ConfigError(d.str());
}

}  // namespace

void gaussian_kernel(int k, double sigma, float* w) {
  const double half = (k - 1) * 0.5;
  double pdf[max_blur_kernel];
  double sum = 0;
  for (int i = 0; i < k; ++i) {
    const double x = (i - half) / sigma;
    pdf[i] = std::exp(-0.5 * x * x);
    sum += pdf[i];
  }
  for (int i = 0; i < k; ++i) w[i] = static_cast<float>(pdf[i] / sum);
}

std::int64_t reflect_index(std::int64_t i, std::int64_t n) noexcept {
  if (n <= 1) return 0;
  const std::int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

void blur_u8(const std::uint8_t* src, std::uint8_t* dst, std::int64_t height, std::int64_t width,
             std::int64_t channels, const float* w, int k) {
  const std::int64_t H = height, W = width, C = channels, r = k / 2;
  const std::int64_t row = W * C, padded_row = (W + 2 * r) * C;
  // Scratch: the horizontally blurred image, one padded source row and one
  // output row accumulator. Grows to the largest image seen on this thread.
  thread_local std::vector<float> scratch;
  const std::size_t need = static_cast<std::size_t>(H * row + padded_row + row);
  if (scratch.size() < need) scratch.resize(need);
  float* tmp = scratch.data();
  float* pad = tmp + H * row;
  float* acc = pad + padded_row;

  // Horizontal pass: pad each row by reflection, then a weighted sum of k
  // shifted copies (each a contiguous saxpy over W*C values).
  for (std::int64_t y = 0; y < H; ++y) {
    const std::uint8_t* s = src + y * row;
    for (std::int64_t i = 0; i < row; ++i) pad[r * C + i] = static_cast<float>(s[i]);
    for (std::int64_t x = 0; x < r; ++x) {
      const std::int64_t left = reflect_index(x - r, W), right = reflect_index(W + x, W);
      for (std::int64_t c = 0; c < C; ++c) {
        pad[x * C + c] = static_cast<float>(s[left * C + c]);
        pad[(r + W + x) * C + c] = static_cast<float>(s[right * C + c]);
      }
    }
    float* t = tmp + y * row;
    for (std::int64_t i = 0; i < row; ++i) t[i] = w[0] * pad[i];
    for (int j = 1; j < k; ++j) {
      const float wj = w[j];
      const float* p = pad + j * C;
      for (std::int64_t i = 0; i < row; ++i) t[i] += wj * p[i];
    }
  }
  // Vertical pass: a weighted sum of k reflected rows of the horizontal result.
  for (std::int64_t y = 0; y < H; ++y) {
    const float* t0 = tmp + reflect_index(y - r, H) * row;
    for (std::int64_t i = 0; i < row; ++i) acc[i] = w[0] * t0[i];
    for (int j = 1; j < k; ++j) {
      const float wj = w[j];
      const float* t = tmp + reflect_index(y - r + j, H) * row;
      for (std::int64_t i = 0; i < row; ++i) acc[i] += wj * t[i];
    }
    std::uint8_t* d = dst + y * row;
    for (std::int64_t i = 0; i < row; ++i) d[i] = round_to_u8(acc[i]);
  }
}

contra::Schema GaussianBlur::schema() {
  return contra::Schema("gaussian_blur",
                        "Gaussian blur with sigma drawn per image, with probability p (torchvision GaussianBlur)")
      .add<std::int64_t>("kernel_size", 23,
                         "kernel side in pixels, odd, 3..255; 0 picks about 10% of the image side (SimCLR)")
      .range(0, max_blur_kernel)
      .add<std::vector<double>>("sigma", std::vector<double>{0.1, 2.0},
                                "[min, max] standard deviation in pixels, drawn uniformly per image")
      .range(1e-3, 1e3)
      .length(2, 2)
      .add<double>("p", 0.5, "probability of blurring")
      .range(0.0, 1.0);
}

GaussianBlur::GaussianBlur(const contra::Params& p)
    : kernel_size_(p.get<int>("kernel_size")), p_(p.get<double>("p")) {
  if (kernel_size_ != 0 && (kernel_size_ < 3 || kernel_size_ % 2 == 0))
    bad_param(p, "kernel_size",
              "expected an odd size from 3 to 255, or 0 for about 10% of the image side, found " +
                  std::to_string(kernel_size_));
  auto s = p.get<std::vector<double>>("sigma");
  if (s[0] > s[1])
    bad_param(p, "sigma",
              "expected [min, max] with min <= max, found " + contra::value_to_string(contra::Value(s)));
  sigma_lo_ = s[0];
  sigma_hi_ = s[1];
}

int GaussianBlur::auto_kernel_size(std::int64_t height, std::int64_t width) noexcept {
  const std::int64_t side = std::min(height, width);
  const std::int64_t k = 2 * ((side / 10) / 2) + 1;
  return static_cast<int>(std::clamp<std::int64_t>(k, 3, max_blur_kernel));
}

int GaussianBlur::kernel_size_for(std::int64_t height, std::int64_t width) const noexcept {
  return kernel_size_ > 0 ? kernel_size_ : auto_kernel_size(height, width);
}

contra::ImageFormat GaussianBlur::output_format(const contra::ImageFormat& in) const {
  if (in.dtype != DType::u8)
    throw ConfigError(std::string("gaussian_blur: expects u8 HWC images, but the image here is ") +
                      dtype_name(in.dtype) + " CHW; place it before normalize, which must be the last step of a chain");
  return in;
}

void GaussianBlur::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  if (in.dtype() != DType::u8 || in.rank() != 3 || in.dim(0) < 1 || in.dim(1) < 1 || in.dim(2) < 1)
    throw UsageError(std::string("gaussian_blur: expects a u8 [H, W, C] image, got ") + dtype_name(in.dtype()) + " " +
                     in.shape().str());
  out.ensure(in.shape(), DType::u8);
  if (!rng.bernoulli(p_)) {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    return;
  }
  const double sigma = sample_sigma(rng);
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
  const int k = kernel_size_for(H, W);
  float w[max_blur_kernel];
  gaussian_kernel(k, sigma, w);
  blur_u8(in.data<std::uint8_t>(), out.data<std::uint8_t>(), H, W, C, w, k);
}

}  // namespace contra::plugins
