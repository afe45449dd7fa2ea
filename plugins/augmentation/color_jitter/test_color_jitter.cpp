#include "color_jitter.hpp"

#include <test_support.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::ColorJitter;
using contra::plugins::JitterDraw;

namespace {

ColorJitter make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return ColorJitter(ColorJitter::schema().bind(v));
}

Tensor image(std::int64_t h, std::int64_t w, std::int64_t c, std::uint32_t seed) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(rng.next_u32());
  return t;
}

std::vector<int> run(void (*fn)(const std::uint8_t*, std::uint8_t*, std::int64_t, double), std::vector<int> in,
                     std::int64_t count, double factor) {
  std::vector<std::uint8_t> s(in.begin(), in.end()), d(in.size());
  fn(s.data(), d.data(), count, factor);
  return std::vector<int>(d.begin(), d.end());
}

std::vector<int> contrast(std::vector<int> in, std::int64_t channels, double factor) {
  std::vector<std::uint8_t> s(in.begin(), in.end()), d(in.size());
  contra::plugins::adjust_contrast_u8(s.data(), d.data(), std::int64_t(in.size()) / channels, channels, factor);
  return std::vector<int>(d.begin(), d.end());
}

using contra::plugins::adjust_brightness_u8;
using contra::plugins::adjust_hue_u8;
using contra::plugins::adjust_saturation_u8;

}  // namespace

TEST_CASE("color_jitter: schema is well formed and rejects out-of-range values", "[plugins][color_jitter]") {
  CHECK_NOTHROW(ColorJitter::schema().check_well_formed());
  CHECK_THROWS_WITH(make({{"hue", 0.6}}), "error: color_jitter.hue: expected a value in [0, 0.5], found 0.6\n");
  CHECK_THROWS_AS(make({{"brightness", -0.1}}), contra::ConfigError);
  CHECK_THROWS_AS(make({{"p", 1.1}}), contra::ConfigError);
}

TEST_CASE("color_jitter: brightness scales, clamps and truncates as worked by hand", "[plugins][color_jitter]") {
  // 1.5 x: 0, 1.5, 150, 300, 382.5 -> 0, 1, 150, 255, 255 (truncated, clamped).
  CHECK(run(adjust_brightness_u8, {0, 1, 100, 200, 255}, 5, 1.5) == std::vector<int>{0, 1, 150, 255, 255});
  // 0.5 x: 0, 0.5, 50, 100, 127.5 -> 0, 0, 50, 100, 127.
  CHECK(run(adjust_brightness_u8, {0, 1, 100, 200, 255}, 5, 0.5) == std::vector<int>{0, 0, 50, 100, 127});
  CHECK(run(adjust_brightness_u8, {0, 1, 100, 200, 255}, 5, 0.0) == std::vector<int>{0, 0, 0, 0, 0});
  CHECK(run(adjust_brightness_u8, {0, 1, 100, 200, 255}, 5, 1.0) == std::vector<int>{0, 1, 100, 200, 255});
}

TEST_CASE("color_jitter: contrast blends with the mean gray level as worked by hand", "[plugins][color_jitter]") {
  // Gray [0, 100, 200, 100]: mean 100. 0.5 x + 50; 2 x - 100 clamped.
  CHECK(contrast({0, 100, 200, 100}, 1, 0.5) == std::vector<int>{50, 100, 150, 100});
  CHECK(contrast({0, 100, 200, 100}, 1, 2.0) == std::vector<int>{0, 100, 255, 100});
  // [10, 20, 30, 40]: mean 25, 1.5 x - 12.5 = 2.5, 17.5, 32.5, 47.5 -> truncated.
  CHECK(contrast({10, 20, 30, 40}, 1, 1.5) == std::vector<int>{2, 17, 32, 47});
  CHECK(contrast({10, 20, 30, 40}, 1, 0.0) == std::vector<int>{25, 25, 25, 25});
  // RGB (100, 150, 200) has luma 140 (140.74 truncated), (0, 0, 0) has 0: mean 70.
  // 0.5 x + 35.
  CHECK(contrast({100, 150, 200, 0, 0, 0}, 3, 0.5) == std::vector<int>{85, 110, 135, 35, 35, 35});
  CHECK(contrast({100, 150, 200, 0, 0, 0}, 3, 1.0) == std::vector<int>{100, 150, 200, 0, 0, 0});
}

