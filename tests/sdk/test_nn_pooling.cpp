#include <contra/nn/pooling.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

using namespace contra;
using contra::test::check_layer_gradients;
using contra::test::random_tensor;

namespace {

enum class Kind { max, avg_include, avg_exclude };

// Naive NHWC pooling in double, PyTorch's semantics (ceil_mode = false).
std::vector<double> ref_pool(const Tensor& x, Kind kind, int k, int s, int p, Shape& out) {
  const std::int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const std::int64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  out = Shape{n, oh, ow, c};
  const float* px = x.data<float>();
  std::vector<double> y;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t ch = 0; ch < c; ++ch) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int count = 0;
          for (int di = 0; di < k; ++di)
            for (int dj = 0; dj < k; ++dj) {
              std::int64_t r = i * s - p + di, q = j * s - p + dj;
              if (r < 0 || r >= h || q < 0 || q >= w) continue;
              double v = px[((b * h + r) * w + q) * c + ch];
              best = std::max(best, v);
              sum += v;
              ++count;
            }
          y.push_back(kind == Kind::max ? best : sum / (kind == Kind::avg_include ? k * k : count));
        }
  return y;
}

void check_close(const Tensor& got, const std::vector<double>& want, double tol = 1e-5) {
  REQUIRE(static_cast<std::size_t>(got.numel()) == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got.data<float>()[i] == Approx(want[i]).margin(tol));
  }
}

// Distinct values 0.05 apart in a shuffled order: no ties, and a
// finite-difference step of 1e-2 never changes which element is the maximum.
Tensor distinct(const Shape& s, std::uint64_t key) {
  Tensor t = Tensor::empty(s, DType::f32);
  std::vector<std::int64_t> order(t.numel());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(key, 0, 0, 0, 0);
  for (std::int64_t i = t.numel() - 1; i > 0; --i) std::swap(order[i], order[rng.integer(0, i)]);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(0.05 * (order[i] - t.numel() / 2));
  return t;
}

struct Config {
  Shape in;
  int k, s, p;
};
const Config configs[] = {
    {{2, 7, 6, 3}, 3, 2, 1},  // odd sizes, padding, stride
    {{1, 5, 5, 2}, 2, 2, 0},  // floor drops the last row and column
    {{2, 4, 5, 3}, 3, 1, 0},
    {{1, 6, 7, 4}, 4, 3, 2},  // padding = kernel/2
    {{1, 1, 1, 2}, 3, 1, 1},  // one pixel, all padding around it
};

}  // namespace

TEST_CASE("max_pool: forward matches a reference (padding, stride, odd sizes)", "[sdk][nn][pooling]") {
  for (const Config& c : configs) {
    nn::MaxPool2d pool(c.k, c.s, c.p);
    Tensor x = random_tensor(c.in, 1, -3.0, -1.0);  // negative: padding must never win
    Shape out;
    std::vector<double> want = ref_pool(x, Kind::max, c.k, c.s, c.p, out);
    INFO("input " << c.in.str() << " k " << c.k << " s " << c.s << " p " << c.p);
    for (Mode m : {Mode::train, Mode::eval}) {
      const Tensor& y = pool.forward(x, m);
      REQUIRE(y.shape() == out);
      check_close(y, want);
    }
  }
}

TEST_CASE("avg_pool: forward matches a reference, count_include_pad true (default) and false",
          "[sdk][nn][pooling]") {
  for (const Config& c : configs) {
    INFO("input " << c.in.str() << " k " << c.k << " s " << c.s << " p " << c.p);
    Tensor x = random_tensor(c.in, 2);
    Shape out;
    nn::AvgPool2d include(c.k, c.s, c.p);
    std::vector<double> want = ref_pool(x, Kind::avg_include, c.k, c.s, c.p, out);
    const Tensor& yi = include.forward(x, Mode::train);
    REQUIRE(yi.shape() == out);
    check_close(yi, want);
    nn::AvgPool2d exclude(c.k, c.s, c.p, false);
    want = ref_pool(x, Kind::avg_exclude, c.k, c.s, c.p, out);
    const Tensor& ye = exclude.forward(x, Mode::eval);
    REQUIRE(ye.shape() == out);
    check_close(ye, want);
  }
}

TEST_CASE("global_avg_pool: forward is the mean over H and W, [N, H, W, C] -> [N, C]", "[sdk][nn][pooling]") {
  nn::GlobalAvgPool pool;
  for (Shape s : {Shape{2, 3, 5, 4}, Shape{3, 1, 1, 2}, Shape{1, 7, 7, 8}}) {
    Tensor x = random_tensor(s, 3);
    std::vector<double> want(s[0] * s[3], 0.0);
    for (std::int64_t b = 0; b < s[0]; ++b)
      for (std::int64_t i = 0; i < s[1] * s[2]; ++i)
        for (std::int64_t c = 0; c < s[3]; ++c) want[b * s[3] + c] += x.data<float>()[(b * s[1] * s[2] + i) * s[3] + c];
    for (auto& v : want) v /= static_cast<double>(s[1] * s[2]);
    const Tensor& y = pool.forward(x, Mode::train);
    REQUIRE(y.shape() == Shape{s[0], s[3]});
    check_close(y, want);
  }
}

