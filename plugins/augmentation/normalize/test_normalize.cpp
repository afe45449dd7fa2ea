#include "normalize.hpp"

#include <test_support.hpp>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::Normalize;

namespace {

Normalize make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return Normalize(Normalize::schema().bind(v));
}

Tensor hwc(std::vector<int> v, std::int64_t h, std::int64_t w, std::int64_t c) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  for (std::size_t k = 0; k < v.size(); ++k) t.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(v[k]);
  return t;
}

float expect(int x, double mean, double std) { return static_cast<float>((x / 255.0 - mean) / std); }

using list = std::vector<double>;

}  // namespace

TEST_CASE("normalize: schema is well formed and std must be positive", "[plugins][normalize]") {
  CHECK_NOTHROW(Normalize::schema().check_well_formed());
  CHECK_THROWS_WITH(make({{"std", list{0.0}}}),
                    "error: normalize.std: expected every element in [1e-06, 1000000], found 0.0\n");
  CHECK_THROWS_AS(make({{"mean", list{0.1, 0.2, 0.3, 0.4, 0.5}}}), contra::ConfigError);
}

TEST_CASE("normalize: defaults map 0, 255 and 51 to -1, 1 and -0.6", "[plugins][normalize]") {
  Tensor in = hwc({0, 255, 51, 128}, 2, 2, 1), out;
  Rng rng(0, 0, 0, 0, 0);
  make({}).apply(in, out, rng);
  REQUIRE(out.shape() == contra::Shape{1, 2, 2});
  REQUIRE(out.dtype() == DType::f32);
  const float* o = out.data<float>();
  CHECK(o[0] == -1.0f);
  CHECK(o[1] == 1.0f);
  CHECK(o[2] == static_cast<float>((0.2 - 0.5) / 0.5));
  CHECK(o[2] == Approx(-0.6f));
  CHECK(o[3] == expect(128, 0.5, 0.5));
  CHECK(o[3] == Approx(1.0 / 255.0));
}

TEST_CASE("normalize: per-channel mean and std, HWC in and CHW out", "[plugins][normalize]") {
  const list mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  // 1x2 image, pixels (10, 20, 30) and (200, 210, 220).
  Tensor in = hwc({10, 20, 30, 200, 210, 220}, 1, 2, 3), out;
  Rng rng(0, 0, 0, 0, 0);
  make({{"mean", mean}, {"std", std}}).apply(in, out, rng);
  REQUIRE(out.shape() == contra::Shape{3, 1, 2});
  const float* o = out.data<float>();
  CHECK(o[0] == expect(10, 0.485, 0.229));
  CHECK(o[1] == expect(200, 0.485, 0.229));
  CHECK(o[2] == expect(20, 0.456, 0.224));
  CHECK(o[3] == expect(210, 0.456, 0.224));
  CHECK(o[4] == expect(30, 0.406, 0.225));
  CHECK(o[5] == expect(220, 0.406, 0.225));
  CHECK(o[0] == Approx((10 / 255.0 - 0.485) / 0.229));
}

TEST_CASE("normalize: one value applies to every channel, any channel count", "[plugins][normalize]") {
  for (std::int64_t c : {1, 2, 3, 4}) {
    Tensor in = Tensor::empty({3, 5, c}, DType::u8), out;
    for (std::int64_t k = 0; k < in.numel(); ++k) in.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(k * 7);
    Rng rng(0, 0, 0, 0, 0);
    make({{"mean", list{0.25}}, {"std", list{2.0}}}).apply(in, out, rng);
    REQUIRE(out.shape() == contra::Shape{c, 3, 5});
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t i = 0; i < 15; ++i)
        REQUIRE(out.data<float>()[ch * 15 + i] == expect(int((i * c + ch) * 7 % 256), 0.25, 2.0));
  }
}

TEST_CASE("normalize: output format is f32 of the same geometry", "[plugins][normalize]") {
  CHECK(make({}).output_format(ImageFormat{{28, 20, 1}, DType::u8}) == ImageFormat{{28, 20, 1}, DType::f32});
  CHECK(make({{"mean", list{0.1, 0.2, 0.3}}}).output_format(ImageFormat{{8, 8, 3}, DType::u8}) ==
        ImageFormat{{8, 8, 3}, DType::f32});
}

TEST_CASE("normalize: rejects a mean or std list that does not match the channels", "[plugins][normalize]") {
  auto n = make({{"mean", list{0.485, 0.456, 0.406}}});
  CHECK_THROWS_AS(n.output_format(ImageFormat{{28, 28, 1}, DType::u8}), contra::ConfigError);
  CHECK_THROWS_WITH(n.output_format(ImageFormat{{28, 28, 1}, DType::u8}),
                    "normalize: mean has 3 values but the image has 1 channel (give 1 value for all channels, "
                    "or 1 per channel)");
  CHECK_THROWS_WITH(make({{"std", list{0.2, 0.3}}}).output_format(ImageFormat{{28, 28, 3}, DType::u8}),
                    "normalize: std has 2 values but the image has 3 channels (give 1 value for all channels, "
                    "or 1 per channel)");
  Tensor in = Tensor::zeros({2, 2, 1}, DType::u8), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_AS(n.apply(in, out, rng), contra::UsageError);
}

TEST_CASE("normalize: rejects f32 input, e.g. a second normalize", "[plugins][normalize]") {
  CHECK_THROWS_AS(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}), contra::ConfigError);
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "normalize: expects u8 HWC images, but the image here is already f32 CHW; normalize must "
                    "appear once, as the last step of a chain");
  CHECK_THROWS_WITH(make({}).output_format(ImageFormat{{28, 28, 5}, DType::u8}),
                    "normalize: expects 1 to 4 channels, but the image has 5");
}
