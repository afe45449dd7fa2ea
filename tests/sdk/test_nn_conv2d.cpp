#include <contra/cpu.hpp>
#include <contra/nn/conv2d.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace contra;
using contra::test::random_tensor;

namespace {

struct ConvCase {
  int kernel, stride, padding;
  std::int64_t n, h, w, cin, cout;
  bool bias;
};

// Direct loops in double: x NHWC, weight OIHW, result NHWC.
std::vector<double> reference_conv(const Tensor& x, const Tensor& weight, const Tensor* bias, int k, int s, int p) {
  const std::int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), ci = x.dim(3), co = weight.dim(0);
  const std::int64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  const float* px = x.data<float>();
  const float* pw = weight.data<float>();
  std::vector<double> y(static_cast<std::size_t>(n * oh * ow * co));
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t o = 0; o < co; ++o) {
          double acc = bias ? bias->data<float>()[o] : 0.0;
          for (int r = 0; r < k; ++r)
            for (int c = 0; c < k; ++c) {
              std::int64_t yi = i * s - p + r, xj = j * s - p + c;
              if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
              for (std::int64_t q = 0; q < ci; ++q)
                acc += static_cast<double>(px[((b * h + yi) * w + xj) * ci + q]) * pw[((o * ci + q) * k + r) * k + c];
            }
          y[static_cast<std::size_t>(((b * oh + i) * ow + j) * co + o)] = acc;
        }
  return y;
}

// Largest |a − r| / (1 + |r|).
double worst_error(const Tensor& a, const std::vector<double>& r) {
  REQUIRE(static_cast<std::size_t>(a.numel()) == r.size());
  double worst = 0;
  for (std::size_t i = 0; i < r.size(); ++i)
    worst = std::max(worst, std::fabs(a.data<float>()[i] - r[i]) / (1.0 + std::fabs(r[i])));
  return worst;
}

// ||a − b|| / ||b||.
double relative_distance(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    double d = static_cast<double>(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d;
    den += static_cast<double>(b.data<float>()[i]) * b.data<float>()[i];
  }
  return std::sqrt(num / den);
}

nn::Conv2d make(const ConvCase& c, Precision prec = Precision::f32, std::uint64_t seed = 5) {
  Rng init(seed, 0, 0, 0, 0);
  return nn::Conv2d("conv", c.cin, c.cout, c.kernel, c.stride, c.padding, c.bias, init, prec);
}

// One forward + backward from zeroed grads; returns dx and the grads.
std::vector<Tensor> run_step(nn::Conv2d& conv, const Tensor& x, const Tensor& dy) {
  std::vector<Parameter*> ps;
  conv.parameters(ps);
  for (Parameter* p : ps) p->grad.zero();
  conv.forward(x, Mode::train);
  std::vector<Tensor> out{conv.backward(dy).clone()};
  for (Parameter* p : ps) out.push_back(p->grad.clone());
  return out;
}

}  // namespace