TEST_CASE("color_jitter: saturation blends with the pixel's luma as worked by hand", "[plugins][color_jitter]") {
  // (100, 150, 200): luma 140. 0 -> gray; 2 x - 140 = 60, 160, 260 -> 255; 0.5 x + 70.
  CHECK(run(adjust_saturation_u8, {100, 150, 200}, 1, 0.0) == std::vector<int>{140, 140, 140});
  CHECK(run(adjust_saturation_u8, {100, 150, 200}, 1, 2.0) == std::vector<int>{60, 160, 255});
  CHECK(run(adjust_saturation_u8, {100, 150, 200}, 1, 0.5) == std::vector<int>{120, 145, 170});
  CHECK(run(adjust_saturation_u8, {100, 150, 200, 7, 7, 7}, 2, 1.0) == std::vector<int>{100, 150, 200, 7, 7, 7});
}

TEST_CASE("color_jitter: hue rotates primaries and keeps grays", "[plugins][color_jitter]") {
  // Red has hue 0: +1/3 turn is green, +1/2 cyan, -1/3 blue.
  CHECK(run(adjust_hue_u8, {255, 0, 0}, 1, 1.0 / 3.0) == std::vector<int>{0, 255, 0});
  CHECK(run(adjust_hue_u8, {255, 0, 0}, 1, 0.5) == std::vector<int>{0, 255, 255});
  CHECK(run(adjust_hue_u8, {255, 0, 0}, 1, -1.0 / 3.0) == std::vector<int>{0, 0, 255});
  CHECK(run(adjust_hue_u8, {0, 255, 0}, 1, 1.0 / 3.0) == std::vector<int>{0, 0, 255});
  CHECK(run(adjust_hue_u8, {0, 0, 255}, 1, 1.0 / 3.0) == std::vector<int>{255, 0, 0});
  // Saturation 0: hue is meaningless and every gray level survives the
  // float round trip x / 255 * 255.
  for (int x = 0; x < 256; ++x)
    for (double h : {-0.5, -0.1, 0.0, 0.25, 0.5}) REQUIRE(run(adjust_hue_u8, {x, x, x}, 1, h) == std::vector<int>{x, x, x});
}

TEST_CASE("color_jitter: adjustments work in place", "[plugins][color_jitter]") {
  Tensor a = image(9, 11, 3, 1), b = a.clone();
  std::vector<std::uint8_t> want(static_cast<std::size_t>(a.numel()));
  auto* s = a.data<std::uint8_t>();
  adjust_hue_u8(s, want.data(), 99, 0.2);
  adjust_hue_u8(b.data<std::uint8_t>(), b.data<std::uint8_t>(), 99, 0.2);
  CHECK(std::memcmp(b.raw(), want.data(), want.size()) == 0);
  b = a.clone();
  contra::plugins::adjust_contrast_u8(s, want.data(), 99, 3, 1.7);
  contra::plugins::adjust_contrast_u8(b.data<std::uint8_t>(), b.data<std::uint8_t>(), 99, 3, 1.7);
  CHECK(std::memcmp(b.raw(), want.data(), want.size()) == 0);
  b = a.clone();
  adjust_saturation_u8(s, want.data(), 99, 0.3);
  adjust_saturation_u8(b.data<std::uint8_t>(), b.data<std::uint8_t>(), 99, 0.3);
  CHECK(std::memcmp(b.raw(), want.data(), want.size()) == 0);
}

