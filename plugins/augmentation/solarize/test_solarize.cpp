#include "solarize.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::Solarize;

namespace {

Solarize make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return Solarize(Solarize::schema().bind(v));
}

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

TEST_CASE("solarize: schema is well formed and rejects out-of-range values", "[plugins][solarize]") {
  CHECK_NOTHROW(Solarize::schema().check_well_formed());
  CHECK_THROWS_WITH(make({{"threshold", std::int64_t(257)}}),
                    "error: solarize.threshold: expected a value in [0, 256], found 257\n");
  CHECK_THROWS_AS(make({{"p", 1.5}}), contra::ConfigError);
}

TEST_CASE("solarize: p=1 inverts exactly the values at or above the threshold", "[plugins][solarize]") {
  // 2x3 RGB: 0, 1, 127, 128, 129, 200, 254, 255, 64, 100, 128, 3, 250, 5, 6, 7, 130, 127
  Tensor in = hwc({0, 1, 127, 128, 129, 200, 254, 255, 64, 100, 128, 3, 250, 5, 6, 7, 130, 127}, 2, 3, 3), out;
  Rng rng(0, 0, 0, 0, 0);
  make({{"p", 1.0}}).apply(in, out, rng);
  REQUIRE(out.shape() == in.shape());
  CHECK(values(out) == std::vector<int>{0, 1, 127, 127, 126, 55, 1, 0, 64, 100, 127, 3, 5, 5, 6, 7, 125, 127});
}

TEST_CASE("solarize: threshold 0 inverts every value and 256 none", "[plugins][solarize]") {
  Tensor in = hwc({0, 1, 128, 255}, 2, 2, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  make({{"p", 1.0}, {"threshold", std::int64_t(0)}}).apply(in, out, rng);
  CHECK(values(out) == std::vector<int>{255, 254, 127, 0});
  make({{"p", 1.0}, {"threshold", std::int64_t(256)}}).apply(in, out, rng);
  CHECK(values(out) == std::vector<int>{0, 1, 128, 255});
  make({{"p", 1.0}, {"threshold", std::int64_t(255)}}).apply(in, out, rng);
  CHECK(values(out) == std::vector<int>{0, 1, 128, 0});
}

TEST_CASE("solarize: matches the definition on every value and threshold", "[plugins][solarize]") {
  std::uint8_t src[256], dst[256];
  for (int x = 0; x < 256; ++x) src[x] = static_cast<std::uint8_t>(x);
  for (int t = 0; t <= 256; ++t) {
    contra::plugins::solarize_u8(src, dst, 256, t);
    for (int x = 0; x < 256; ++x) REQUIRE(int(dst[x]) == (x >= t ? 255 - x : x));
  }
}

TEST_CASE("solarize: p=0 is the identity", "[plugins][solarize]") {
  Tensor in = hwc({0, 1, 128, 255, 200, 3}, 1, 2, 3), out;
  for (int k = 0; k < 50; ++k) {
    Rng rng(1, 0, static_cast<std::uint64_t>(k), 0, 0);
    make({{"p", 0.0}}).apply(in, out, rng);
    REQUIRE(values(out) == values(in));
  }
}

TEST_CASE("solarize: solarizes with frequency p over many keys", "[plugins][solarize]") {
  Tensor in = hwc({200}, 1, 1, 1), out;
  for (double p : {0.2, 0.5}) {
    auto s = make({{"p", p}});
    const int n = 20000;
    int hits = 0;
    for (int k = 0; k < n; ++k) {
      Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
      s.apply(in, out, rng);
      hits += out.data<std::uint8_t>()[0] == 55;
    }
    const double sigma = std::sqrt(p * (1 - p) / n);
    INFO("p = " << p << ", observed " << double(hits) / n);
    CHECK(std::abs(double(hits) / n - p) < 4 * sigma);
  }
}

TEST_CASE("solarize: same rng key gives the same output", "[plugins][solarize]") {
  Tensor in = hwc({10, 200, 150, 90}, 2, 2, 1), a, b;
  auto s = make({});
  for (int k = 0; k < 50; ++k) {
    Rng r1(7, 1, static_cast<std::uint64_t>(k), 0, 2), r2(7, 1, static_cast<std::uint64_t>(k), 0, 2);
    s.apply(in, a, r1);
    s.apply(in, b, r2);
    REQUIRE(values(a) == values(b));
  }
}

TEST_CASE("solarize: reuses the output buffer", "[plugins][solarize]") {
  Tensor in = hwc({10, 200, 150, 90}, 2, 2, 1), out;
  auto s = make({{"p", 0.5}});
  Rng rng(0, 0, 0, 0, 0);
  s.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 20; ++k) s.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("solarize: output format keeps u8 HWC and refuses f32", "[plugins][solarize]") {
  ImageFormat u8{{28, 28, 3}, DType::u8};
  CHECK(make({}).output_format(u8) == u8);
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "solarize: expects u8 HWC images, but the image here is f32 CHW; place it before normalize, "
                    "which must be the last step of a chain");
  Tensor f = Tensor::zeros({1, 4, 4}, DType::f32), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make({}).apply(f, out, rng), "solarize: expects a u8 [H, W, C] image, got f32 [1, 4, 4]");
}
