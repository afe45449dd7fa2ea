#include "random_resized_crop.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::CropBox;
using contra::plugins::RandomResizedCrop;

namespace {

RandomResizedCrop make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return RandomResizedCrop(RandomResizedCrop::schema().bind(v));
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

using list = std::vector<double>;

}  // namespace

TEST_CASE("random_resized_crop: schema is well formed", "[plugins][random_resized_crop]") {
  CHECK_NOTHROW(RandomResizedCrop::schema().check_well_formed());
}

TEST_CASE("random_resized_crop: rejects scale min > max", "[plugins][random_resized_crop]") {
  CHECK_THROWS_AS(make({{"scale", list{0.9, 0.1}}}), contra::ConfigError);
  CHECK_THROWS_WITH(make({{"scale", list{0.9, 0.1}}}),
                    "error: random_resized_crop.scale: expected [min, max] with min <= max, found [0.9, 0.1]");
  CHECK_THROWS_WITH(make({{"ratio", list{2.0, 0.5}}}),
                    "error: random_resized_crop.ratio: expected [min, max] with min <= max, found [2.0, 0.5]");
}

TEST_CASE("random_resized_crop: the min > max error names the pipeline key and position",
          "[plugins][random_resized_crop]") {
  contra::Diagnostics d;
  contra::Params p = RandomResizedCrop::schema().bind({{"scale", list{0.9, 0.1}, {"p.toml", 7, 9}}},
                                                      "augment.chain[0]", {"p.toml", 5, 1}, d);
  REQUIRE(d.empty());
  CHECK_THROWS_WITH(RandomResizedCrop(p),
                    "p.toml:7:9: error: augment.chain[0].scale: expected [min, max] with min <= max, found [0.9, 0.1]");
}

TEST_CASE("random_resized_crop: output format keeps u8 HWC and sets the size", "[plugins][random_resized_crop]") {
  ImageFormat in{{28, 20, 3}, DType::u8};
  CHECK(make({}).output_format(in) == in);
  CHECK(make({{"size", std::int64_t(32)}}).output_format(in) == ImageFormat{{32, 32, 3}, DType::u8});
}

TEST_CASE("random_resized_crop: refuses f32 input such as normalize's output", "[plugins][random_resized_crop]") {
  CHECK_THROWS_AS(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}), contra::ConfigError);
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "random_resized_crop: expects u8 HWC images, but the image here is f32 CHW; place it before "
                    "normalize, which must be the last step of a chain");
  Tensor f = Tensor::zeros({1, 4, 4}, DType::f32), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make({}).apply(f, out, rng),
                    "random_resized_crop: expects a u8 [H, W, C] image, got f32 [1, 4, 4]");
}

TEST_CASE("random_resized_crop: full-area square crop at the input size is the identity",
          "[plugins][random_resized_crop]") {
  for (std::int64_t c : {1, 2, 3, 4}) {
    Tensor in = image(28, 28, c, static_cast<std::uint32_t>(c)), out;
    for (std::int64_t size : {0, 28}) {
      auto rrc = make({{"scale", list{1.0, 1.0}}, {"ratio", list{1.0, 1.0}}, {"size", size}});
      Rng rng(1, 2, 3, 0, 4);
      rrc.apply(in, out, rng);
      REQUIRE(out.shape() == in.shape());
      CHECK(std::memcmp(out.raw(), in.raw(), in.nbytes()) == 0);
    }
  }
}