TEST_CASE("conv2d: parameters follow PyTorch's layout and default initialisation", "[sdk][nn][conv2d]") {
  Rng init(1, 0, 0, 0, 0);
  nn::Conv2d conv("enc.conv1", 3, 8, 3, 1, 1, true, init);
  std::vector<Parameter*> ps;
  conv.parameters(ps);
  REQUIRE(ps.size() == 2);
  CHECK(ps[0]->name == "enc.conv1.weight");
  CHECK(ps[0]->value.shape() == Shape{8, 3, 3, 3});
  CHECK(ps[0]->decay);
  CHECK(ps[1]->name == "enc.conv1.bias");
  CHECK(ps[1]->value.shape() == Shape{8});
  CHECK_FALSE(ps[1]->decay);
  const double bound = 1.0 / std::sqrt(27.0);
  for (Parameter* p : ps) {
    CHECK(p->grad.shape() == p->value.shape());
    float lo = 0, hi = 0;
    for (std::int64_t i = 0; i < p->value.numel(); ++i) {
      float v = p->value.data<float>()[i];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      CHECK(p->grad.data<float>()[i] == 0.0f);
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (p->value.numel() >= 20) CHECK(hi - lo > bound);  // actually spread over the range
  }
  Rng again(1, 0, 0, 0, 0);
  nn::Conv2d twin("enc.conv1", 3, 8, 3, 1, 1, true, again);
  CHECK(relative_distance(twin.weight().value, conv.weight().value) == 0.0);

  Rng init2(1, 0, 0, 0, 0);
  nn::Conv2d nobias("c", 1, 2, 5, 1, 0, false, init2);
  ps.clear();
  nobias.parameters(ps);
  CHECK(ps.size() == 1);
  CHECK(nobias.bias() == nullptr);
}

TEST_CASE("conv2d: forward matches direct loops", "[sdk][nn][conv2d]") {
  const ConvCase cases[] = {
      {3, 1, 1, 2, 5, 7, 3, 4, true},  {3, 2, 0, 2, 7, 9, 1, 2, false}, {1, 1, 0, 3, 4, 3, 3, 5, true},
      {5, 2, 2, 1, 9, 6, 3, 8, true},  {2, 3, 1, 2, 8, 11, 1, 3, true}, {3, 1, 0, 2, 3, 3, 3, 2, false},
      {3, 2, 1, 2, 6, 5, 3, 16, true}, {7, 2, 3, 1, 11, 13, 3, 17, true},
  };
  int id = 0;
  for (const ConvCase& c : cases) {
    INFO("case " << id << ": k" << c.kernel << " s" << c.stride << " p" << c.padding << " " << c.h << "x" << c.w
                 << " C " << c.cin << "->" << c.cout << (c.bias ? " bias" : ""));
    nn::Conv2d conv = make(c);
    Tensor x = random_tensor({c.n, c.h, c.w, c.cin}, 100 + id++);
    for (Mode mode : {Mode::train, Mode::eval}) {
      const Tensor& y = conv.forward(x, mode);
      REQUIRE(y.shape() == conv.output_shape(x.shape()));
      REQUIRE(y.shape() == Shape{c.n, (c.h + 2 * c.padding - c.kernel) / c.stride + 1,
                                 (c.w + 2 * c.padding - c.kernel) / c.stride + 1, c.cout});
      CHECK(worst_error(y, reference_conv(x, conv.weight().value, conv.bias() ? &conv.bias()->value : nullptr,
                                          c.kernel, c.stride, c.padding)) < 1e-5);
    }
  }
}

TEST_CASE("conv2d: gradients match finite differences", "[sdk][nn][conv2d]") {
  const ConvCase cases[] = {
      {3, 1, 1, 2, 5, 7, 3, 4, true}, {3, 2, 0, 2, 5, 7, 3, 4, true},  {3, 2, 1, 2, 5, 7, 3, 4, false},
      {1, 1, 0, 2, 5, 7, 3, 4, true}, {2, 2, 1, 2, 5, 7, 1, 4, true},
  };
  int id = 0;
  for (const ConvCase& c : cases) {
    INFO("case " << id << ": k" << c.kernel << " s" << c.stride << " p" << c.padding);
    nn::Conv2d conv = make(c);
    Tensor x = random_tensor({c.n, c.h, c.w, c.cin}, 200 + id++);
    CHECK(test::check_layer_gradients(conv, x) <= 1.0);
  }
}

TEST_CASE("conv2d: backward adds into the parameters' grads", "[sdk][nn][conv2d]") {
  const ConvCase c{3, 2, 1, 2, 5, 7, 3, 4, true};
  nn::Conv2d conv = make(c);
  Tensor x = random_tensor({2, 5, 7, 3}, 1);
  Tensor dy = random_tensor(conv.output_shape(x.shape()), 2);
  std::vector<Tensor> once = run_step(conv, x, dy);

  conv.weight().grad.zero();
  conv.bias()->grad.zero();
  conv.forward(x, Mode::train);
  conv.backward(dy);
  Tensor dx = conv.backward(dy).clone();  // a second backward of the same forward
  CHECK(relative_distance(dx, once[0]) == 0.0);
  for (int k = 0; k < 2; ++k) {
    const Tensor& g = k == 0 ? conv.weight().grad : conv.bias()->grad;
    for (std::int64_t i = 0; i < g.numel(); ++i) REQUIRE(g.data<float>()[i] == 2 * once[1 + k].data<float>()[i]);
  }

  // want_input_grad = false: no dL/dx, parameter grads still accumulate.
  const Tensor& none = conv.backward(dy, false);
  CHECK_FALSE(none.defined());
  for (std::int64_t i = 0; i < conv.bias()->grad.numel(); ++i)
    CHECK(conv.bias()->grad.data<float>()[i] == Approx(3 * once[2].data<float>()[i]).epsilon(1e-6));
}

TEST_CASE("conv2d: bf16 forward and gradients stay close to f32", "[sdk][nn][conv2d]") {
  if (!contra::cpu_capabilities().bf16) {
    WARN("SKIPPED: " << contra::bf16_unavailable_reason());
    return;
  }
  const ConvCase cases[] = {{3, 1, 1, 2, 6, 7, 16, 32, true}, {3, 2, 1, 2, 9, 7, 3, 8, true},
                            {1, 1, 0, 2, 5, 5, 8, 4, false}};
  int id = 0;
  for (const ConvCase& c : cases) {
    INFO("case " << id);
    nn::Conv2d f32 = make(c), bf16 = make(c, Precision::bf16);
    CHECK(bf16.precision() == Precision::bf16);
    Tensor x = random_tensor({c.n, c.h, c.w, c.cin}, 300 + id);
    Tensor dy = random_tensor(f32.output_shape(x.shape()), 400 + id++);
    Tensor y32 = f32.forward(x, Mode::eval).clone();
    CHECK(relative_distance(bf16.forward(x, Mode::eval), y32) < 1e-2);
    std::vector<Tensor> g32 = run_step(f32, x, dy), g16 = run_step(bf16, x, dy);
    CHECK(relative_distance(bf16.forward(x, Mode::train), y32) < 1e-2);
    for (std::size_t k = 0; k < g32.size(); ++k) {
      INFO("gradient " << k << " (dx, weight, bias)");
      CHECK(relative_distance(g16[k], g32[k]) < 1e-2);
    }
  }
}

TEST_CASE("conv2d: a new batch size gets its own primitives, old ones stay right", "[sdk][nn][conv2d]") {
  const ConvCase c{3, 1, 1, 2, 5, 7, 3, 4, true};
  nn::Conv2d conv = make(c), fresh = make(c);
  Tensor x2 = random_tensor({2, 5, 7, 3}, 11), x3 = random_tensor({3, 5, 7, 3}, 12);
  Tensor dy3 = random_tensor({3, 5, 7, 4}, 13), dy2 = random_tensor({2, 5, 7, 4}, 14);
  auto ref = [&](const Tensor& x) {
    return reference_conv(x, conv.weight().value, &conv.bias()->value, c.kernel, c.stride, c.padding);
  };
  CHECK(worst_error(conv.forward(x2, Mode::train), ref(x2)) < 1e-5);
  CHECK(worst_error(conv.forward(x3, Mode::train), ref(x3)) < 1e-5);
  CHECK(conv.cached_shapes() == 2);
  // Backward of the N = 3 forward, against a layer that only saw N = 3.
  std::vector<Tensor> a = run_step(conv, x3, dy3), b = run_step(fresh, x3, dy3);
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(relative_distance(a[k], b[k]) < 1e-6);
  // Back to N = 2: reuses its plan.
  a = run_step(conv, x2, dy2);
  b = run_step(fresh, x2, dy2);
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(relative_distance(a[k], b[k]) < 1e-6);
  CHECK(worst_error(conv.forward(x2, Mode::eval), ref(x2)) < 1e-5);
  CHECK(conv.cached_shapes() == 2);
  // An eval forward in between does not disturb the pending backward.
  conv.forward(x3, Mode::train);
  conv.forward(x2, Mode::eval);
  for (std::int64_t n = 4; n < 9; ++n) conv.forward(random_tensor({n, 5, 7, 3}, n), Mode::eval);
  CHECK(conv.cached_shapes() == 4);
  fresh.forward(x3, Mode::train);
  CHECK(relative_distance(conv.backward(dy3), fresh.backward(dy3)) < 1e-6);
}

TEST_CASE("conv2d: misuse is reported with the layer's name", "[sdk][nn][conv2d]") {
  Rng init(1, 0, 0, 0, 0);
  nn::Conv2d conv("enc.conv1", 3, 4, 3, 2, 0, true, init);
  CHECK_THROWS_AS(conv.backward(Tensor::zeros({2, 2, 3, 4}, DType::f32)), UsageError);
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({2, 2, 3, 4}, DType::f32)),
                    "conv2d 'enc.conv1': backward() called before any train-mode forward()");
  CHECK_THROWS_WITH(conv.forward(Tensor::zeros({2, 5, 7}, DType::f32), Mode::train),
                    "conv2d 'enc.conv1': expected an NHWC input [N, H, W, 3] of rank 4, got shape [2, 5, 7]");
  CHECK_THROWS_WITH(conv.forward(Tensor::zeros({2, 5, 7, 4}, DType::f32), Mode::train),
                    "conv2d 'enc.conv1': expected 3 input channels (NHWC [N, H, W, 3]), got shape [2, 5, 7, 4]");
  CHECK_THROWS_WITH(conv.forward(Tensor::zeros({2, 2, 7, 3}, DType::f32), Mode::train),
                    "conv2d 'enc.conv1': input of shape [2, 2, 7, 3] is smaller than the 3x3 kernel with padding 0");
  CHECK_THROWS_WITH(conv.forward(Tensor::zeros({2, 5, 7, 3}, DType::i64), Mode::train),
                    "conv2d 'enc.conv1': expected an f32 input, got i64");
  conv.forward(Tensor::zeros({2, 5, 7, 3}, DType::f32), Mode::eval);
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({2, 2, 3, 4}, DType::f32)),
                    "conv2d 'enc.conv1': backward() called before any train-mode forward()");
  conv.forward(Tensor::zeros({2, 5, 7, 3}, DType::f32), Mode::train);
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({2, 3, 3, 4}, DType::f32)),
                    "conv2d 'enc.conv1': gradient of shape [2, 3, 3, 4] does not match the output shape "
                    "[2, 2, 3, 4] of the last train-mode forward()");
  CHECK_NOTHROW(conv.backward(Tensor::zeros({2, 2, 3, 4}, DType::f32)));
  Rng again(1, 0, 0, 0, 0);
  CHECK_THROWS_WITH(nn::Conv2d("bad", 3, 4, 0, 1, 0, true, again),
                    "conv2d 'bad': in_channels, out_channels, kernel and stride must be positive and padding "
                    "non-negative (got 3, 4, 0, 1, 0)");
}

