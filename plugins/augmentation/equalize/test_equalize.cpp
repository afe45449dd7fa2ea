#include "equalize.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::ImageFormat;
using contra::Rng;
using contra::Tensor;
using contra::plugins::Equalize;

namespace {

Equalize make(double p) { return Equalize(Equalize::schema().bind({{"p", p}})); }

/// A 1-channel h x w image holding `counts[k]` copies of `levels[k]`, in order.
Tensor runs(std::int64_t h, std::int64_t w, std::vector<int> levels, std::vector<int> counts) {
  Tensor t = Tensor::empty({h, w, 1}, DType::u8);
  std::int64_t k = 0;
  for (std::size_t i = 0; i < levels.size(); ++i)
    for (int j = 0; j < counts[i]; ++j) t.data<std::uint8_t>()[k++] = static_cast<std::uint8_t>(levels[i]);
  REQUIRE(k == t.numel());
  return t;
}

std::vector<int> values(const Tensor& t) {
  const std::uint8_t* p = t.data<std::uint8_t>();
  return std::vector<int>(p, p + t.numel());
}

/// PIL's ImageOps.equalize for one band, transcribed line by line:
///   histo = [_f for _f in h if _f]
///   if len(histo) <= 1: lut = range(256)
///   else: step = (sum(histo) - histo[-1]) // 255
///         if not step: lut = range(256)
///         else: n = step // 2; for i in range(256): lut.append(n // step); n = n + h[i]
/// and image.point(lut), which clips the table to 0..255.
std::vector<int> pil_equalize(const std::vector<int>& band) {
  std::vector<std::int64_t> h(256, 0);
  for (int v : band) ++h[std::size_t(v)];
  std::vector<std::int64_t> histo;
  for (auto f : h)
    if (f) histo.push_back(f);
  std::vector<int> lut(256);
  for (int i = 0; i < 256; ++i) lut[std::size_t(i)] = i;
  if (histo.size() > 1) {
    std::int64_t sum = 0;
    for (auto f : histo) sum += f;
    const std::int64_t step = (sum - histo.back()) / 255;
    if (step) {
      std::int64_t n = step / 2;
      for (int i = 0; i < 256; ++i) {
        lut[std::size_t(i)] = int(std::min<std::int64_t>(n / step, 255));
        n += h[std::size_t(i)];
      }
    }
  }
  std::vector<int> out;
  for (int v : band) out.push_back(lut[std::size_t(v)]);
  return out;
}

}  // namespace

TEST_CASE("equalize: schema is well formed and p must lie in [0, 1]", "[plugins][equalize]") {
  CHECK_NOTHROW(Equalize::schema().check_well_formed());
  CHECK_THROWS_WITH(make(1.5), "error: equalize.p: expected a value in [0, 1], found 1.5\n");
}

TEST_CASE("equalize: 4 levels on 40x40 map as worked by hand", "[plugins][equalize]") {
  // 400 x 0, 500 x 50, 500 x 100, 200 x 250: step = (1600 - 200) // 255 = 5,
  // step // 2 = 2: lut[0] = 2 // 5 = 0, lut[50] = 402 // 5 = 80,
  // lut[100] = 902 // 5 = 180, lut[250] = min(255, 1402 // 5 = 280) = 255.
  Tensor in = runs(40, 40, {0, 50, 100, 250}, {400, 500, 500, 200}), out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  REQUIRE(out.shape() == in.shape());
  CHECK(values(out) == values(runs(40, 40, {0, 80, 180, 255}, {400, 500, 500, 200})));
}

TEST_CASE("equalize: equal counts spread to 0, 85, 170, 255", "[plugins][equalize]") {
  // 255 each of 10, 20, 30, 200: step = 765 // 255 = 3, step // 2 = 1:
  // 1 // 3 = 0, 256 // 3 = 85, 511 // 3 = 170, 766 // 3 = 255.
  Tensor in = runs(30, 34, {10, 20, 30, 200}, {255, 255, 255, 255}), out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  CHECK(values(out) == values(runs(30, 34, {0, 85, 170, 255}, {255, 255, 255, 255})));
}

TEST_CASE("equalize: the table is clamped to 255 as torchvision does", "[plugins][equalize]") {
  // 200 x 10, 200 x 20, 100 x 30, 100 x 200: step = 500 // 255 = 1, step // 2 = 0:
  // lut = 0, 200, min(255, 400), min(255, 500).
  std::array<std::int64_t, 256> hist{};
  hist[10] = 200;
  hist[20] = 200;
  hist[30] = 100;
  hist[200] = 100;
  std::array<std::uint8_t, 256> lut;
  CHECK(contra::plugins::equalize_lut(hist, lut));
  CHECK(int(lut[0]) == 0);
  CHECK(int(lut[10]) == 0);
  CHECK(int(lut[11]) == 200);
  CHECK(int(lut[20]) == 200);
  CHECK(int(lut[21]) == 255);
  CHECK(int(lut[30]) == 255);
  CHECK(int(lut[200]) == 255);
}

TEST_CASE("equalize: step 0 leaves the channel unchanged", "[plugins][equalize]") {
  // Fewer than 256 values below the highest level present: step = 0.
  Tensor in = runs(2, 4, {0, 1, 2, 3}, {2, 3, 1, 2}), out;
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  CHECK(values(out) == values(in));
  // A constant channel (one level) also has step 0, however large.
  Tensor flat = runs(32, 32, {77}, {1024});
  make(1.0).apply(flat, out, rng);
  CHECK(values(out) == values(flat));
  std::array<std::int64_t, 256> hist{};
  hist[5] = 254;
  hist[9] = 1000;  // 254 below the last level: step = 0
  std::array<std::uint8_t, 256> lut;
  CHECK_FALSE(contra::plugins::equalize_lut(hist, lut));
  for (int v = 0; v < 256; ++v) REQUIRE(int(lut[std::size_t(v)]) == v);
}

