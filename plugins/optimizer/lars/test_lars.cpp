#include "lars.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

using contra::plugins::Lars;

namespace {

// Two parameters: a weight w = [3, 4] (decayed and adapted; ||w|| = 5) and a
// bias b = [0.5] (decay = false: neither decayed nor adapted).
struct Model {
  contra::Parameter w{"w", contra::Tensor::empty({2}, contra::DType::f32),
                      contra::Tensor::zeros({2}, contra::DType::f32), true};
  contra::Parameter b{"b", contra::Tensor::empty({1}, contra::DType::f32),
                      contra::Tensor::zeros({1}, contra::DType::f32), false};
  explicit Model(float w0 = 3.0f, float w1 = 4.0f) {
    w.value.data<float>()[0] = w0;
    w.value.data<float>()[1] = w1;
    b.value.data<float>()[0] = 0.5f;
  }
  std::vector<contra::Parameter*> params() { return {&w, &b}; }
  void set_grads(float gw0, float gw1, float gb) {
    w.grad.data<float>()[0] = gw0;
    w.grad.data<float>()[1] = gw1;
    b.grad.data<float>()[0] = gb;
  }
  float w0() const { return w.value.data<float>()[0]; }
  float w1() const { return w.value.data<float>()[1]; }
  float b0() const { return b.value.data<float>()[0]; }
};

}  // namespace

TEST_CASE("lars: schema is well formed with SimCLR defaults", "[plugins][lars]") {
  contra::Schema s = Lars::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("lr") == 0.3);
  CHECK(p.get<double>("momentum") == 0.9);
  CHECK(p.get<double>("weight_decay") == 1e-6);
  CHECK(p.get<double>("trust_coefficient") == 0.001);
  CHECK(p.get<double>("eps") == 1e-9);
}

TEST_CASE("lars: schema refuses values out of range", "[plugins][lars]") {
  contra::Schema s = Lars::schema();
  CHECK_THROWS_AS(s.bind({{"lr", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"momentum", -0.1}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"weight_decay", -1e-6}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"trust_coefficient", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"trust_coefficient", 1.5}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"eps", -1.0}}), contra::ConfigError);
  CHECK_THROWS_WITH(s.bind({{"trust_coefficient", 0.0}}),
                    Catch::Matchers::Contains("trust_coefficient"));
}

TEST_CASE("lars: momentum of 1 is a config error naming the key", "[plugins][lars]") {
  CHECK_THROWS_AS(Lars(Lars::schema().bind({{"momentum", 1.0}})), contra::ConfigError);
  CHECK_THROWS_WITH(Lars(Lars::schema().bind({{"momentum", 1.0}})),
                    "lars.momentum: expected a value in [0, 1), found 1");
  CHECK_NOTHROW(Lars(Lars::schema().bind({{"momentum", 0.0}})));
}

TEST_CASE("lars: two steps with the trust ratio worked by hand", "[plugins][lars]") {
  Lars opt(Lars::schema().bind(
      {{"lr", 1.0}, {"momentum", 0.9}, {"weight_decay", 0.0}, {"trust_coefficient", 0.02}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.6f, 0.8f, -1.0f);
  opt.step({0, 1.0});
  // step 1: ||w|| = ||[3, 4]|| = 5, ||g|| = ||[0.6, 0.8]|| = 1
  //   ratio = 0.02 * 5 / 1 = 0.1; scaled lr = 1 * 0.1
  //   v = 0.9*0 + 0.1*[0.6, 0.8] = [0.06, 0.08]; w = [2.94, 3.92]
  //   b: not adapted (ratio 1): v = 1*(-1) = -1; b = 0.5 + 1 = 1.5
  CHECK(opt.trust_ratio(0) == Approx(0.1).epsilon(1e-6));
  CHECK(opt.trust_ratio(1) == 1.0);
  CHECK(m.w0() == Approx(2.94).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.92).epsilon(1e-6));
  CHECK(m.b0() == Approx(1.5).epsilon(1e-6));
  m.set_grads(1.2f, 1.6f, 0.0f);
  opt.step({1, 1.0});
  // step 2: ||w|| = 0.98 * 5 = 4.9, ||g|| = ||[1.2, 1.6]|| = 2
  //   ratio = 0.02 * 4.9 / 2 = 0.049
  //   v = 0.9*[0.06, 0.08] + 0.049*[1.2, 1.6] = [0.054 + 0.0588, 0.072 + 0.0784] = [0.1128, 0.1504]
  //   w = [2.94 - 0.1128, 3.92 - 0.1504] = [2.8272, 3.7696]
  //   b: v = 0.9*(-1) + 0 = -0.9; b = 1.5 + 0.9 = 2.4
  CHECK(opt.trust_ratio(0) == Approx(0.049).epsilon(1e-6));
  CHECK(m.w0() == Approx(2.8272).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.7696).epsilon(1e-6));
  CHECK(m.b0() == Approx(2.4).epsilon(1e-6));
  CHECK(opt.learning_rate() == Approx(1.0));
}

