#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/pooling.hpp>
#include <contra/nn/sequential.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using namespace contra::nn;

namespace {
test::GradCheckOptions fine() {
  test::GradCheckOptions o;
  o.eps = 1e-3;
  o.samples = 12;
  return o;
}
}  // namespace

TEST_CASE("sequential: conv then batch norm matches finite differences", "[sdk][nn][sequential]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c", 3, 4, 3, 1, 1, false, init);
  s.emplace<BatchNorm>("bn", 4);
  test::check_layer_gradients(s, test::random_tensor({4, 6, 5, 3}, 2), fine());
}

TEST_CASE("sequential: conv, relu, max pool match finite differences", "[sdk][nn][sequential]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c", 3, 4, 3, 1, 1, false, init);
  s.emplace<ReLU>();
  s.emplace<MaxPool2d>(3, 2, 1);
  test::check_layer_gradients(s, test::random_tensor({2, 6, 5, 3}, 2), fine());
}

TEST_CASE("sequential: two convs match finite differences", "[sdk][nn][sequential]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c1", 3, 4, 3, 1, 1, false, init);
  s.emplace<Conv2d>("c2", 4, 5, 3, 1, 1, false, init);
  test::check_layer_gradients(s, test::random_tensor({2, 6, 5, 3}, 2), fine());
}

TEST_CASE("sequential: conv, global pool, linear match finite differences", "[sdk][nn][sequential]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c1", 3, 4, 3, 1, 1, false, init);
  s.emplace<GlobalAvgPool>();
  s.emplace<Linear>("fc", 4, 3, true, init);
  test::check_layer_gradients(s, test::random_tensor({2, 6, 5, 3}, 2), fine());
}

TEST_CASE("sequential: two conv-bn-relu blocks match finite differences", "[sdk][nn][sequential][x1]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c1", 3, 4, 3, 1, 1, false, init);
  s.emplace<BatchNorm>("bn1", 4);
  s.emplace<ReLU>();
  s.emplace<Conv2d>("c2", 4, 4, 3, 1, 1, false, init);
  s.emplace<BatchNorm>("bn2", 4);
  s.emplace<ReLU>();
  test::check_layer_gradients(s, test::random_tensor({4, 6, 5, 3}, 2), fine());
}

TEST_CASE("sequential: bn relu", "[sdk][nn][sequential][x2]") {
  Sequential s;
  s.emplace<BatchNorm>("bn1", 3);
  s.emplace<ReLU>();
  test::check_layer_gradients(s, test::random_tensor({4, 6, 5, 3}, 2), fine());
}
TEST_CASE("sequential: conv conv relu", "[sdk][nn][sequential][x3]") {
  Rng init(1, 0, 0, 0, 0);
  Sequential s;
  s.emplace<Conv2d>("c1", 3, 4, 3, 1, 1, false, init);
  s.emplace<ReLU>();
  s.emplace<Conv2d>("c2", 4, 4, 3, 1, 1, false, init);
  test::check_layer_gradients(s, test::random_tensor({4, 6, 5, 3}, 2), fine());
}