TEST_CASE("color_jitter: all strengths 0 is the exact identity", "[plugins][color_jitter]") {
  for (std::int64_t c : {1, 3}) {
    Tensor in = image(17, 13, c, static_cast<std::uint32_t>(c)), out;
    for (double p : {0.0, 0.5, 1.0}) {
      auto cj = make({{"p", p}});
      for (int key = 0; key < 20; ++key) {
        Rng rng(1, 0, static_cast<std::uint64_t>(key), 0, 0);
        cj.apply(in, out, rng);
        REQUIRE(out.shape() == in.shape());
        REQUIRE(std::memcmp(out.raw(), in.raw(), in.nbytes()) == 0);
      }
    }
  }
}

TEST_CASE("color_jitter: saturation and hue leave a 1-channel image unchanged", "[plugins][color_jitter]") {
  Tensor in = image(8, 8, 1, 3), out;
  auto cj = make({{"saturation", 0.8}, {"hue", 0.5}});
  for (int key = 0; key < 20; ++key) {
    Rng rng(1, 0, static_cast<std::uint64_t>(key), 0, 0);
    cj.apply(in, out, rng);
    REQUIRE(std::memcmp(out.raw(), in.raw(), in.nbytes()) == 0);
  }
  // Brightness does apply to gray images.
  auto b = make({{"brightness", 0.8}});
  Rng rng(1, 0, 0, 0, 0);
  b.apply(in, out, rng);
  CHECK(std::memcmp(out.raw(), in.raw(), in.nbytes()) != 0);
}

TEST_CASE("color_jitter: draws stay in their ranges, disabled ones stay neutral", "[plugins][color_jitter]") {
  auto cj = make({{"brightness", 0.4}, {"contrast", 1.5}, {"hue", 0.1}});
  double lo[4] = {9, 9, 9, 9}, hi[4] = {-9, -9, -9, -9};
  std::set<std::array<int, 4>> orders;
  for (int k = 0; k < 20000; ++k) {
    Rng rng(3, 0, static_cast<std::uint64_t>(k), 0, 0);
    const JitterDraw d = cj.sample(rng);
    REQUIRE(d.applied);
    std::array<int, 4> sorted = d.order;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::array<int, 4>{0, 1, 2, 3});
    orders.insert(d.order);
    const double v[4] = {d.brightness, d.contrast, d.saturation, d.hue};
    for (int i = 0; i < 4; ++i) {
      lo[i] = std::min(lo[i], v[i]);
      hi[i] = std::max(hi[i], v[i]);
    }
    REQUIRE(d.brightness >= 0.6);
    REQUIRE(d.brightness < 1.4);
    REQUIRE(d.contrast >= 0.0);  // max(0, 1 - 1.5)
    REQUIRE(d.contrast < 2.5);
    REQUIRE(d.saturation == 1.0);  // off
    REQUIRE(d.hue >= -0.1);
    REQUIRE(d.hue < 0.1);
  }
  CHECK(orders.size() == 24);  // every permutation is reachable
  CHECK(lo[0] < 0.61);
  CHECK(hi[0] > 1.39);
  CHECK(lo[1] < 0.01);
  CHECK(hi[1] > 2.49);
  CHECK(lo[3] < -0.099);
  CHECK(hi[3] > 0.099);
}

TEST_CASE("color_jitter: applies with frequency p", "[plugins][color_jitter]") {
  auto cj = make({{"brightness", 0.5}, {"p", 0.8}});
  const int n = 20000;
  int hits = 0;
  for (int k = 0; k < n; ++k) {
    Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
    const JitterDraw d = cj.sample(rng);
    hits += d.applied;
    if (!d.applied) REQUIRE(d.brightness == 1.0);
  }
  INFO("observed " << double(hits) / n);
  CHECK(std::abs(double(hits) / n - 0.8) < 4 * std::sqrt(0.16 / n));
}

