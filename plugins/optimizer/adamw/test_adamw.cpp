#include "adamw.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using contra::plugins::AdamW;

namespace {

// Two parameters: a weight w = [1, -2] (decayed) and a bias b = [0.5] (not).
struct Model {
  contra::Parameter w{"w", contra::Tensor::empty({2}, contra::DType::f32),
                      contra::Tensor::zeros({2}, contra::DType::f32), true};
  contra::Parameter b{"b", contra::Tensor::empty({1}, contra::DType::f32),
                      contra::Tensor::zeros({1}, contra::DType::f32), false};
  Model() {
    w.value.data<float>()[0] = 1.0f;
    w.value.data<float>()[1] = -2.0f;
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

// Runs two steps: gradients g1 = (w: [0.5, 1], b: [-1]), then g2 = (w: [1, -1], b: [0]).
void two_steps(AdamW& opt, Model& m) {
  opt.configure(m.params());
  m.set_grads(0.5f, 1.0f, -1.0f);
  opt.step({0, 1.0});
  m.set_grads(1.0f, -1.0f, 0.0f);
  opt.step({1, 1.0});
}

}  // namespace

TEST_CASE("adamw: schema is well formed with PyTorch defaults", "[plugins][adamw]") {
  contra::Schema s = AdamW::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("lr") == 1e-3);
  CHECK(p.get<double>("beta1") == 0.9);
  CHECK(p.get<double>("beta2") == 0.999);
  CHECK(p.get<double>("eps") == 1e-8);
  CHECK(p.get<double>("weight_decay") == 0.01);
}

TEST_CASE("adamw: schema refuses values out of range", "[plugins][adamw]") {
  contra::Schema s = AdamW::schema();
  CHECK_THROWS_AS(s.bind({{"lr", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta1", 1.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta2", 1.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta2", -0.5}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"eps", 2.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"weight_decay", -0.01}}), contra::ConfigError);
  CHECK_THROWS_WITH(s.bind({{"beta2", 1.0}}), Catch::Matchers::Contains("beta2"));
}

TEST_CASE("adamw: without weight decay it is Adam", "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({{"lr", 0.1}, {"weight_decay", 0.0}}));
  Model m;
  two_steps(opt, m);
  // step 1 (t = 1): bc1 = 0.1, bc2 = 0.001; m/bc1 = g1, sqrt(v/bc2) = |g1|
  //   each entry moves by lr*sign(g): w = [0.9, -2.1], b = 0.6
  // step 2 (t = 2): bc1 = 0.19, bc2 = 0.001999
  //   w0: m = 0.045 + 0.1 = 0.145, v = 0.00024975 + 0.001 = 0.00124975
  //       0.1 * (0.145/0.19) / sqrt(0.00124975/0.001999) = 0.1*0.763158/0.790688 = 0.0965182
  //   w1: m = 0.09 - 0.1 = -0.01, v = 0.000999 + 0.001 = 0.001999 (v̂ = 1): 0.1*0.01/0.19 = 0.00526316
  //   b:  m = -0.09, v = 0.000999: 0.1*0.473684/0.706929 = 0.0670058
  //   w = [0.8034818, -2.0947368], b = 0.6670058
  CHECK(m.w0() == Approx(0.8034818).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0947368).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6670058).epsilon(1e-6));
}

TEST_CASE("adamw: decay is decoupled: weights shrink by lr * weight_decay", "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({{"lr", 0.1}, {"weight_decay", 0.1}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.0f, 0.0f, 0.0f);
  opt.step({0, 1.0});
  // g = 0: m = v = 0 and the Adam update is 0/(0 + eps) = 0; only the decay acts:
  //   w = (1 - 0.1*0.1) * [1, -2] = [0.99, -1.98]; b (decay = false) stays 0.5.
  // (adam with the same weight_decay moves w by lr*sign(0.1*w) to [0.9, -1.9].)
  CHECK(m.w0() == Approx(0.99).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.98).epsilon(1e-6));
  CHECK(m.b0() == 0.5f);
  opt.step({1, 1.0});
  // w = 0.99 * [0.99, -1.98] = [0.9801, -1.9602]; b = 0.5
  CHECK(m.w0() == Approx(0.9801).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.9602).epsilon(1e-6));
  CHECK(m.b0() == 0.5f);
}

TEST_CASE("adamw: decay does not enter the moments", "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({{"lr", 0.1}, {"weight_decay", 0.1}}));
  Model m;
  two_steps(opt, m);
  // step 1: w = 0.99*[1, -2] - 0.1*sign(g1) = [0.99 - 0.1, -1.98 - 0.1] = [0.89, -2.08]
  //         b (decay = false): 0.5 + 0.1 = 0.6
  // step 2: the moments see g only, so the Adam updates are those without decay
  //         (0.0965182 and -0.00526316 for w, -0.0670058 for b):
  //         w = 0.99*[0.89, -2.08] - [0.0965182, -0.00526316]
  //           = [0.8811 - 0.0965182, -2.0592 + 0.00526316] = [0.7845818, -2.0539368]
  //         b = 0.6 + 0.0670058 = 0.6670058
  // (adam with L2 weight_decay = 0.1 gives w = [0.8025030, -2.0748591] here.)
  CHECK(m.w0() == Approx(0.7845818).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0539368).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6670058).epsilon(1e-6));
}

TEST_CASE("adamw: t counts the optimizer's own steps, not OptimizerStep::step", "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({{"lr", 0.1}, {"weight_decay", 0.0}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.5f, 1.0f, -1.0f);
  opt.step({500, 1.0});
  // t = 1: full bias correction, each entry moves by lr*sign(g)
  CHECK(m.w0() == Approx(0.9).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.1).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6).epsilon(1e-6));
}

TEST_CASE("adamw: the schedule scales step and decay, learning_rate() reports it",
          "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({{"lr", 0.2}, {"weight_decay", 1.0}}));
  CHECK(opt.learning_rate() == Approx(0.2));  // before the first step: lr
  Model m;
  opt.configure(m.params());
  m.set_grads(1.0f, 1.0f, 1.0f);
  opt.step({0, 0.25});
  // lr * lr_scale = 0.05: w = (1 - 0.05*1)*[1, -2] - 0.05*[1, 1] = [0.95 - 0.05, -1.9 - 0.05]
  //   = [0.9, -1.95]; b (not decayed) = 0.5 - 0.05 = 0.45
  CHECK(opt.learning_rate() == Approx(0.05));
  CHECK(m.w0() == Approx(0.9).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.95).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.45).epsilon(1e-6));
}

TEST_CASE("adamw: misuse is a usage error", "[plugins][adamw]") {
  AdamW opt(AdamW::schema().bind({}));
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "adamw: step() called before configure()");
  Model m;
  m.w.grad = contra::Tensor::zeros({3}, contra::DType::f32);
  CHECK_THROWS_AS(opt.configure(m.params()), contra::UsageError);
}
