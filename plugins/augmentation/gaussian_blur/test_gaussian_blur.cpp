#include "gaussian_blur.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::GaussianBlur;

namespace {

GaussianBlur make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return GaussianBlur(GaussianBlur::schema().bind(v));
}

Tensor image(std::int64_t h, std::int64_t w, std::int64_t c, std::uint32_t seed) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(rng.next_u32());
  return t;
}

Tensor from(std::int64_t h, std::int64_t w, std::int64_t c, std::vector<int> values) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel());
  for (std::size_t k = 0; k < values.size(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(values[k]);
  return t;
}

std::vector<int> values(const Tensor& t) {
  const std::uint8_t* p = t.data<std::uint8_t>();
  return std::vector<int>(p, p + t.numel());
}

/// torch's reflect padding, written out: -1 -> 1, n -> n - 2 (valid for pad < n).
std::int64_t reflect(std::int64_t i, std::int64_t n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

/// Direct 2-D convolution in double with the outer product of `w`, on the
/// image padded by reflection, as torchvision's gaussian_blur (conv2d of the
/// reflect-padded image with kernel2d = w_y w_x^T). Unrounded.
std::vector<double> direct_blur(const Tensor& in, const std::vector<float>& w) {
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2), k = std::int64_t(w.size()), r = k / 2;
  std::vector<double> out;
  for (std::int64_t y = 0; y < H; ++y)
    for (std::int64_t x = 0; x < W; ++x)
      for (std::int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (std::int64_t i = 0; i < k; ++i)
          for (std::int64_t j = 0; j < k; ++j)
            s += double(w[std::size_t(i)]) * double(w[std::size_t(j)]) *
                 in.data<std::uint8_t>()[(reflect(y - r + i, H) * W + reflect(x - r + j, W)) * C + c];
        out.push_back(s);
      }
  return out;
}

std::vector<float> kernel(int k, double sigma) {
  std::vector<float> w(static_cast<std::size_t>(k));
  contra::plugins::gaussian_kernel(k, sigma, w.data());
  return w;
}

using list = std::vector<double>;

}  // namespace

TEST_CASE("gaussian_blur: schema is well formed", "[plugins][gaussian_blur]") {
  CHECK_NOTHROW(GaussianBlur::schema().check_well_formed());
}

TEST_CASE("gaussian_blur: rejects even kernel sizes, 1 and sigma min > max", "[plugins][gaussian_blur]") {
  CHECK_THROWS_WITH(make({{"kernel_size", std::int64_t(4)}}),
                    "error: gaussian_blur.kernel_size: expected an odd size from 3 to 255, or 0 for about 10% of the "
                    "image side, found 4");
  CHECK_THROWS_AS(make({{"kernel_size", std::int64_t(1)}}), contra::ConfigError);
  CHECK_THROWS_AS(make({{"kernel_size", std::int64_t(257)}}), contra::ConfigError);
  CHECK_THROWS_WITH(make({{"sigma", list{2.0, 0.1}}}),
                    "error: gaussian_blur.sigma: expected [min, max] with min <= max, found [2.0, 0.1]");
  CHECK_THROWS_AS(make({{"sigma", list{0.0, 1.0}}}), contra::ConfigError);
  CHECK_NOTHROW(make({{"kernel_size", std::int64_t(0)}}));
  CHECK_NOTHROW(make({{"kernel_size", std::int64_t(255)}}));
}