TEST_CASE("equalize: each channel is equalised on its own", "[plugins][equalize]") {
  // Channel 0 as the hand-worked 40x40 case, channel 1 constant, channel 2 its
  // reverse order (same histogram, so the same table).
  Tensor a = runs(40, 40, {0, 50, 100, 250}, {400, 500, 500, 200});
  Tensor in = Tensor::empty({40, 40, 3}, DType::u8), out;
  for (std::int64_t i = 0; i < 1600; ++i) {
    in.data<std::uint8_t>()[3 * i] = a.data<std::uint8_t>()[i];
    in.data<std::uint8_t>()[3 * i + 1] = 9;
    in.data<std::uint8_t>()[3 * i + 2] = a.data<std::uint8_t>()[1599 - i];
  }
  Rng rng(0, 0, 0, 0, 0);
  make(1.0).apply(in, out, rng);
  int map[256] = {};
  map[50] = 80;
  map[100] = 180;
  map[250] = 255;
  for (std::int64_t i = 0; i < 1600; ++i) {
    REQUIRE(int(out.data<std::uint8_t>()[3 * i]) == map[a.data<std::uint8_t>()[i]]);
    REQUIRE(int(out.data<std::uint8_t>()[3 * i + 1]) == 9);
    REQUIRE(int(out.data<std::uint8_t>()[3 * i + 2]) == map[a.data<std::uint8_t>()[1599 - i]]);
  }
}

TEST_CASE("equalize: matches PIL's formula on random skewed images", "[plugins][equalize]") {
  for (std::int64_t c : {1, 2, 3, 4}) {
    for (std::uint64_t key = 0; key < 20; ++key) {
      Rng rng(11, c, key, 0, 0);
      const std::int64_t h = rng.integer(1, 40), w = rng.integer(1, 40);
      Tensor in = Tensor::empty({h, w, c}, DType::u8), out;
      // Mostly dark values with a few bright ones; some keys use few levels.
      const int levels = key % 3 == 0 ? 3 : 256;
      for (std::int64_t k = 0; k < in.numel(); ++k) {
        const double u = rng.uniform();
        in.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(int(u * u * levels) * (255 / (levels - 1)) % 256);
      }
      make(1.0).apply(in, out, rng);
      for (std::int64_t ch = 0; ch < c; ++ch) {
        std::vector<int> band, got;
        for (std::int64_t i = 0; i < h * w; ++i) {
          band.push_back(in.data<std::uint8_t>()[i * c + ch]);
          got.push_back(out.data<std::uint8_t>()[i * c + ch]);
        }
        INFO(h << "x" << w << "x" << c << " channel " << ch);
        REQUIRE(got == pil_equalize(band));
      }
    }
  }
}

TEST_CASE("equalize: p=0 is the identity and frequency follows p", "[plugins][equalize]") {
  Tensor in = runs(40, 40, {0, 50, 100, 250}, {400, 500, 500, 200}), out;
  for (int k = 0; k < 20; ++k) {
    Rng rng(1, 0, static_cast<std::uint64_t>(k), 0, 0);
    make(0.0).apply(in, out, rng);
    REQUIRE(values(out) == values(in));
  }
  auto e = make(0.3);
  const int n = 5000;
  int hits = 0;
  for (int k = 0; k < n; ++k) {
    Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
    e.apply(in, out, rng);
    hits += out.data<std::uint8_t>()[1599] == 255;
  }
  const double sigma = std::sqrt(0.3 * 0.7 / n);
  INFO("observed " << double(hits) / n);
  CHECK(std::abs(double(hits) / n - 0.3) < 4 * sigma);
}

TEST_CASE("equalize: same rng key gives the same output", "[plugins][equalize]") {
  Tensor in = runs(40, 40, {0, 50, 100, 250}, {400, 500, 500, 200}), a, b;
  auto e = make(0.5);
  for (int k = 0; k < 20; ++k) {
    Rng r1(7, 1, static_cast<std::uint64_t>(k), 0, 2), r2(7, 1, static_cast<std::uint64_t>(k), 0, 2);
    e.apply(in, a, r1);
    e.apply(in, b, r2);
    REQUIRE(values(a) == values(b));
  }
}

TEST_CASE("equalize: reuses the output buffer", "[plugins][equalize]") {
  Tensor in = runs(40, 40, {0, 50, 100, 250}, {400, 500, 500, 200}), out;
  auto e = make(0.5);
  Rng rng(0, 0, 0, 0, 0);
  e.apply(in, out, rng);
  const void* first = out.raw();
  for (int k = 0; k < 20; ++k) e.apply(in, out, rng);
  CHECK(out.raw() == first);
}

TEST_CASE("equalize: output format keeps u8 HWC and refuses f32", "[plugins][equalize]") {
  ImageFormat u8{{28, 28, 3}, DType::u8};
  CHECK(make(1.0).output_format(u8) == u8);
  CHECK_THROWS_WITH(make(1.0).output_format(ImageFormat{{28, 28, 1}, DType::f32}),
                    "equalize: expects u8 HWC images, but the image here is f32 CHW; place it before normalize, "
                    "which must be the last step of a chain");
  Tensor f = Tensor::zeros({1, 4, 4}, DType::f32), out;
  Rng rng(0, 0, 0, 0, 0);
  CHECK_THROWS_WITH(make(1.0).apply(f, out, rng), "equalize: expects a u8 [H, W, C] image, got f32 [1, 4, 4]");
}
