#include "random_crop.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>
#include <map>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::CropOrigin;
using contra::plugins::RandomCrop;

namespace {

RandomCrop make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return RandomCrop(RandomCrop::schema().bind(v));
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

/// The window of the padded image built the obvious way, as a reference.
std::vector<int> reference(const Tensor& in, std::int64_t pad, int fill, std::int64_t top, std::int64_t left,
                           std::int64_t oh, std::int64_t ow) {
  const std::int64_t H = in.dim(0), W = in.dim(1), C = in.dim(2);
  std::vector<int> r;
  for (std::int64_t y = 0; y < oh; ++y)
    for (std::int64_t x = 0; x < ow; ++x)
      for (std::int64_t c = 0; c < C; ++c) {
        const std::int64_t sy = top + y - pad, sx = left + x - pad;
        r.push_back(sy >= 0 && sy < H && sx >= 0 && sx < W ? int(in.data<std::uint8_t>()[(sy * W + sx) * C + c])
                                                           : fill);
      }
  return r;
}

}  // namespace

TEST_CASE("random_crop: schema is well formed and rejects out-of-range values", "[plugins][random_crop]") {
  CHECK_NOTHROW(RandomCrop::schema().check_well_formed());
  CHECK_THROWS_WITH(make({{"fill", std::int64_t(256)}}),
                    "error: random_crop.fill: expected a value in [0, 255], found 256\n");
  CHECK_THROWS_AS(make({{"padding", std::int64_t(-1)}}), contra::ConfigError);
}

TEST_CASE("random_crop: output format keeps u8 HWC and sets the size", "[plugins][random_crop]") {
  ImageFormat in{{28, 20, 3}, DType::u8};
  CHECK(make({}).output_format(in) == in);
  CHECK(make({{"padding", std::int64_t(4)}}).output_format(in) == in);
  CHECK(make({{"size", std::int64_t(16)}}).output_format(in) == ImageFormat{{16, 16, 3}, DType::u8});
  CHECK(make({{"size", std::int64_t(24)}, {"padding", std::int64_t(2)}}).output_format(in) ==
        ImageFormat{{24, 24, 3}, DType::u8});
}

TEST_CASE("random_crop: refuses a crop larger than the padded image", "[plugins][random_crop]") {
  ImageFormat in{{28, 20, 3}, DType::u8};
  CHECK_THROWS_AS(make({{"size", std::int64_t(24)}}).output_format(in), contra::ConfigError);
  CHECK_THROWS_WITH(make({{"size", std::int64_t(25)}, {"padding", std::int64_t(2)}}).output_format(in),
                    "random_crop: size 25 does not fit in the 32x24 image (28x20 padded by 2); lower size or raise "
                    "padding");
  Tensor small = image(4, 4, 1, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_AS(make({{"size", std::int64_t(5)}}).apply(small, out, rng), contra::UsageError);
}

TEST_CASE("random_crop: refuses f32 input such as normalize's output", "[plugins][random_crop]") {
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "random_crop: expects u8 HWC images, but the image here is f32 CHW; place it before normalize, "
                    "which must be the last step of a chain");
  Tensor f = Tensor::zeros({1, 4, 4}, DType::f32), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make({}).apply(f, out, rng), "random_crop: expects a u8 [H, W, C] image, got f32 [1, 4, 4]");
}

TEST_CASE("random_crop: windows of a padded 2x2 image match values worked by hand", "[plugins][random_crop]") {
  // Padded by 1 with fill 9:
  //   9 9 9 9
  //   9 1 2 9
  //   9 3 4 9
  //   9 9 9 9
  Tensor in = from(2, 2, 1, {1, 2, 3, 4});
  std::uint8_t d[9];
  auto crop = [&](std::int64_t top, std::int64_t left) {
    contra::plugins::crop_padded_u8(in.data<std::uint8_t>(), 2, 2, 1, 1, 9, top, left, d, 3, 3);
    return std::vector<int>(d, d + 9);
  };
  CHECK(crop(0, 0) == std::vector<int>{9, 9, 9, 9, 1, 2, 9, 3, 4});
  CHECK(crop(0, 1) == std::vector<int>{9, 9, 9, 1, 2, 9, 3, 4, 9});
  CHECK(crop(1, 0) == std::vector<int>{9, 1, 2, 9, 3, 4, 9, 9, 9});
  CHECK(crop(1, 1) == std::vector<int>{1, 2, 9, 3, 4, 9, 9, 9, 9});
  // A 1x4 window across the whole padded width of row 2, 2 channels.
  Tensor rgb = from(2, 2, 2, {1, 11, 2, 12, 3, 13, 4, 14});
  std::uint8_t e[8];
  contra::plugins::crop_padded_u8(rgb.data<std::uint8_t>(), 2, 2, 2, 1, 0, 2, 0, e, 1, 4);
  CHECK(std::vector<int>(e, e + 8) == std::vector<int>{0, 0, 3, 13, 4, 14, 0, 0});
}