TEST_CASE("random_resized_crop: sampled boxes lie inside the image with area and aspect in range",
          "[plugins][random_resized_crop]") {
  auto rrc = make({});
  for (auto [H, W] : {std::pair<std::int64_t, std::int64_t>{28, 28}, {32, 20}, {17, 64}, {224, 224}}) {
    int fallbacks = 0, n = 4000;
    double mean_fraction = 0;
    std::int64_t min_top = H, max_top = 0;
    for (int k = 0; k < n; ++k) {
      Rng rng(9, 0, static_cast<std::uint64_t>(k), 0, 1);
      CropBox b = rrc.sample_box(H, W, rng);
      REQUIRE(b.top >= 0);
      REQUIRE(b.left >= 0);
      REQUIRE(b.height >= 1);
      REQUIRE(b.width >= 1);
      REQUIRE(b.top + b.height <= H);
      REQUIRE(b.left + b.width <= W);
      if (b.fallback) {
        ++fallbacks;
        continue;
      }
      // w and h are rounded from sqrt(area * r) and sqrt(area / r), so each is
      // within 0.5 of the exact value.
      const double area = double(H) * double(W), w = double(b.width), h = double(b.height);
      REQUIRE((w + 0.5) * (h + 0.5) >= 0.08 * area);
      REQUIRE((w - 0.5) * (h - 0.5) <= 1.0 * area);
      REQUIRE((w + 0.5) / (h - 0.5) >= 3.0 / 4.0);
      REQUIRE((w - 0.5) / (h + 0.5) <= 4.0 / 3.0);
      mean_fraction += w * h / area;
      min_top = std::min(min_top, b.top);
      max_top = std::max(max_top, b.top);
    }
    INFO(H << "x" << W << ": " << fallbacks << " fallbacks");
    if (std::max(H, W) > 2 * std::min(H, W)) {
      CHECK(fallbacks < n / 4);  // elongated images often fail all 10 attempts
      continue;
    }
    CHECK(fallbacks < n / 100);
    mean_fraction /= n - fallbacks;
    CHECK(mean_fraction > 0.35);  // uniform in [0.08, 1] minus rejected large crops
    CHECK(mean_fraction < 0.6);
    CHECK(min_top == 0);  // positions cover the image
    CHECK(max_top >= H / 2);
  }
}

TEST_CASE("random_resized_crop: impossible ranges fall back to the centre crop as torchvision does",
          "[plugins][random_resized_crop]") {
  Rng rng(0, 0, 0, 0, 0);
  // Full area with aspect 2 cannot fit a square: width kept, height = 28 / 2.
  CropBox b = make({{"scale", list{1.0, 1.0}}, {"ratio", list{2.0, 2.0}}}).sample_box(28, 28, rng);
  CHECK(b.fallback);
  CHECK((b.top == 7 && b.left == 0 && b.height == 14 && b.width == 28));
  // Aspect 1/4..1/2 on a square: height kept, width = round(28 * 0.5).
  b = make({{"scale", list{1.0, 1.0}}, {"ratio", list{0.25, 0.5}}}).sample_box(28, 28, rng);
  CHECK(b.fallback);
  CHECK((b.top == 0 && b.left == 7 && b.height == 28 && b.width == 14));
  // Aspect 1 cannot fit a 20x30 image at full area: height kept, width = 20.
  b = make({{"scale", list{1.0, 1.0}}, {"ratio", list{1.0, 1.0}}}).sample_box(20, 30, rng);
  CHECK(b.fallback);
  CHECK((b.top == 0 && b.left == 5 && b.height == 20 && b.width == 20));
  // A zero area never fits; the input aspect 1 is within [3/4, 4/3]: the whole image.
  b = make({{"scale", list{0.0, 0.0}}}).sample_box(28, 28, rng);
  CHECK(b.fallback);
  CHECK((b.top == 0 && b.left == 0 && b.height == 28 && b.width == 28));
  // Input aspect 1.5 > 4/3: height kept, width = round(20 * 4/3) = 27, centred.
  b = make({{"scale", list{0.0, 0.0}}}).sample_box(20, 30, rng);
  CHECK(b.fallback);
  CHECK((b.top == 0 && b.left == 1 && b.height == 20 && b.width == 27));
}

TEST_CASE("random_resized_crop: resizing a constant image keeps it constant", "[plugins][random_resized_crop]") {
  for (std::int64_t c : {1, 2, 3}) {
    const int level[3] = {173, 0, 255};
    Tensor in = Tensor::empty({37, 23, c}, DType::u8), out;
    for (std::int64_t k = 0; k < in.numel(); ++k) in.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(level[k % c]);
    for (std::int64_t size : {7, 23, 64}) {
      auto rrc = make({{"size", size}});
      for (int key = 0; key < 20; ++key) {
        Rng rng(0, 0, static_cast<std::uint64_t>(key), 0, 0);
        rrc.apply(in, out, rng);
        REQUIRE(out.shape() == contra::Shape{size, size, c});
        for (std::int64_t k = 0; k < out.numel(); ++k) REQUIRE(int(out.data<std::uint8_t>()[k]) == level[k % c]);
      }
    }
  }
}