TEST_CASE("gaussian_blur: kernel weights match the formula worked by hand", "[plugins][gaussian_blur]") {
  // k = 3, sigma = 1: [e^-1/2, 1, e^-1/2] / (1 + 2 e^-1/2).
  const double e = std::exp(-0.5), s = 1 + 2 * e;
  auto w = kernel(3, 1.0);
  CHECK(w[0] == static_cast<float>(e / s));
  CHECK(w[1] == static_cast<float>(1 / s));
  CHECK(w[2] == w[0]);
  CHECK(w[0] == Approx(0.27406862));
  CHECK(w[1] == Approx(0.45186276));
  for (int k : {3, 5, 23, 255})
    for (double sigma : {0.1, 0.7, 2.0, 50.0}) {
      auto v = kernel(k, sigma);
      double sum = 0;
      for (int i = 0; i < k; ++i) {
        sum += v[std::size_t(i)];
        REQUIRE(v[std::size_t(i)] == v[std::size_t(k - 1 - i)]);
        if (i > 0 && i <= k / 2) REQUIRE(v[std::size_t(i)] >= v[std::size_t(i - 1)]);
      }
      REQUIRE(sum == Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("gaussian_blur: reflect padding indices", "[plugins][gaussian_blur]") {
  using contra::plugins::reflect_index;
  // n = 4: ... 2 1 | 0 1 2 3 | 2 1 0 1 2 ...
  const std::vector<std::int64_t> want{3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2};
  for (std::int64_t i = -3; i < 9; ++i) REQUIRE(reflect_index(i, 4) == want[std::size_t(i + 3)]);
  for (std::int64_t i = -5; i < 5; ++i) REQUIRE(reflect_index(i, 1) == 0);
  CHECK(reflect_index(-1, 2) == 1);
  CHECK(reflect_index(2, 2) == 0);
}

TEST_CASE("gaussian_blur: [1/4, 1/2, 1/4] on small rows as worked by hand", "[plugins][gaussian_blur]") {
  const float w[3] = {0.25f, 0.5f, 0.25f};
  std::uint8_t d[5];
  // [0, 100, 200, 40], reflect-padded [100 | 0 100 200 40 | 200]:
  // 25 + 0 + 25 = 50, 0 + 50 + 50 = 100, 25 + 100 + 10 = 135, 50 + 20 + 50 = 120.
  Tensor a = from(1, 4, 1, {0, 100, 200, 40});
  contra::plugins::blur_u8(a.data<std::uint8_t>(), d, 1, 4, 1, w, 3);
  CHECK(std::vector<int>(d, d + 4) == std::vector<int>{50, 100, 135, 120});
  // [0, 0, 255, 0, 0]: 0, 63.75, 127.5, 63.75, 0 -> 0, 64, 128 (tie to even), 64, 0.
  Tensor b = from(1, 5, 1, {0, 0, 255, 0, 0});
  contra::plugins::blur_u8(b.data<std::uint8_t>(), d, 1, 5, 1, w, 3);
  CHECK(std::vector<int>(d, d + 5) == std::vector<int>{0, 64, 128, 64, 0});
  // Ties: [0, 0, 1, 0, 0] -> 0, 0.25, 0.5, 0.25, 0 -> all 0; [0, 0, 3, 0, 0] -> 0, 1, 2 (1.5), 1, 0.
  Tensor c = from(1, 5, 1, {0, 0, 1, 0, 0});
  contra::plugins::blur_u8(c.data<std::uint8_t>(), d, 1, 5, 1, w, 3);
  CHECK(std::vector<int>(d, d + 5) == std::vector<int>{0, 0, 0, 0, 0});
  Tensor e = from(1, 5, 1, {0, 0, 3, 0, 0});
  contra::plugins::blur_u8(e.data<std::uint8_t>(), d, 1, 5, 1, w, 3);
  CHECK(std::vector<int>(d, d + 5) == std::vector<int>{0, 1, 2, 1, 0});
  // The same row as a column (vertical pass), 2 channels, second channel inverted.
  Tensor col = from(5, 1, 2, {0, 255, 0, 255, 255, 0, 0, 255, 0, 255});
  std::uint8_t dc[10];
  contra::plugins::blur_u8(col.data<std::uint8_t>(), dc, 5, 1, 2, w, 3);
  CHECK(std::vector<int>(dc, dc + 10) == std::vector<int>{0, 255, 64, 191, 128, 128, 64, 191, 0, 255});
}

TEST_CASE("gaussian_blur: a constant image stays constant", "[plugins][gaussian_blur]") {
  for (std::int64_t c : {1, 3, 4}) {
    const int level[4] = {173, 0, 255, 1};
    Tensor in = Tensor::empty({13, 29, c}, DType::u8), out;
    for (std::int64_t k = 0; k < in.numel(); ++k) in.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(level[k % c]);
    for (std::int64_t ks : {0, 3, 9, 23, 61}) {
      auto blur = make({{"kernel_size", ks}, {"p", 1.0}, {"sigma", list{0.1, 20.0}}});
      for (int key = 0; key < 10; ++key) {
        Rng rng(0, 0, static_cast<std::uint64_t>(key), 0, 0);
        blur.apply(in, out, rng);
        REQUIRE(out.shape() == in.shape());
        for (std::int64_t k = 0; k < out.numel(); ++k) REQUIRE(int(out.data<std::uint8_t>()[k]) == level[k % c]);
      }
    }
  }
}

TEST_CASE("gaussian_blur: matches a direct 2-D convolution with reflect padding", "[plugins][gaussian_blur]") {
  int near_ties = 0, total = 0;
  for (std::int64_t c : {1, 3}) {
    for (auto [H, W] : {std::pair<std::int64_t, std::int64_t>{17, 12}, {6, 30}, {24, 24}}) {
      Tensor in = image(H, W, c, static_cast<std::uint32_t>(H * 100 + W + c)), out;
      for (int k : {3, 5, 11}) {
        if (k / 2 >= std::min(H, W)) continue;  // torch's reflect needs pad < side
        for (double sigma : {0.3, 1.0, 2.0}) {
          auto w = kernel(k, sigma);
          out.ensure(in.shape(), DType::u8);
          contra::plugins::blur_u8(in.data<std::uint8_t>(), out.data<std::uint8_t>(), H, W, c, w.data(), k);
          const std::vector<double> ref = direct_blur(in, w);
          for (std::size_t i = 0; i < ref.size(); ++i) {
            const int got = out.data<std::uint8_t>()[i];
            const double frac = ref[i] - std::floor(ref[i]);
            ++total;
            INFO(H << "x" << W << "x" << c << " k " << k << " sigma " << sigma << " at " << i << ": " << ref[i]);
            if (std::abs(frac - 0.5) < 1e-3) {  // float vs double may round a near-tie either way
              ++near_ties;
              REQUIRE(std::abs(got - ref[i]) <= 0.5 + 1e-3);
            } else {
              REQUIRE(got == int(std::nearbyint(ref[i])));
            }
          }
        }
      }
    }
  }
  CHECK(near_ties < total / 100);
}

TEST_CASE("gaussian_blur: apply draws p, then sigma, and blurs with that sigma", "[plugins][gaussian_blur]") {
  auto blur = make({{"kernel_size", std::int64_t(5)}, {"p", 1.0}, {"sigma", list{0.5, 1.5}}});
  Tensor in = image(12, 10, 3, 3), out, want = Tensor::empty({12, 10, 3}, DType::u8);
  for (int key = 0; key < 50; ++key) {
    Rng rng(2, 1, static_cast<std::uint64_t>(key), 0, 4), copy = rng;
    blur.apply(in, out, rng);
    REQUIRE(copy.bernoulli(1.0));
    const double sigma = blur.sample_sigma(copy);
    REQUIRE(sigma >= 0.5);
    REQUIRE(sigma < 1.5);
    auto w = kernel(5, sigma);
    contra::plugins::blur_u8(in.data<std::uint8_t>(), want.data<std::uint8_t>(), 12, 10, 3, w.data(), 5);
    REQUIRE(values(out) == values(want));
  }
}

TEST_CASE("gaussian_blur: drawn sigmas cover the range uniformly", "[plugins][gaussian_blur]") {
  auto blur = make({});
  const int n = 20000;
  double lo = 10, hi = 0, mean = 0;
  for (int k = 0; k < n; ++k) {
    Rng rng(5, 0, static_cast<std::uint64_t>(k), 0, 0);
    const double s = blur.sample_sigma(rng);
    REQUIRE(s >= 0.1);
    REQUIRE(s < 2.0);
    lo = std::min(lo, s);
    hi = std::max(hi, s);
    mean += s / n;
  }
  CHECK(lo < 0.11);
  CHECK(hi > 1.99);
  CHECK(mean == Approx(1.05).margin(0.02));
}

TEST_CASE("gaussian_blur: kernel_size 0 picks about 10% of the side, odd, as SimCLR", "[plugins][gaussian_blur]") {
  CHECK(GaussianBlur::auto_kernel_size(224, 224) == 23);
  CHECK(GaussianBlur::auto_kernel_size(96, 128) == 9);
  CHECK(GaussianBlur::auto_kernel_size(64, 64) == 7);
  CHECK(GaussianBlur::auto_kernel_size(32, 32) == 3);
  CHECK(GaussianBlur::auto_kernel_size(28, 28) == 3);
  CHECK(GaussianBlur::auto_kernel_size(8, 8) == 3);
  CHECK(GaussianBlur::auto_kernel_size(4096, 4096) == 255);
  CHECK(make({{"kernel_size", std::int64_t(0)}}).kernel_size_for(224, 300) == 23);
  CHECK(make({}).kernel_size_for(28, 28) == 23);
}

TEST_CASE("gaussian_blur: kernels larger than the image reflect repeatedly", "[plugins][gaussian_blur]") {
  // A 23-tap kernel on a 4x3 image (torchvision would refuse): still a
  // weighted average, so a constant stays constant and values stay in range.
  Tensor in = image(4, 3, 3, 8), out;
  auto blur = make({{"p", 1.0}, {"sigma", list{2.0, 2.0}}});
  Rng rng(0, 0, 0, 0, 0);
  blur.apply(in, out, rng);
  REQUIRE(out.shape() == in.shape());
  Tensor one = from(1, 1, 1, {77});
  blur.apply(one, out, rng);
  CHECK(int(out.data<std::uint8_t>()[0]) == 77);
}

TEST_CASE("gaussian_blur: p=0 is the identity and frequency follows p", "[plugins][gaussian_blur]") {
  Tensor in = from(1, 3, 1, {0, 255, 0}), out;
  for (int k = 0; k < 20; ++k) {
    Rng rng(1, 0, static_cast<std::uint64_t>(k), 0, 0);
    make({{"p", 0.0}}).apply(in, out, rng);
    REQUIRE(values(out) == values(in));
  }
  auto blur = make({{"kernel_size", std::int64_t(3)}, {"sigma", list{1.0, 2.0}}});  // p = 0.5
  const int n = 10000;
  int hits = 0;
  for (int k = 0; k < n; ++k) {
    Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
    blur.apply(in, out, rng);
    hits += out.data<std::uint8_t>()[1] != 255;
  }
  INFO("observed " << double(hits) / n);
  CHECK(std::abs(double(hits) / n - 0.5) < 4 * std::sqrt(0.25 / n));
}

TEST_CASE("gaussian_blur: same rng key gives the same output", "[plugins][gaussian_blur]") {
  auto blur = make({{"kernel_size", std::int64_t(7)}, {"p", 1.0}});
  Tensor in = image(20, 20, 3, 5), a, b, c;
  Rng r1(3, 1, 77, 1, 2), r2(3, 1, 77, 1, 2), r3(3, 1, 78, 1, 2);
  blur.apply(in, a, r1);
  blur.apply(in, b, r2);
  blur.apply(in, c, r3);
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  CHECK(std::memcmp(a.raw(), c.raw(), a.nbytes()) != 0);
}

TEST_CASE("gaussian_blur: reuses the output buffer", "[plugins][gaussian_blur]") {
  auto blur = make({{"p", 1.0}});
  Tensor in = image(28, 28, 1, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  blur.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 10; ++k) blur.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("gaussian_blur: output format keeps u8 HWC and refuses f32", "[plugins][gaussian_blur]") {
  ImageFormat u8{{28, 28, 3}, DType::u8};
  CHECK(make({}).output_format(u8) == u8);
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "gaussian_blur: expects u8 HWC images, but the image here is f32 CHW; place it before normalize, "
                    "which must be the last step of a chain");
  Tensor f = Tensor::zeros({1, 4, 4}, DType::f32), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make({}).apply(f, out, rng), "gaussian_blur: expects a u8 [H, W, C] image, got f32 [1, 4, 4]");
}
