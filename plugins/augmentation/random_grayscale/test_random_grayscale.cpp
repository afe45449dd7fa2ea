#include "random_grayscale.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::RandomGrayscale;

namespace {

RandomGrayscale make(double p) { return RandomGrayscale(RandomGrayscale::schema().bind({{"p", p}})); }

Tensor hwc(std::vector<int> v, std::int64_t h, std::int64_t w, std::int64_t c) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  REQUIRE(static_cast<std::int64_t>(v.size()) == t.numel());
  for (std::size_t k = 0; k < v.size(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(v[k]);
  return t;
}

std::vector<int> values(const Tensor& t) {
  const std::uint8_t* p = t.data<std::uint8_t>();
  return std::vector<int>(p, p + t.numel());
}

}  // namespace

TEST_CASE("random_grayscale: schema is well formed and p must lie in [0, 1]", "[plugins][random_grayscale]") {
  CHECK_NOTHROW(RandomGrayscale::schema().check_well_formed());
  CHECK_THROWS_WITH(make(2.0), "error: random_grayscale.p: expected a value in [0, 1], found 2.0\n");
}

TEST_CASE("random_grayscale: luma matches values worked by hand", "[plugins][random_grayscale]") {
  using contra::plugins::luma_u8;
  // 0.2989*100 + 0.587*150 + 0.114*200 = 29.89 + 88.05 + 22.8 = 140.74 -> 140
  CHECK(int(luma_u8(100, 150, 200)) == 140);
  CHECK(int(luma_u8(0, 0, 0)) == 0);
  CHECK(int(luma_u8(255, 0, 0)) == 76);    // 76.2195
  CHECK(int(luma_u8(0, 255, 0)) == 149);   // 149.685
  CHECK(int(luma_u8(0, 0, 255)) == 29);    // 29.07
  CHECK(int(luma_u8(255, 255, 255)) == 254);  // 0.9999 * 255 = 254.97, truncated as torchvision does
  CHECK(int(luma_u8(10, 10, 10)) == 9);       // 9.999
  CHECK(int(luma_u8(1, 2, 3)) == 1);          // 0.2989 + 1.174 + 0.342 = 1.8149
}

TEST_CASE("random_grayscale: p=1 writes the luma to all three channels", "[plugins][random_grayscale]") {
  Tensor in = hwc({100, 150, 200, 255, 0, 0, 0, 255, 0, 1, 2, 3}, 2, 2, 3), out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  REQUIRE(out.shape() == contra::Shape{2, 2, 3});
  CHECK(values(out) == std::vector<int>{140, 140, 140, 76, 76, 76, 149, 149, 149, 1, 1, 1});
}

TEST_CASE("random_grayscale: a 1-channel image is unchanged whatever p", "[plugins][random_grayscale]") {
  Tensor in = hwc({0, 17, 128, 255}, 2, 2, 1), out;
  for (int k = 0; k < 20; ++k) {
    Rng rng(2, 0, static_cast<std::uint64_t>(k), 0, 0);
    make(1.0).apply(in, out, rng);
    REQUIRE(out.shape() == in.shape());
    REQUIRE(values(out) == values(in));
  }
}

TEST_CASE("random_grayscale: p=0 is the identity", "[plugins][random_grayscale]") {
  Tensor in = hwc({100, 150, 200, 255, 0, 0}, 1, 2, 3), out;
  for (int k = 0; k < 50; ++k) {
    Rng rng(1, 0, static_cast<std::uint64_t>(k), 0, 0);
    make(0.0).apply(in, out, rng);
    REQUIRE(values(out) == values(in));
  }
}

TEST_CASE("random_grayscale: converts with frequency p over many keys", "[plugins][random_grayscale]") {
  Tensor in = hwc({100, 150, 200}, 1, 1, 3), out;
  for (double p : {0.1, 0.2, 0.5}) {
    auto g = make(p);
    const int n = 20000;
    int hits = 0;
    for (int k = 0; k < n; ++k) {
      Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
      g.apply(in, out, rng);
      hits += out.data<std::uint8_t>()[0] == 140;
    }
    const double sigma = std::sqrt(p * (1 - p) / n);
    INFO("p = " << p << ", observed " << double(hits) / n);
    CHECK(std::abs(double(hits) / n - p) < 4 * sigma);
  }
}

TEST_CASE("random_grayscale: same rng key gives the same output", "[plugins][random_grayscale]") {
  Tensor in = hwc({100, 150, 200, 3, 4, 5}, 2, 1, 3), a, b;
  auto g = make(0.5);
  for (int k = 0; k < 50; ++k) {
    Rng r1(7, 1, static_cast<std::uint64_t>(k), 0, 2), r2(7, 1, static_cast<std::uint64_t>(k), 0, 2);
    g.apply(in, a, r1);
    g.apply(in, b, r2);
    REQUIRE(values(a) == values(b));
  }
}

TEST_CASE("random_grayscale: reuses the output buffer", "[plugins][random_grayscale]") {
  Tensor in = hwc({100, 150, 200, 3, 4, 5}, 2, 1, 3), out;
  auto g = make(0.5);
  Rng rng(0, 0, 0, 0, 0);
  g.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 20; ++k) g.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("random_grayscale: output format keeps u8 HWC, refuses f32 and 2 or 4 channels",
          "[plugins][random_grayscale]") {
  ImageFormat rgb{{28, 28, 3}, DType::u8}, gray{{28, 28, 1}, DType::u8};
  CHECK(make(0.5).output_format(rgb) == rgb);
  CHECK(make(0.5).output_format(gray) == gray);
  CHECK_THROWS_WITH(make(0.5).output_format(ImageFormat{{28, 28, 4}, DType::u8}),
                    "random_grayscale: expects 1 (gray) or 3 (RGB) channels, but the image has 4");
  CHECK_THROWS_WITH(make(0.5).output_format(ImageFormat{{28, 28, 3}, DType::f32}),
                    "random_grayscale: expects u8 HWC images, but the image here is f32 CHW; place it before "
                    "normalize, which must be the last step of a chain");
  Tensor two = Tensor::zeros({2, 2, 2}, DType::u8), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_AS(make(0.5).apply(two, out, rng), contra::UsageError);
}