TEST_CASE("random_crop: without padding at the input size it is the identity", "[plugins][random_crop]") {
  for (std::int64_t c : {1, 2, 3, 4}) {
    Tensor in = image(9, 7, c, static_cast<std::uint32_t>(c)), out;
    Rng rng(1, 2, 3, 0, 4);
    make({}).apply(in, out, rng);
    REQUIRE(out.shape() == in.shape());
    CHECK(std::memcmp(out.raw(), in.raw(), in.nbytes()) == 0);
  }
  Tensor sq = image(8, 8, 3, 9), out;
  Rng rng(1, 2, 3, 0, 4);
  make({{"size", std::int64_t(8)}}).apply(sq, out, rng);
  CHECK(std::memcmp(out.raw(), sq.raw(), sq.nbytes()) == 0);
}

TEST_CASE("random_crop: windows lie inside the padded image and every position is reached",
          "[plugins][random_crop]") {
  auto rc = make({{"size", std::int64_t(3)}, {"padding", std::int64_t(2)}});
  // 4x5 image padded to 8x9: tops 0..5, lefts 0..6, 42 positions.
  std::map<std::pair<std::int64_t, std::int64_t>, int> seen;
  const int n = 42 * 400;
  for (int k = 0; k < n; ++k) {
    Rng rng(9, 0, static_cast<std::uint64_t>(k), 0, 1);
    CropOrigin o = rc.sample_origin(4, 5, rng);
    REQUIRE(o.top >= 0);
    REQUIRE(o.left >= 0);
    REQUIRE(o.top + 3 <= 8);
    REQUIRE(o.left + 3 <= 9);
    ++seen[{o.top, o.left}];
  }
  CHECK(seen.size() == 42);
  for (const auto& [pos, count] : seen) {
    INFO("position " << pos.first << "," << pos.second << " drawn " << count << " times");
    CHECK(std::abs(count - 400) < 5 * 20);  // binomial sd ~ sqrt(400) = 20
  }
}

TEST_CASE("random_crop: apply copies the drawn window of the padded image", "[plugins][random_crop]") {
  for (std::int64_t c : {1, 3, 4}) {
    Tensor in = image(6, 5, c, static_cast<std::uint32_t>(10 + c)), out;
    for (auto [size, pad, fill] : {std::tuple<std::int64_t, std::int64_t, int>{4, 0, 0}, {5, 3, 17}, {0, 2, 255},
                                   {11, 3, 7}, {1, 1, 0}}) {
      auto rc = make({{"size", size}, {"padding", pad}, {"fill", std::int64_t(fill)}});
      const std::int64_t oh = size > 0 ? size : 6, ow = size > 0 ? size : 5;
      for (int key = 0; key < 50; ++key) {
        Rng r1(5, 0, static_cast<std::uint64_t>(key), 0, 0), r2 = r1;
        rc.apply(in, out, r1);
        CropOrigin o = rc.sample_origin(6, 5, r2);
        REQUIRE(out.shape() == contra::Shape{oh, ow, c});
        REQUIRE(values(out) == reference(in, pad, fill, o.top, o.left, oh, ow));
      }
    }
  }
}

TEST_CASE("random_crop: same rng key gives the same output", "[plugins][random_crop]") {
  auto rc = make({{"size", std::int64_t(24)}, {"padding", std::int64_t(4)}});
  Tensor in = image(28, 28, 3, 5), a, b, c;
  int differ = 0;
  for (std::uint64_t k = 0; k < 20; ++k) {
    Rng r1(3, 1, 77 + k, 1, 2), r2(3, 1, 77 + k, 1, 2), r3(3, 1, 1077 + k, 1, 2);
    rc.apply(in, a, r1);
    rc.apply(in, b, r2);
    rc.apply(in, c, r3);
    REQUIRE(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
    differ += std::memcmp(a.raw(), c.raw(), a.nbytes()) != 0;
  }
  CHECK(differ >= 15);  // 81 positions: another key rarely draws the same one
}

TEST_CASE("random_crop: reuses the output buffer", "[plugins][random_crop]") {
  auto rc = make({{"size", std::int64_t(16)}, {"padding", std::int64_t(2)}});
  Tensor in = image(28, 28, 1, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  rc.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 10; ++k) rc.apply(in, out, rng);
  CHECK(out.raw() == first);
}