TEST_CASE("flatten: forward is a view [N, ...] -> [N, prod], backward reshapes", "[sdk][nn][pooling]") {
  nn::Flatten flat;
  Tensor x = random_tensor({2, 3, 4, 5}, 4);
  const Tensor& y = flat.forward(x, Mode::train);
  CHECK(y.shape() == Shape{2, 60});
  CHECK(y.raw() == x.raw());
  Tensor dy = random_tensor({2, 60}, 5);
  const Tensor& dx = flat.backward(dy);
  CHECK(dx.shape() == x.shape());
  CHECK(dx.raw() == dy.raw());
  CHECK(flat.forward(random_tensor({3, 7}, 6), Mode::eval).shape() == Shape{3, 7});
  CHECK(check_layer_gradients(flat, random_tensor({2, 2, 3, 2}, 7)) <= 1.0);
}

TEST_CASE("max_pool: gradients match finite differences on inputs without ties", "[sdk][nn][pooling]") {
  for (const Config& c : configs) {
    INFO("input " << c.in.str() << " k " << c.k << " s " << c.s << " p " << c.p);
    nn::MaxPool2d pool(c.k, c.s, c.p);
    CHECK(check_layer_gradients(pool, distinct(c.in, 10)) <= 1.0);
  }
}

TEST_CASE("avg_pool: gradients match finite differences", "[sdk][nn][pooling]") {
  for (const Config& c : configs) {
    INFO("input " << c.in.str() << " k " << c.k << " s " << c.s << " p " << c.p);
    nn::AvgPool2d include(c.k, c.s, c.p);
    CHECK(check_layer_gradients(include, random_tensor(c.in, 11)) <= 1.0);
    nn::AvgPool2d exclude(c.k, c.s, c.p, false);
    CHECK(check_layer_gradients(exclude, random_tensor(c.in, 12)) <= 1.0);
  }
}

TEST_CASE("global_avg_pool: backward spreads dy / (H*W)", "[sdk][nn][pooling]") {
  nn::GlobalAvgPool pool;
  CHECK(check_layer_gradients(pool, random_tensor({2, 3, 4, 5}, 13)) <= 1.0);
  Tensor x = random_tensor({2, 2, 3, 4}, 14);
  Tensor dy = random_tensor({2, 4}, 15);
  pool.forward(x, Mode::train);
  const Tensor& dx = pool.backward(dy);
  REQUIRE(dx.shape() == x.shape());
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t i = 0; i < 6; ++i)
      for (std::int64_t c = 0; c < 4; ++c)
        CHECK(dx.data<float>()[(b * 6 + i) * 4 + c] == Approx(dy.data<float>()[b * 4 + c] / 6.0).margin(1e-6));
}

TEST_CASE("pooling: a second shape works, and the first again", "[sdk][nn][pooling]") {
  nn::MaxPool2d maxp(3, 2, 1);
  nn::AvgPool2d avgp(2, 2, 0);
  nn::GlobalAvgPool gap;
  for (Shape s : {Shape{2, 8, 8, 3}, Shape{1, 5, 9, 3}, Shape{2, 8, 8, 3}}) {
    Tensor x = distinct(s, 20 + s.numel());
    Shape out;
    check_close(maxp.forward(x, Mode::train), ref_pool(x, Kind::max, 3, 2, 1, out));
    CHECK(maxp.backward(random_tensor(out, 1)).shape() == s);
    check_close(avgp.forward(x, Mode::train), ref_pool(x, Kind::avg_include, 2, 2, 0, out));
    CHECK(avgp.backward(random_tensor(out, 2)).shape() == s);
    CHECK(gap.forward(x, Mode::train).shape() == Shape{s[0], s[3]});
    CHECK(gap.backward(random_tensor({s[0], s[3]}, 3)).shape() == s);
  }
}

TEST_CASE("pooling: steady state reuses its output and gradient buffers", "[sdk][nn][pooling]") {
  nn::MaxPool2d pool(3, 2, 1);
  Tensor x = distinct({2, 9, 9, 4}, 40), dy = random_tensor({2, 5, 5, 4}, 41);
  const void* y0 = pool.forward(x, Mode::train).raw();
  const void* dx0 = pool.backward(dy).raw();
  for (int i = 0; i < 3; ++i) {
    CHECK(pool.forward(x, Mode::train).raw() == y0);
    CHECK(pool.backward(dy).raw() == dx0);
  }
}

TEST_CASE("pooling: no input gradient when not wanted", "[sdk][nn][pooling]") {
  nn::MaxPool2d pool(2, 2, 0);
  Tensor x = distinct({1, 4, 4, 2}, 30);
  pool.forward(x, Mode::train);
  CHECK_FALSE(pool.backward(random_tensor({1, 2, 2, 2}, 1), false).defined());
}