TEST_CASE("conv2d: Winograd is taken where it applies and pays, and refused where it does not",
          "[sdk][nn][conv2d][winograd]") {
  using nn::ConvAlgorithm;
  CHECK(make({3, 1, 1, 4, 8, 8, 32, 32, false}).uses_winograd());
  CHECK(make({3, 1, 0, 4, 8, 8, 32, 64, true}).uses_winograd());
  CHECK(make({3, 1, 1, 4, 8, 8, 16, 64, false}).uses_winograd());
  CHECK_FALSE(make({3, 1, 1, 4, 8, 8, 16, 16, false}).uses_winograd());  // too few channel pairs to pay
  CHECK_FALSE(make({3, 1, 1, 4, 8, 8, 24, 24, false}).uses_winograd());
  CHECK_FALSE(make({3, 1, 1, 4, 8, 8, 8, 256, false}).uses_winograd());  // too few channels on one side
  CHECK_FALSE(make({3, 2, 1, 4, 8, 8, 16, 16, false}).uses_winograd());  // strided
  CHECK_FALSE(make({1, 1, 0, 4, 8, 8, 16, 16, false}).uses_winograd());  // 1x1
  nn::Conv2d narrow = make({3, 1, 2, 4, 8, 8, 3, 5, false});
  narrow.set_algorithm(ConvAlgorithm::winograd);
  CHECK(narrow.uses_winograd());
  nn::Conv2d wide = make({3, 1, 1, 4, 8, 8, 32, 32, false});
  wide.set_algorithm(ConvAlgorithm::direct);
  CHECK_FALSE(wide.uses_winograd());
  nn::Conv2d strided = make({3, 2, 1, 4, 8, 8, 16, 16, false});
  CHECK_THROWS_WITH(strided.set_algorithm(ConvAlgorithm::winograd),
                    "conv2d 'conv': Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, padding <= 2 and f32 "
                    "precision (got kernel 3, stride 2, padding 1, f32)");
  nn::Conv2d five = make({5, 1, 2, 4, 8, 8, 16, 16, false});
  CHECK_THROWS_WITH(five.set_algorithm(ConvAlgorithm::winograd),
                    "conv2d 'conv': Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, padding <= 2 and f32 "
                    "precision (got kernel 5, stride 1, padding 2, f32)");
  if (cpu_capabilities().bf16) CHECK_FALSE(make({3, 1, 1, 4, 8, 8, 16, 16, false}, Precision::bf16).uses_winograd());
}

