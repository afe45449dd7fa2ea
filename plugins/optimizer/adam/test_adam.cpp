#include "adam.hpp"

#include "scoped_env.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using contra::plugins::Adam;

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
void two_steps(Adam& opt, Model& m) {
  opt.configure(m.params());
  m.set_grads(0.5f, 1.0f, -1.0f);
  opt.step({0, 1.0});
  m.set_grads(1.0f, -1.0f, 0.0f);
  opt.step({1, 1.0});
}

}  // namespace

TEST_CASE("adam: schema is well formed with PyTorch defaults", "[plugins][adam]") {
  contra::Schema s = Adam::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("lr") == 1e-3);
  CHECK(p.get<double>("beta1") == 0.9);
  CHECK(p.get<double>("beta2") == 0.999);
  CHECK(p.get<double>("eps") == 1e-8);
  CHECK(p.get<double>("weight_decay") == 0.0);
}

TEST_CASE("adam: schema refuses values out of range", "[plugins][adam]") {
  contra::Schema s = Adam::schema();
  CHECK_THROWS_AS(s.bind({{"lr", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"lr", 101.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta1", 1.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta1", -0.1}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta2", 1.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"eps", -1e-8}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"weight_decay", -1.0}}), contra::ConfigError);
  CHECK_THROWS_WITH(s.bind({{"beta1", 1.0}}), Catch::Matchers::Contains("beta1"));
  CHECK_NOTHROW(Adam(s.bind({{"beta1", 0.0}, {"beta2", 0.0}, {"eps", 0.0}})));
}

TEST_CASE("adam: two steps with the default betas match values worked by hand", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.1}}));
  Model m;
  two_steps(opt, m);
  // step 1 (t = 1): bc1 = 1 - 0.9 = 0.1, bc2 = 1 - 0.999 = 0.001
  //   m = 0.1*g1 = [0.05, 0.1 | -0.1], v = 0.001*g1² = [0.00025, 0.001 | 0.001]
  //   m/bc1 = g1, sqrt(v/bc2) = |g1|: each entry moves by lr*sign(g) (eps 1e-8 aside)
  //   w = [0.9, -2.1], b = 0.6
  // step 2 (t = 2): bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.998001 = 0.001999
  //   w0: m = 0.9*0.05 + 0.1*1 = 0.145, v = 0.999*0.00025 + 0.001*1 = 0.00124975
  //       m̂ = 0.145/0.19 = 0.763158, v̂ = 0.00124975/0.001999 = 0.625188, sqrt = 0.790688
  //       w0 = 0.9 - 0.1*0.763158/0.790688 = 0.9 - 0.0965182 = 0.8034818
  //   w1: m = 0.9*0.1 - 0.1 = -0.01, v = 0.999*0.001 + 0.001 = 0.001999, so v̂ = 1
  //       w1 = -2.1 + 0.1*0.01/0.19 = -2.1 + 0.00526316 = -2.0947368
  //   b:  m = 0.9*(-0.1) + 0 = -0.09, v = 0.999*0.001 = 0.000999
  //       m̂ = -0.473684, v̂ = 0.499750, sqrt = 0.706929; b = 0.6 + 0.0670058 = 0.6670058
  // Without bias correction w1 would move by 0.1*0.01/sqrt(0.001999) = 0.0224, not 0.0053.
  CHECK(m.w0() == Approx(0.8034818).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0947368).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6670058).epsilon(1e-6));
  CHECK(opt.learning_rate() == Approx(0.1));
}

TEST_CASE("adam: bias correction with beta1 = 0.5, beta2 = 0.75", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.1}, {"beta1", 0.5}, {"beta2", 0.75}}));
  Model m;
  two_steps(opt, m);
  // step 1: bc1 = 0.5, bc2 = 0.25; m = 0.5*g1, v = 0.25*g1²: again w = [0.9, -2.1], b = 0.6
  // step 2: bc1 = 1 - 0.25 = 0.75, bc2 = 1 - 0.5625 = 0.4375
  //   w0: m = 0.5*0.25 + 0.5*1 = 0.625, v = 0.75*0.0625 + 0.25*1 = 0.296875
  //       m̂ = 0.833333, v̂ = 0.678571, sqrt = 0.823754; w0 = 0.9 - 0.1011628 = 0.7988372
  //   w1: m = 0.5*0.5 - 0.5 = -0.25, v = 0.75*0.25 + 0.25 = 0.4375
  //       m̂ = -1/3, v̂ = 1; w1 = -2.1 + 0.1/3 = -2.0666667
  //   b:  m = 0.5*(-0.5) = -0.25, v = 0.75*0.25 = 0.1875
  //       m̂ = -1/3, v̂ = 0.428571, sqrt = 0.654654; b = 0.6 + 0.0509175 = 0.6509175
  CHECK(m.w0() == Approx(0.7988372).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0666667).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6509175).epsilon(1e-6));
}