TEST_CASE("pooling: errors", "[sdk][nn][pooling]") {
  CHECK_THROWS_WITH(nn::MaxPool2d(0, 1, 0), "MaxPool2d: kernel must be >= 1, got 0");
  CHECK_THROWS_WITH(nn::MaxPool2d(2, 0, 0), "MaxPool2d: stride must be >= 1, got 0");
  CHECK_THROWS_WITH(nn::MaxPool2d(3, 1, 2), "MaxPool2d: padding must be in [0, kernel/2] = [0, 1], got 2");
  CHECK_THROWS_WITH(nn::AvgPool2d(2, 1, -1), "AvgPool2d: padding must be in [0, kernel/2] = [0, 1], got -1");

  nn::MaxPool2d maxp(3, 2, 1);
  CHECK_THROWS_WITH(maxp.backward(random_tensor({1, 1, 1, 1}, 1)),
                    "MaxPool2d: backward() without a train-mode forward()");
  CHECK_THROWS_WITH(maxp.forward(random_tensor({2, 3, 4}, 1), Mode::train),
                    "MaxPool2d: expected an f32 cpu NHWC tensor [N, H, W, C], got f32 cpu [2, 3, 4]");
  CHECK_THROWS_WITH(maxp.forward(Tensor::zeros({1, 4, 4, 1}, DType::u8), Mode::train),
                    "MaxPool2d: expected an f32 cpu NHWC tensor [N, H, W, C], got u8 cpu [1, 4, 4, 1]");
  nn::AvgPool2d big(5, 1, 1);
  CHECK_THROWS_WITH(big.forward(random_tensor({1, 2, 6, 1}, 1), Mode::train),
                    "AvgPool2d: input [1, 2, 6, 1] is smaller than the kernel: H + 2*padding and W + 2*padding "
                    "must be >= 5");
  maxp.forward(random_tensor({1, 4, 4, 2}, 1), Mode::eval);
  CHECK_THROWS_WITH(maxp.backward(random_tensor({1, 2, 2, 2}, 1)),
                    "MaxPool2d: backward() without a train-mode forward()");
  maxp.forward(random_tensor({1, 4, 4, 2}, 1), Mode::train);
  CHECK_THROWS_WITH(maxp.backward(random_tensor({1, 4, 4, 2}, 1)),
                    "MaxPool2d backward dy: expected a f32 tensor of shape [1, 2, 2, 2], got f32 [1, 4, 4, 2]");

  nn::GlobalAvgPool gap;
  CHECK_THROWS_WITH(gap.forward(random_tensor({4, 8}, 1), Mode::train),
                    "GlobalAvgPool: expected an f32 cpu NHWC tensor [N, H, W, C], got f32 cpu [4, 8]");
  CHECK_THROWS_WITH(gap.backward(random_tensor({4, 8}, 1)), "GlobalAvgPool: backward() without a train-mode forward()");

  nn::Flatten flat;
  CHECK_THROWS_WITH(flat.forward(random_tensor({4}, 1), Mode::train),
                    "Flatten: expected a tensor of rank >= 2 [N, ...], got f32 cpu [4]");
  CHECK_THROWS_WITH(flat.backward(random_tensor({4, 1}, 1)), "Flatten: backward() without a train-mode forward()");
  flat.forward(random_tensor({2, 2, 2}, 1), Mode::train);
  CHECK_THROWS_WITH(flat.backward(random_tensor({2, 2, 2}, 1)),
                    "Flatten backward dy: expected a f32 tensor of shape [2, 4], got f32 [2, 2, 2]");
}

TEST_CASE("max_pool: ties go to the window's first maximum, NaN propagates", "[sdk][nn][pooling]") {
  nn::MaxPool2d pool(2, 2, 0);
  // One image 2x4, two channels: channel 0 has ties, channel 1 a NaN in the second window.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::empty({1, 2, 4, 2}, DType::f32);
  const float v[] = {3, 1, 3, 2, 5, nan, 0, 4,  // row 0: (c0, c1) at w = 0..3
                     1, 0, 3, 2, 5, 1, 5, 7};   // row 1
  std::copy(v, v + 16, x.data<float>());
  const Tensor& y = pool.forward(x, Mode::train);
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  CHECK(y.data<float>()[0] == 3);
  CHECK(y.data<float>()[1] == 2);
  CHECK(y.data<float>()[2] == 5);
  CHECK(std::isnan(y.data<float>()[3]));
  Tensor dy = Tensor::empty({1, 1, 2, 2}, DType::f32);
  const float g[] = {10, 20, 30, 40};
  std::copy(g, g + 4, dy.data<float>());
  const Tensor& dx = pool.backward(dy);
  // Channel 0, first window: 3 at (0, 0) and (0, 1) -> the first takes all.
  CHECK(dx.data<float>()[0] == 10);
  CHECK(dx.data<float>()[2] == 0);
  // Channel 0, second window: 5 at (0, 2), (1, 2), (1, 3) -> (0, 2).
  CHECK(dx.data<float>()[4] == 30);
  CHECK(dx.data<float>()[12] == 0);
  CHECK(dx.data<float>()[14] == 0);
  // Channel 1, second window: the NaN at (0, 2) takes the gradient.
  CHECK(dx.data<float>()[5] == 40);
  CHECK(dx.data<float>()[15] == 0);
}