TEST_CASE("conv2d: Winograd matches the direct kernels, and its backward adds into the grads",
          "[sdk][nn][conv2d][winograd]") {
  using nn::ConvAlgorithm;
  for (const ConvCase& c : {ConvCase{3, 1, 1, 5, 9, 7, 16, 24, true}, ConvCase{3, 1, 0, 3, 6, 6, 20, 16, false},
                            ConvCase{3, 1, 2, 2, 5, 4, 17, 16, true}}) {
    INFO("input " << c.n << "x" << c.h << "x" << c.w << "x" << c.cin << ", padding " << c.padding);
    nn::Conv2d wino = make(c), direct = make(c);
    wino.set_algorithm(ConvAlgorithm::winograd);
    direct.set_algorithm(ConvAlgorithm::direct);
    REQUIRE(wino.uses_winograd());
    Tensor x = random_tensor({c.n, c.h, c.w, c.cin}, 31), dy = random_tensor(wino.output_shape(x.shape()), 32);
    CHECK(worst_error(wino.forward(x, Mode::eval),
                      reference_conv(x, wino.weight().value, c.bias ? &wino.bias()->value : nullptr, 3, 1, c.padding)) < 1e-5);
    std::vector<Tensor> a = run_step(wino, x, dy), b = run_step(direct, x, dy);
    for (std::size_t k = 0; k < a.size(); ++k) {
      INFO("gradient " << k << " (dx, weight, bias)");
      CHECK(relative_distance(a[k], b[k]) < 1e-5);
    }
    // A second backward of the same forward adds the same again; no dL/dx
    // when not asked, parameter grads still accumulate.
    wino.backward(dy);
    CHECK(relative_distance(wino.weight().grad, b[1]) == Approx(1.0).margin(1e-5));
    const Tensor& none = wino.backward(dy, false);
    CHECK_FALSE(none.defined());
    Tensor three = b[1].clone();
    for (std::int64_t i = 0; i < three.numel(); ++i) three.data<float>()[i] *= 3;
    CHECK(relative_distance(wino.weight().grad, three) < 1e-5);
  }
}