TEST_CASE("adam: t counts the optimizer's own steps, not OptimizerStep::step", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.1}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.5f, 1.0f, -1.0f);
  opt.step({1000, 1.0});  // first step of this optimizer: t = 1, full bias correction
  // With t = 1001 the correction would be ~1 and w0 would move by 0.1*0.05/sqrt(0.00025) = 0.316.
  CHECK(m.w0() == Approx(0.9).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.1).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6).epsilon(1e-6));
}

TEST_CASE("adam: weight decay is L2 added to the gradient, only where decay = true",
          "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.1}, {"weight_decay", 0.1}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(0.0f, 0.0f, 0.0f);
  opt.step({0, 1.0});
  // step 1: g = 0 + 0.1*w = [0.1, -0.2]; the first Adam step moves by lr*sign(g):
  //   w = [0.9, -1.9]. b has decay = false: g = 0, m = v = 0, update 0/(0 + eps) = 0: b = 0.5
  CHECK(m.w0() == Approx(0.9).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.9).epsilon(1e-6));
  CHECK(m.b0() == 0.5f);
  opt.step({1, 1.0});
  // step 2: g = 0.1*[0.9, -1.9] = [0.09, -0.19]
  //   w0: m = 0.9*0.01 + 0.1*0.09 = 0.018, v = 0.999*1e-5 + 0.001*0.0081 = 1.809e-5
  //       m̂ = 0.018/0.19 = 0.0947368, v̂ = 1.809e-5/0.001999 = 0.00904952, sqrt = 0.0951290
  //       w0 = 0.9 - 0.1*0.995877 = 0.8004122
  //   w1: m = 0.9*(-0.02) + 0.1*(-0.19) = -0.037, v = 0.999*4e-5 + 0.001*0.0361 = 7.606e-5
  //       m̂ = -0.194737, v̂ = 0.0380490, sqrt = 0.195061; w1 = -1.9 + 0.0998335 = -1.8001665
  CHECK(m.w0() == Approx(0.8004122).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.8001665).epsilon(1e-6));
  CHECK(m.b0() == 0.5f);
}

TEST_CASE("adam: weight decay changes the gradient the moments see", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.1}, {"weight_decay", 0.1}}));
  Model m;
  two_steps(opt, m);
  // step 1: g = g1 + 0.1*w = [0.6, 0.8]; w = [0.9, -2.1] (lr*sign); b: g = -1, b = 0.6
  // step 2: g = [1 + 0.09, -1 - 0.21] = [1.09, -1.21]
  //   w0: m = 0.9*0.06 + 0.109 = 0.163, v = 0.999*0.00036 + 0.001*1.1881 = 0.00154774
  //       m̂ = 0.857895, v̂ = 0.774257, sqrt = 0.879919; w0 = 0.9 - 0.0974970 = 0.8025030
  //   w1: m = 0.9*0.08 - 0.121 = -0.049, v = 0.999*0.00064 + 0.001*1.4641 = 0.00210346
  //       m̂ = -0.257895, v̂ = 1.052256, sqrt = 1.025795; w1 = -2.1 + 0.0251409 = -2.0748591
  //   b (not decayed) as without weight decay: 0.6670058
  CHECK(m.w0() == Approx(0.8025030).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0748591).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6670058).epsilon(1e-6));
}

TEST_CASE("adam: the schedule scales the step and learning_rate() reports it", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({{"lr", 0.2}}));
  CHECK(opt.learning_rate() == Approx(0.2));  // before the first step: lr
  Model m;
  opt.configure(m.params());
  m.set_grads(1.0f, 1.0f, 1.0f);
  opt.step({0, 0.25});
  // lr * lr_scale = 0.05; the first step moves by 0.05*sign(g): w = [0.95, -2.05], b = 0.45
  CHECK(opt.learning_rate() == Approx(0.05));
  CHECK(m.w0() == Approx(0.95).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.05).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.45).epsilon(1e-6));
}

TEST_CASE("adam: misuse is a usage error", "[plugins][adam]") {
  Adam opt(Adam::schema().bind({}));
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "adam: step() called before configure()");
  Model m;
  m.w.grad = contra::Tensor::zeros({3}, contra::DType::f32);
  CHECK_THROWS_AS(opt.configure(m.params()), contra::UsageError);
}

TEST_CASE("adam: moment estimates this machine cannot hold are refused before allocating",
          "[plugins][adam][memory]") {
  const contra::test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  // 2^40 parameters, described but never touched: the check comes first.
  float storage = 0;
  contra::Parameter huge{"w", contra::Tensor::wrap(&storage, {1 << 20, 1 << 20}, contra::DType::f32),
                         contra::Tensor::wrap(&storage, {1 << 20, 1 << 20}, contra::DType::f32), true};
  Adam opt(Adam::schema().bind({}));
  CHECK_THROWS_WITH(opt.configure({&huge}), "adam needs 8.0 TiB of moment estimates (2 × 1099511627776 parameters × "
                                            "4 B); this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
}