TEST_CASE("color_jitter: apply runs the drawn operations in the drawn order", "[plugins][color_jitter]") {
  auto cj = make({{"brightness", 0.8}, {"contrast", 0.8}, {"saturation", 0.8}, {"hue", 0.2}, {"p", 0.8}});
  Tensor in = image(10, 12, 3, 9), out;
  const std::int64_t n = 120;
  for (int key = 0; key < 100; ++key) {
    Rng rng(6, 1, static_cast<std::uint64_t>(key), 1, 2), copy = rng;
    cj.apply(in, out, rng);
    const JitterDraw d = cj.sample(copy);
    std::vector<std::uint8_t> a(in.data<std::uint8_t>(), in.data<std::uint8_t>() + 3 * n), b(a.size());
    if (d.applied)
      for (int op : d.order) {
        switch (op) {
          case 0: adjust_brightness_u8(a.data(), b.data(), 3 * n, d.brightness); break;
          case 1: contra::plugins::adjust_contrast_u8(a.data(), b.data(), n, 3, d.contrast); break;
          case 2: adjust_saturation_u8(a.data(), b.data(), n, d.saturation); break;
          default: adjust_hue_u8(a.data(), b.data(), n, d.hue); break;
        }
        a.swap(b);
      }
    REQUIRE(std::memcmp(out.raw(), a.data(), a.size()) == 0);
  }
}

TEST_CASE("color_jitter: the order of operations matters once values clamp", "[plugins][color_jitter]") {
  // [0, 200]: brightness 2 -> [0, 255] (400 clamped), then contrast 0 -> the
  // mean 127.5, truncated; contrast 0 first -> [100, 100], then brightness 2.
  std::vector<std::uint8_t> q{0, 200}, u1(2), u2(2);
  adjust_brightness_u8(q.data(), u1.data(), 2, 2.0);
  contra::plugins::adjust_contrast_u8(u1.data(), u1.data(), 2, 1, 0.0);
  contra::plugins::adjust_contrast_u8(q.data(), u2.data(), 2, 1, 0.0);
  adjust_brightness_u8(u2.data(), u2.data(), 2, 2.0);
  CHECK(std::vector<int>(u1.begin(), u1.end()) == std::vector<int>{127, 127});
  CHECK(std::vector<int>(u2.begin(), u2.end()) == std::vector<int>{200, 200});
}

TEST_CASE("color_jitter: same rng key gives the same output", "[plugins][color_jitter]") {
  auto cj = make({{"brightness", 0.4}, {"contrast", 0.4}, {"saturation", 0.4}, {"hue", 0.1}});
  Tensor in = image(20, 20, 3, 5), a, b, c;
  Rng r1(3, 1, 77, 1, 2), r2(3, 1, 77, 1, 2), r3(3, 1, 78, 1, 2);
  cj.apply(in, a, r1);
  cj.apply(in, b, r2);
  cj.apply(in, c, r3);
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  CHECK(std::memcmp(a.raw(), c.raw(), a.nbytes()) != 0);
}

TEST_CASE("color_jitter: reuses the output buffer", "[plugins][color_jitter]") {
  auto cj = make({{"brightness", 0.4}, {"contrast", 0.4}, {"saturation", 0.4}, {"hue", 0.1}, {"p", 0.8}});
  Tensor in = image(28, 28, 3, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  cj.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 20; ++k) cj.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("color_jitter: output format keeps u8 HWC, refuses f32 and 2 or 4 channels", "[plugins][color_jitter]") {
  ImageFormat rgb{{28, 28, 3}, DType::u8}, gray{{28, 28, 1}, DType::u8};
  CHECK(make({}).output_format(rgb) == rgb);
  CHECK(make({}).output_format(gray) == gray);
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 4}, DType::u8}),
                    "color_jitter: expects 1 (gray) or 3 (RGB) channels, but the image has 4");
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 3}, DType::f32}),
                    "color_jitter: expects u8 HWC images, but the image here is f32 CHW; place it before normalize, "
                    "which must be the last step of a chain");
  Tensor two = Tensor::zeros({2, 2, 2}, DType::u8), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make({}).apply(two, out, rng),
                    "color_jitter: expects a u8 [H, W, C] image with 1 or 3 channels, got u8 [2, 2, 2]");
}
