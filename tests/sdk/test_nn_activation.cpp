#include <contra/nn/activation.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using contra::test::check_layer_gradients;
using contra::test::random_tensor;

namespace {
// Values in ±[0.1, 1]: a finite-difference step of 1e-2 never crosses 0.
Tensor away_from_zero(const Shape& s, std::uint64_t key) {
  Tensor t = random_tensor(s, key, 0.1, 1.0);
  Tensor sign = random_tensor(s, key + 1);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    if (sign.data<float>()[i] < 0) t.data<float>()[i] = -t.data<float>()[i];
  return t;
}
}  // namespace

TEST_CASE("relu: forward is max(x, 0) for any shape", "[sdk][nn][activation]") {
  nn::ReLU relu;
  for (Shape s : {Shape{2, 3, 4, 5}, Shape{7, 9}, Shape{11}}) {
    Tensor x = random_tensor(s, 1);
    const Tensor& y = relu.forward(x, Mode::train);
    REQUIRE(y.shape() == s);
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      float v = x.data<float>()[i];
      CHECK(y.data<float>()[i] == (v > 0 ? v : 0.0f));
    }
  }
  Tensor x = random_tensor({4, 4}, 2);
  const Tensor& y = relu.forward(x, Mode::eval);
  for (std::int64_t i = 0; i < x.numel(); ++i) CHECK(y.data<float>()[i] == std::max(x.data<float>()[i], 0.0f));
}

TEST_CASE("relu: gradients match finite differences away from 0", "[sdk][nn][activation]") {
  nn::ReLU relu;
  CHECK(check_layer_gradients(relu, away_from_zero({2, 3, 3, 4}, 10)) <= 1.0);
  CHECK(check_layer_gradients(relu, away_from_zero({5, 6}, 11)) <= 1.0);
}

TEST_CASE("relu: backward uses the saved output, so x may change after forward", "[sdk][nn][activation]") {
  nn::ReLU relu;
  Tensor x = away_from_zero({3, 5}, 20);
  Tensor keep = x.clone();
  Tensor dy = random_tensor(x.shape(), 21);
  relu.forward(x, Mode::train);
  x.zero();
  const Tensor& dx = relu.backward(dy);
  REQUIRE(dx.shape() == x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i)
    CHECK(dx.data<float>()[i] == (keep.data<float>()[i] > 0 ? dy.data<float>()[i] : 0.0f));
  CHECK_FALSE(relu.backward(dy, false).defined());
}

TEST_CASE("relu: errors", "[sdk][nn][activation]") {
  nn::ReLU relu;
  CHECK_THROWS_WITH(relu.backward(random_tensor({2}, 1)), "ReLU: backward() without a train-mode forward()");
  relu.forward(random_tensor({2, 3}, 1), Mode::eval);
  CHECK_THROWS_WITH(relu.backward(random_tensor({2, 3}, 1)), "ReLU: backward() without a train-mode forward()");
  CHECK_THROWS_WITH(relu.forward(Tensor::zeros({2, 3}, DType::i32), Mode::train),
                    "ReLU: expected an f32 cpu tensor, got i32 cpu [2, 3]");
  relu.forward(random_tensor({2, 3}, 1), Mode::train);
  CHECK_THROWS_WITH(relu.backward(random_tensor({3, 2}, 1)),
                    "ReLU backward dy: expected a f32 tensor of shape [2, 3], got f32 [3, 2]");
}