TEST_CASE("random_resized_crop: 2x2 to 4x4 upscale matches values worked by hand", "[plugins][random_resized_crop]") {
  // Output column x samples source x' = (x + 0.5) / 2 - 0.5, clamped at 0:
  // 0, 0.25, 0.75, 1.25 -> weights (1,0), (.75,.25), (.25,.75), (0,1). Rows alike.
  //   row 0 [0, 100]  -> 0, 25, 75, 100
  //   row 1 [200, 40] -> 200, 160, 80, 40
  //   .75 row0 + .25 row1 = 50, 58.75, 76.25, 85;  .25 row0 + .75 row1 = 150, 126.25, 78.75, 55
  const std::vector<int> want{0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
  Tensor in = from(2, 2, 1, {0, 100, 200, 40}), out;
  auto rrc = make({{"scale", list{1.0, 1.0}}, {"ratio", list{1.0, 1.0}}, {"size", std::int64_t(4)}});
  Rng rng(0, 0, 0, 0, 0);
  rrc.apply(in, out, rng);
  REQUIRE(out.shape() == contra::Shape{4, 4, 1});
  CHECK(values(out) == want);

  // The same box taken from inside a larger 2-channel image.
  Tensor big = Tensor::zeros({4, 5, 2}, DType::u8);
  const int src[4] = {0, 100, 200, 40};
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      big.data<std::uint8_t>()[((1 + y) * 5 + (2 + x)) * 2 + 0] = static_cast<std::uint8_t>(src[y * 2 + x]);
      big.data<std::uint8_t>()[((1 + y) * 5 + (2 + x)) * 2 + 1] = static_cast<std::uint8_t>(255 - src[y * 2 + x]);
    }
  std::vector<std::uint8_t> dst(32);
  contra::plugins::resize_bilinear_u8(big.data<std::uint8_t>(), 5, 2, CropBox{1, 2, 2, 2, false}, dst.data(), 4, 4);
  for (int k = 0; k < 16; ++k) {
    CHECK(int(dst[std::size_t(2 * k)]) == want[std::size_t(k)]);
    CHECK(int(dst[std::size_t(2 * k + 1)]) == 255 - want[std::size_t(k)]);
  }
}

TEST_CASE("random_resized_crop: 4 to 2 downscale averages pairs as worked by hand", "[plugins][random_resized_crop]") {
  // x' = 2 (x + 0.5) - 0.5 = 0.5, 2.5: halfway between pixels 0,1 and 2,3.
  Tensor in = from(1, 4, 1, {10, 20, 31, 41});
  std::vector<std::uint8_t> dst(2);
  contra::plugins::resize_bilinear_u8(in.data<std::uint8_t>(), 4, 1, CropBox{0, 0, 1, 4, false}, dst.data(), 1, 2);
  CHECK(int(dst[0]) == 15);
  CHECK(int(dst[1]) == 36);
}

TEST_CASE("random_resized_crop: exact halves round to even as torch.round does", "[plugins][random_resized_crop]") {
  // [0, 2] and [3, 5] upscaled to 4 columns: 0, 0.5, 1.5, 2 and 3, 3.5, 4.5, 5.
  Tensor in = from(2, 2, 1, {0, 2, 3, 5});
  std::vector<std::uint8_t> dst(4);
  contra::plugins::resize_bilinear_u8(in.data<std::uint8_t>(), 2, 1, CropBox{0, 0, 1, 2, false}, dst.data(), 1, 4);
  CHECK(std::vector<int>(dst.begin(), dst.end()) == std::vector<int>{0, 0, 2, 2});
  contra::plugins::resize_bilinear_u8(in.data<std::uint8_t>(), 2, 1, CropBox{1, 0, 1, 2, false}, dst.data(), 1, 4);
  CHECK(std::vector<int>(dst.begin(), dst.end()) == std::vector<int>{3, 4, 4, 5});  // 3.5 -> 4, 4.5 -> 4
}

TEST_CASE("random_resized_crop: same rng key gives the same output", "[plugins][random_resized_crop]") {
  auto rrc = make({{"size", std::int64_t(24)}});
  Tensor in = image(28, 28, 3, 5), a, b, c;
  Rng r1(3, 1, 77, 1, 2), r2(3, 1, 77, 1, 2), r3(3, 1, 78, 1, 2);
  rrc.apply(in, a, r1);
  rrc.apply(in, b, r2);
  rrc.apply(in, c, r3);
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  CHECK(std::memcmp(a.raw(), c.raw(), a.nbytes()) != 0);
}

TEST_CASE("random_resized_crop: reuses the output buffer", "[plugins][random_resized_crop]") {
  auto rrc = make({{"size", std::int64_t(16)}});
  Tensor in = image(28, 28, 1, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  rrc.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 10; ++k) rrc.apply(in, out, rng);
  CHECK(out.raw() == first);
}
