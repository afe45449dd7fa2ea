#include <contra/cpu.hpp>
#include <contra/nn/linear.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace contra;
using contra::test::random_tensor;

namespace {

// y = x·Wᵀ + b in double.
std::vector<double> reference_linear(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const std::int64_t n = x.dim(0), in = x.dim(1), out = weight.dim(0);
  std::vector<double> y(static_cast<std::size_t>(n * out));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias->data<float>()[o] : 0.0;
      for (std::int64_t k = 0; k < in; ++k)
        acc += static_cast<double>(x.data<float>()[i * in + k]) * weight.data<float>()[o * in + k];
      y[static_cast<std::size_t>(i * out + o)] = acc;
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

nn::Linear make(std::int64_t in, std::int64_t out, bool bias, Precision prec = Precision::f32) {
  Rng init(9, 0, 0, 0, 0);
  return nn::Linear("fc", in, out, bias, init, prec);
}

// One forward + backward from zeroed grads; returns dx and the grads.
std::vector<Tensor> run_step(nn::Linear& fc, const Tensor& x, const Tensor& dy) {
  std::vector<Parameter*> ps;
  fc.parameters(ps);
  for (Parameter* p : ps) p->grad.zero();
  fc.forward(x, Mode::train);
  std::vector<Tensor> out{fc.backward(dy).clone()};
  for (Parameter* p : ps) out.push_back(p->grad.clone());
  return out;
}

}  // namespace

TEST_CASE("linear: parameters follow PyTorch's layout and default initialisation", "[sdk][nn][linear]") {
  Rng init(1, 0, 0, 0, 0);
  nn::Linear fc("head.fc1", 20, 6, true, init);
  std::vector<Parameter*> ps;
  fc.parameters(ps);
  REQUIRE(ps.size() == 2);
  CHECK(ps[0]->name == "head.fc1.weight");
  CHECK(ps[0]->value.shape() == Shape{6, 20});
  CHECK(ps[0]->decay);
  CHECK(ps[1]->name == "head.fc1.bias");
  CHECK(ps[1]->value.shape() == Shape{6});
  CHECK_FALSE(ps[1]->decay);
  const double bound = 1.0 / std::sqrt(20.0);
  for (Parameter* p : ps) {
    CHECK(p->grad.shape() == p->value.shape());
    float lo = 0, hi = 0;
    for (std::int64_t i = 0; i < p->value.numel(); ++i) {
      lo = std::min(lo, p->value.data<float>()[i]);
      hi = std::max(hi, p->value.data<float>()[i]);
      CHECK(p->grad.data<float>()[i] == 0.0f);
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (p->value.numel() >= 20) CHECK(hi - lo > bound);  // actually spread over the range
  }
  nn::Linear nobias = make(3, 2, false);
  ps.clear();
  nobias.parameters(ps);
  CHECK(ps.size() == 1);
  CHECK(nobias.bias() == nullptr);
  CHECK(nobias.in_features() == 3);
  CHECK(nobias.out_features() == 2);
}

TEST_CASE("linear: forward matches direct loops", "[sdk][nn][linear]") {
  struct Case {
    std::int64_t n, in, out;
    bool bias;
  };
  const Case cases[] = {{1, 1, 1, true}, {3, 5, 4, true}, {7, 33, 17, false}, {16, 64, 128, true}, {5, 130, 3, true}};
  int id = 0;
  for (const Case& c : cases) {
    INFO("case " << id << ": " << c.n << "x" << c.in << " -> " << c.out);
    nn::Linear fc = make(c.in, c.out, c.bias);
    Tensor x = random_tensor({c.n, c.in}, 100 + id++);
    for (Mode mode : {Mode::train, Mode::eval}) {
      const Tensor& y = fc.forward(x, mode);
      REQUIRE(y.shape() == Shape{c.n, c.out});
      CHECK(worst_error(y, reference_linear(x, fc.weight().value, fc.bias() ? &fc.bias()->value : nullptr)) < 1e-5);
    }
  }
}

TEST_CASE("linear: gradients match finite differences", "[sdk][nn][linear]") {
  struct Case {
    std::int64_t n, in, out;
    bool bias;
  };
  const Case cases[] = {{2, 5, 4, true}, {3, 7, 1, true}, {4, 1, 6, false}, {6, 24, 10, true}};
  int id = 0;
  for (const Case& c : cases) {
    INFO("case " << id);
    nn::Linear fc = make(c.in, c.out, c.bias);
    CHECK(test::check_layer_gradients(fc, random_tensor({c.n, c.in}, 200 + id++)) <= 1.0);
  }
}

TEST_CASE("linear: backward adds into the parameters' grads", "[sdk][nn][linear]") {
  nn::Linear fc = make(6, 5, true);
  Tensor x = random_tensor({4, 6}, 1), dy = random_tensor({4, 5}, 2);
  std::vector<Tensor> once = run_step(fc, x, dy);
  fc.weight().grad.zero();
  fc.bias()->grad.zero();
  fc.forward(x, Mode::train);
  fc.backward(dy);
  Tensor dx = fc.backward(dy).clone();
  CHECK(relative_distance(dx, once[0]) == 0.0);
  // The weight's product accumulates into grad (a sum post-op), so its terms
  // are added in another order than once + once: equal up to float rounding,
  // not bit for bit (kernels differ by ISA). The bias gradient is a plain sum.
  for (int k = 0; k < 2; ++k) {
    INFO((k == 0 ? "weight" : "bias") << " gradient after two backward passes");
    const Tensor& g = k == 0 ? fc.weight().grad : fc.bias()->grad;
    const float* one = once[1 + k].data<float>();
    double scale = 0;
    for (std::int64_t i = 0; i < g.numel(); ++i) scale = std::max(scale, std::fabs(static_cast<double>(one[i])));
    REQUIRE(scale > 0.1);
    for (std::int64_t i = 0; i < g.numel(); ++i) {
      INFO("element " << i << ": " << g.data<float>()[i] << " vs 2 x " << one[i]);
      REQUIRE(std::fabs(g.data<float>()[i] - 2.0 * one[i]) <= 1e-6 * scale);
    }
  }
  const Tensor& none = fc.backward(dy, false);
  CHECK_FALSE(none.defined());
  for (std::int64_t i = 0; i < fc.weight().grad.numel(); ++i)
    CHECK(fc.weight().grad.data<float>()[i] == Approx(3 * once[1].data<float>()[i]).epsilon(1e-6));
}

TEST_CASE("linear: bf16 forward and gradients stay close to f32", "[sdk][nn][linear]") {
  if (!contra::cpu_capabilities().bf16) {
    WARN("SKIPPED: " << contra::bf16_unavailable_reason());
    return;
  }
  struct Case {
    std::int64_t n, in, out;
  };
  const Case cases[] = {{8, 64, 32}, {5, 7, 3}, {32, 128, 16}};
  int id = 0;
  for (const Case& c : cases) {
    INFO("case " << id);
    nn::Linear f32 = make(c.in, c.out, true), bf16 = make(c.in, c.out, true, Precision::bf16);
    CHECK(bf16.precision() == Precision::bf16);
    Tensor x = random_tensor({c.n, c.in}, 300 + id), dy = random_tensor({c.n, c.out}, 400 + id++);
    Tensor y32 = f32.forward(x, Mode::eval).clone();
    CHECK(relative_distance(bf16.forward(x, Mode::eval), y32) < 1e-2);
    std::vector<Tensor> g32 = run_step(f32, x, dy), g16 = run_step(bf16, x, dy);
    CHECK(relative_distance(bf16.forward(x, Mode::train), y32) < 1e-2);
    for (std::size_t k = 0; k < g32.size(); ++k) {
      INFO("gradient " << k << " (dx, weight, bias)");
      CHECK(relative_distance(g16[k], g32[k]) < 1e-2);
    }
    CHECK(relative_distance(g16[2], g32[2]) < 1e-6);  // the bias gradient is summed in f32
  }
}

TEST_CASE("linear: a new batch size gets its own primitives, old ones stay right", "[sdk][nn][linear]") {
  nn::Linear fc = make(6, 5, true), fresh = make(6, 5, true);
  Tensor x2 = random_tensor({2, 6}, 11), x3 = random_tensor({3, 6}, 12);
  Tensor dy2 = random_tensor({2, 5}, 13), dy3 = random_tensor({3, 5}, 14);
  auto ref = [&](const Tensor& x) { return reference_linear(x, fc.weight().value, &fc.bias()->value); };
  CHECK(worst_error(fc.forward(x2, Mode::train), ref(x2)) < 1e-5);
  CHECK(worst_error(fc.forward(x3, Mode::train), ref(x3)) < 1e-5);
  CHECK(fc.cached_shapes() == 2);
  std::vector<Tensor> a = run_step(fc, x3, dy3), b = run_step(fresh, x3, dy3);
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(relative_distance(a[k], b[k]) < 1e-6);
  a = run_step(fc, x2, dy2);
  b = run_step(fresh, x2, dy2);
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(relative_distance(a[k], b[k]) < 1e-6);
  CHECK(fc.cached_shapes() == 2);
  // Eval forwards (also of other batch sizes) between forward and backward.
  fc.forward(x3, Mode::train);
  fc.forward(x3, Mode::eval);
  for (std::int64_t n = 4; n < 9; ++n) fc.forward(random_tensor({n, 6}, n), Mode::eval);
  CHECK(fc.cached_shapes() == 4);
  fresh.forward(x3, Mode::train);
  CHECK(relative_distance(fc.backward(dy3), fresh.backward(dy3)) < 1e-6);
}

TEST_CASE("linear: misuse is reported with the layer's name", "[sdk][nn][linear]") {
  Rng init(1, 0, 0, 0, 0);
  nn::Linear fc("head.fc", 4, 3, true, init);
  CHECK_THROWS_AS(fc.backward(Tensor::zeros({2, 3}, DType::f32)), UsageError);
  CHECK_THROWS_WITH(fc.backward(Tensor::zeros({2, 3}, DType::f32)),
                    "linear 'head.fc': backward() called before any train-mode forward()");
  CHECK_THROWS_WITH(fc.forward(Tensor::zeros({2, 2, 2}, DType::f32), Mode::train),
                    "linear 'head.fc': expected an input [N, 4] of rank 2, got shape [2, 2, 2]");
  CHECK_THROWS_WITH(fc.forward(Tensor::zeros({2, 5}, DType::f32), Mode::train),
                    "linear 'head.fc': expected 4 input features ([N, 4]), got shape [2, 5]");
  CHECK_THROWS_WITH(fc.forward(Tensor::zeros({2, 4}, DType::i32), Mode::train),
                    "linear 'head.fc': expected an f32 input, got i32");
  CHECK_THROWS_WITH(fc.forward(Tensor::zeros({0, 4}, DType::f32), Mode::train),
                    "linear 'head.fc': empty batch (input shape [0, 4])");
  fc.forward(Tensor::zeros({2, 4}, DType::f32), Mode::eval);
  CHECK_THROWS_WITH(fc.backward(Tensor::zeros({2, 3}, DType::f32)),
                    "linear 'head.fc': backward() called before any train-mode forward()");
  fc.forward(Tensor::zeros({2, 4}, DType::f32), Mode::train);
  CHECK_THROWS_WITH(fc.backward(Tensor::zeros({3, 3}, DType::f32)),
                    "linear 'head.fc': gradient of shape [3, 3] does not match the output shape [2, 3] of the "
                    "last train-mode forward()");
  CHECK_NOTHROW(fc.backward(Tensor::zeros({2, 3}, DType::f32)));
  Rng again(1, 0, 0, 0, 0);
  CHECK_THROWS_WITH(nn::Linear("bad", 0, 3, true, again),
                    "linear 'bad': in_features and out_features must be positive (got 0, 3)");
}