TEST_CASE("lars: weight decay enters the gradient and its norm, only where decay = true",
          "[plugins][lars]") {
  Lars opt(Lars::schema().bind(
      {{"lr", 1.0}, {"momentum", 0.0}, {"weight_decay", 0.1}, {"trust_coefficient", 0.02}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.3f, 0.4f, -1.0f);
  opt.step({0, 1.0});
  // w: g = [0.3, 0.4] + 0.1*[3, 4] = [0.6, 0.8], ||g|| = 1 (it would be 0.5 without decay)
  //    ratio = 0.02 * 5 / 1 = 0.1; w = [3 - 0.06, 4 - 0.08] = [2.94, 3.92]
  // b: g = -1 (no decay; decayed it would be -0.95 and b = 1.45), ratio 1 (adapted it would be
  //    0.02 * 0.5 / 1 = 0.01 and b = 0.51): b = 0.5 + 1 = 1.5
  CHECK(opt.trust_ratio(0) == Approx(0.1).epsilon(1e-6));
  CHECK(opt.trust_ratio(1) == 1.0);
  CHECK(m.w0() == Approx(2.94).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.92).epsilon(1e-6));
  CHECK(m.b0() == Approx(1.5).epsilon(1e-6));
  m.set_grads(0.0f, 0.0f, 0.0f);
  opt.step({1, 1.0});
  // w: g = 0.1*[2.94, 3.92] = [0.294, 0.392], ||g|| = 0.49, ||w|| = 4.9
  //    ratio = 0.02 * 4.9 / 0.49 = 0.2; w = [2.94 - 0.0588, 3.92 - 0.0784] = [2.8812, 3.8416]
  // b: g = 0, b stays 1.5
  CHECK(opt.trust_ratio(0) == Approx(0.2).epsilon(1e-6));
  CHECK(m.w0() == Approx(2.8812).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.8416).epsilon(1e-6));
  CHECK(m.b0() == Approx(1.5).epsilon(1e-6));
}

