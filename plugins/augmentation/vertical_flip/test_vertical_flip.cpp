#include "vertical_flip.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::Rng;
using contra::Tensor;
using contra::plugins::VerticalFlip;

namespace {

VerticalFlip make(double p) { return VerticalFlip(VerticalFlip::schema().bind({{"p", p}})); }

Tensor hwc(std::vector<int> v, std::int64_t h, std::int64_t w, std::int64_t c) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  for (std::size_t k = 0; k < v.size(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(v[k]);
  return t;
}

std::vector<int> values(const Tensor& t) {
  const std::uint8_t* p = t.data<std::uint8_t>();
  return std::vector<int>(p, p + t.numel());
}

}  // namespace

TEST_CASE("vertical_flip: schema is well formed and p must lie in [0, 1]", "[plugins][vertical_flip]") {
  CHECK_NOTHROW(VerticalFlip::schema().check_well_formed());
  CHECK_THROWS_WITH(make(-0.5), "error: vertical_flip.p: expected a value in [0, 1], found -0.5\n");
}

TEST_CASE("vertical_flip: p=1 mirrors a 3x2x2 image exactly", "[plugins][vertical_flip]") {
  // Pixel (y, x) holds channels (10y + x, 100 + 10y + x).
  Tensor in = hwc({0, 100, 1, 101,     //
                   10, 110, 11, 111,   //
                   20, 120, 21, 121},
                  3, 2, 2);
  Tensor out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  CHECK(out.shape() == contra::Shape{3, 2, 2});
  CHECK(values(out) == std::vector<int>{20, 120, 21, 121,  //
                                        10, 110, 11, 111,  //
                                        0, 100, 1, 101});
}

TEST_CASE("vertical_flip: p=1 mirrors 1- and 3-channel images", "[plugins][vertical_flip]") {
  Tensor out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(hwc({1, 2, 3, 4, 5, 6}, 2, 3, 1), out, rng);
  CHECK(values(out) == std::vector<int>{4, 5, 6, 1, 2, 3});
  make(1.0).apply(hwc({1, 2, 3, 4, 5, 6}, 2, 1, 3), out, rng);
  CHECK(values(out) == std::vector<int>{4, 5, 6, 1, 2, 3});
  make(1.0).apply(hwc({1, 2, 3, 4, 5, 6}, 1, 2, 3), out, rng);  // one row: unchanged
  CHECK(values(out) == std::vector<int>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("vertical_flip: p=1 reverses the rows of each plane of an f32 CHW image", "[plugins][vertical_flip]") {
  Tensor in = Tensor::empty({2, 3, 2}, DType::f32), out;
  for (int k = 0; k < 12; ++k) in.data<float>()[k] = float(k);
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  REQUIRE(out.dtype() == DType::f32);
  REQUIRE(out.shape() == contra::Shape{2, 3, 2});
  const std::vector<float> want{4, 5, 2, 3, 0, 1, 10, 11, 8, 9, 6, 7};
  CHECK(std::vector<float>(out.data<float>(), out.data<float>() + 12) == want);
}

TEST_CASE("vertical_flip: p=0 is the identity", "[plugins][vertical_flip]") {
  Tensor in = hwc({0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112}, 2, 3, 2), out;
  for (int k = 0; k < 100; ++k) {
    Rng rng(1, 0, static_cast<std::uint64_t>(k), 0, 0);
    make(0.0).apply(in, out, rng);
    REQUIRE(values(out) == values(in));
  }
}

TEST_CASE("vertical_flip: flips with frequency p over many keys", "[plugins][vertical_flip]") {
  Tensor in = hwc({1, 2}, 2, 1, 1), out;
  for (double p : {0.1, 0.5, 0.8}) {
    auto flip = make(p);
    const int n = 20000;
    int flips = 0;
    for (int k = 0; k < n; ++k) {
      Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
      flip.apply(in, out, rng);
      flips += out.data<std::uint8_t>()[0] == 2;
    }
    const double sigma = std::sqrt(p * (1 - p) / n);
    INFO("p = " << p << ", observed " << double(flips) / n);
    CHECK(std::abs(double(flips) / n - p) < 4 * sigma);
  }
}

TEST_CASE("vertical_flip: same rng key gives the same output", "[plugins][vertical_flip]") {
  Tensor in = hwc({1, 2, 3, 4}, 2, 2, 1), a, b;
  auto flip = make(0.5);
  for (int k = 0; k < 50; ++k) {
    Rng r1(7, 1, static_cast<std::uint64_t>(k), 0, 2), r2(7, 1, static_cast<std::uint64_t>(k), 0, 2);
    flip.apply(in, a, r1);
    flip.apply(in, b, r2);
    REQUIRE(values(a) == values(b));
  }
}

TEST_CASE("vertical_flip: reuses the output buffer", "[plugins][vertical_flip]") {
  Tensor in = hwc({1, 2, 3, 4, 5, 6}, 3, 2, 1), out;
  auto flip = make(0.5);
  Rng rng(0, 0, 0, 0, 0);
  flip.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 20; ++k) flip.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("vertical_flip: output format equals input format", "[plugins][vertical_flip]") {
  contra::ImageFormat u8{{28, 28, 3}, DType::u8}, f32{{28, 28, 3}, DType::f32};
  CHECK(make(0.5).output_format(u8) == u8);
  CHECK(make(0.5).output_format(f32) == f32);
}