TEST_CASE("lars: a zero gradient norm gives ratio 1, not NaN", "[plugins][lars]") {
  // eps = 0, so only the ||g|| = 0 rule keeps 0.02 * 5 / 0 out of the update.
  Lars opt(Lars::schema().bind({{"lr", 1.0},
                                {"momentum", 0.9},
                                {"weight_decay", 0.0},
                                {"trust_coefficient", 0.02},
                                {"eps", 0.0}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.6f, 0.8f, 0.0f);
  opt.step({0, 1.0});
  // step 1: ratio 0.1 as above: v = [0.06, 0.08], w = [2.94, 3.92]; b: g = 0, b = 0.5
  m.set_grads(0.0f, 0.0f, 0.0f);
  opt.step({1, 1.0});
  // step 2: ||g|| = 0, ratio = 1; v = 0.9*[0.06, 0.08] + 0 = [0.054, 0.072]
  //   w = [2.94 - 0.054, 3.92 - 0.072] = [2.886, 3.848]
  CHECK(opt.trust_ratio(0) == 1.0);
  CHECK(std::isfinite(m.w0()));
  CHECK(m.w0() == Approx(2.886).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.848).epsilon(1e-6));
  CHECK(m.b0() == 0.5f);
}

TEST_CASE("lars: a zero weight norm gives ratio 1", "[plugins][lars]") {
  Lars opt(Lars::schema().bind(
      {{"lr", 0.5}, {"momentum", 0.9}, {"weight_decay", 0.1}, {"trust_coefficient", 0.02}}));
  Model m(0.0f, 0.0f);
  opt.configure(m.params());
  m.set_grads(0.6f, 0.8f, 0.0f);
  opt.step({0, 1.0});
  // ||w|| = 0: ratio = 1 (0.02 * 0 / 1 would freeze w at 0 forever)
  //   g = [0.6, 0.8] + 0.1*0; v = 0.5*[0.6, 0.8] = [0.3, 0.4]; w = [-0.3, -0.4]
  CHECK(opt.trust_ratio(0) == 1.0);
  CHECK(m.w0() == Approx(-0.3).epsilon(1e-6));
  CHECK(m.w1() == Approx(-0.4).epsilon(1e-6));
}

TEST_CASE("lars: eps is added to the gradient norm", "[plugins][lars]") {
  Lars opt(Lars::schema().bind({{"lr", 1.0},
                                {"momentum", 0.0},
                                {"weight_decay", 0.0},
                                {"trust_coefficient", 0.02},
                                {"eps", 1.0}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.6f, 0.8f, 0.0f);
  opt.step({0, 1.0});
  // ratio = 0.02 * 5 / (1 + 1) = 0.05; w = [3 - 0.03, 4 - 0.04] = [2.97, 3.96]
  CHECK(opt.trust_ratio(0) == Approx(0.05).epsilon(1e-6));
  CHECK(m.w0() == Approx(2.97).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.96).epsilon(1e-6));
}

TEST_CASE("lars: norms over a tensor longer than the reduction lanes", "[plugins][lars]") {
  // 19 entries (two blocks of 8 and a tail of 3): w = 1, grad = 2 everywhere
  // ||w|| = sqrt(19), ||g|| = 2 sqrt(19): ratio = 0.5 * 1/2 = 0.25; w = 1 - 0.25*2 = 0.5
  contra::Parameter p{"w", contra::Tensor::empty({19}, contra::DType::f32),
                      contra::Tensor::empty({19}, contra::DType::f32), true};
  for (int k = 0; k < 19; ++k) {
    p.value.data<float>()[k] = 1.0f;
    p.grad.data<float>()[k] = 2.0f;
  }
  Lars opt(Lars::schema().bind(
      {{"lr", 1.0}, {"momentum", 0.0}, {"weight_decay", 0.0}, {"trust_coefficient", 0.5}}));
  opt.configure({&p});
  opt.step({0, 1.0});
  CHECK(opt.trust_ratio(0) == Approx(0.25).epsilon(1e-6));
  for (int k = 0; k < 19; ++k) CHECK(p.value.data<float>()[k] == Approx(0.5).epsilon(1e-6));
}

TEST_CASE("lars: the schedule scales the step and learning_rate() reports it", "[plugins][lars]") {
  Lars opt(Lars::schema().bind(
      {{"lr", 2.0}, {"momentum", 0.9}, {"weight_decay", 0.0}, {"trust_coefficient", 0.02}}));
  CHECK(opt.learning_rate() == Approx(2.0));  // before the first step: lr
  Model m;
  opt.configure(m.params());
  m.set_grads(0.6f, 0.8f, -1.0f);
  opt.step({0, 0.5});
  // lr * lr_scale = 1; ratio 0.1: v = [0.06, 0.08], w = [2.94, 3.92]; b = 0.5 + 1*1 = 1.5
  CHECK(opt.learning_rate() == Approx(1.0));
  CHECK(m.w0() == Approx(2.94).epsilon(1e-6));
  CHECK(m.w1() == Approx(3.92).epsilon(1e-6));
  CHECK(m.b0() == Approx(1.5).epsilon(1e-6));
}

TEST_CASE("lars: misuse is a usage error", "[plugins][lars]") {
  Lars opt(Lars::schema().bind({}));
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "lars: step() called before configure()");
  Model m;
  m.w.grad = contra::Tensor::zeros({3}, contra::DType::f32);
  CHECK_THROWS_AS(opt.configure(m.params()), contra::UsageError);
}
