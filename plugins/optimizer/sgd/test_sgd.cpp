#include "sgd.hpp"

#include "scoped_env.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using contra::plugins::Sgd;
using Catch::Matchers::Contains;

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
void two_steps(Sgd& opt, Model& m) {
  opt.configure(m.params());
  m.set_grads(0.5f, 1.0f, -1.0f);
  opt.step({0, 1.0});
  m.set_grads(1.0f, -1.0f, 0.0f);
  opt.step({1, 1.0});
}

}  // namespace

TEST_CASE("sgd: schema is well formed with PyTorch-like defaults", "[plugins][sgd]") {
  contra::Schema s = Sgd::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("lr") == 0.1);
  CHECK(p.get<double>("momentum") == 0.9);
  CHECK(p.get<double>("weight_decay") == 0.0);
  CHECK_FALSE(p.get<bool>("nesterov"));
  CHECK_THROWS_AS(s.bind({{"lr", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"weight_decay", -1.0}}), contra::ConfigError);
}

TEST_CASE("sgd: plain steps match values worked by hand", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.1}, {"momentum", 0.0}}));
  Model m;
  two_steps(opt, m);
  // step 1: w = [1 - 0.1*0.5, -2 - 0.1*1] = [0.95, -2.1]; b = 0.5 + 0.1 = 0.6
  // step 2: w = [0.95 - 0.1*1, -2.1 + 0.1*1] = [0.85, -2.0]; b = 0.6 - 0 = 0.6
  CHECK(m.w0() == Approx(0.85).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6).epsilon(1e-6));
  CHECK(opt.learning_rate() == Approx(0.1));
}

TEST_CASE("sgd: momentum starts its buffer at the first gradient", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.1}, {"momentum", 0.9}}));
  Model m;
  two_steps(opt, m);
  // step 1: buf = g1 = [0.5, 1 | -1]; w = [0.95, -2.1]; b = 0.6
  // step 2: buf = 0.9*[0.5, 1] + [1, -1] = [1.45, -0.1]; w = [0.95 - 0.145, -2.1 + 0.01] = [0.805, -2.09]
  //         buf_b = 0.9*(-1) + 0 = -0.9; b = 0.6 + 0.09 = 0.69
  CHECK(m.w0() == Approx(0.805).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.09).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.69).epsilon(1e-6));
}

TEST_CASE("sgd: nesterov steps along g + momentum * buf", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}}));
  Model m;
  two_steps(opt, m);
  // step 1: buf = g1; update = g1 + 0.9*g1 = 1.9*g1 = [0.95, 1.9 | -1.9]
  //         w = [1 - 0.095, -2 - 0.19] = [0.905, -2.19]; b = 0.5 + 0.19 = 0.69
  // step 2: buf = [1.45, -0.1 | -0.9]; update = g2 + 0.9*buf = [2.305, -1.09 | -0.81]
  //         w = [0.905 - 0.2305, -2.19 + 0.109] = [0.6745, -2.081]; b = 0.69 + 0.081 = 0.771
  CHECK(m.w0() == Approx(0.6745).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.081).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.771).epsilon(1e-6));
}

TEST_CASE("sgd: weight decay applies only to parameters marked decay", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.1}, {"momentum", 0.0}, {"weight_decay", 0.1}}));
  Model m;
  two_steps(opt, m);
  // step 1: g = g1 + 0.1*w = [0.5 + 0.1, 1 - 0.2] = [0.6, 0.8]; w = [0.94, -2.08]
  //         b has decay = false: b = 0.5 + 0.1*1 = 0.6
  // step 2: g = [1 + 0.094, -1 - 0.208] = [1.094, -1.208]; w = [0.8306, -1.9592]; b = 0.6
  CHECK(m.w0() == Approx(0.8306).epsilon(1e-6));
  CHECK(m.w1() == Approx(-1.9592).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.6).epsilon(1e-6));
}

TEST_CASE("sgd: weight decay enters the momentum buffer", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 0.1}}));
  Model m;
  two_steps(opt, m);
  // step 1: g = [0.6, 0.8]; buf = g; w = [0.94, -2.08]; b: buf = -1, b = 0.6
  // step 2: g = [1.094, -1.208]; buf = 0.9*[0.6, 0.8] + g = [1.634, -0.488]
  //         w = [0.94 - 0.1634, -2.08 + 0.0488] = [0.7766, -2.0312]; b: buf = -0.9, b = 0.69
  CHECK(m.w0() == Approx(0.7766).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.0312).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.69).epsilon(1e-6));
}

TEST_CASE("sgd: the schedule scales the step and learning_rate() reports it", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({{"lr", 0.2}, {"momentum", 0.0}}));
  Model m;
  opt.configure(m.params());
  m.set_grads(1.0f, 1.0f, 1.0f);
  opt.step({0, 0.25});
  // lr * lr_scale = 0.05: w = [0.95, -2.05], b = 0.45
  CHECK(opt.learning_rate() == Approx(0.05));
  CHECK(m.w0() == Approx(0.95).epsilon(1e-6));
  CHECK(m.w1() == Approx(-2.05).epsilon(1e-6));
  CHECK(m.b0() == Approx(0.45).epsilon(1e-6));
}

TEST_CASE("sgd: nesterov without momentum is a config error naming both keys", "[plugins][sgd]") {
  CHECK_THROWS_WITH(Sgd(Sgd::schema().bind({{"momentum", 0.0}, {"nesterov", true}})),
                    "sgd.nesterov = true requires sgd.momentum > 0, found sgd.momentum = 0");
  CHECK_THROWS_AS(Sgd(Sgd::schema().bind({{"momentum", 0.0}, {"nesterov", true}})),
                  contra::ConfigError);
  CHECK_NOTHROW(Sgd(Sgd::schema().bind({{"momentum", 0.5}, {"nesterov", true}})));
}

TEST_CASE("sgd: momentum of 1 is refused", "[plugins][sgd]") {
  CHECK_THROWS_AS(Sgd(Sgd::schema().bind({{"momentum", 1.0}})), contra::ConfigError);
}

TEST_CASE("sgd: misuse is a usage error", "[plugins][sgd]") {
  Sgd opt(Sgd::schema().bind({}));
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "sgd: step() called before configure()");
  Model m;
  m.w.grad = contra::Tensor::zeros({3}, contra::DType::f32);
  CHECK_THROWS_AS(opt.configure(m.params()), contra::UsageError);
}

TEST_CASE("sgd: momentum buffers this machine cannot hold are refused before allocating",
          "[plugins][sgd][memory]") {
  const contra::test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  // 2^40 parameters, described but never touched: the check comes first.
  float storage = 0;
  contra::Parameter huge{"w", contra::Tensor::wrap(&storage, {1 << 20, 1 << 20}, contra::DType::f32),
                         contra::Tensor::wrap(&storage, {1 << 20, 1 << 20}, contra::DType::f32), true};
  Sgd opt(Sgd::schema().bind({{"momentum", 0.9}}));
  CHECK_THROWS_WITH(opt.configure({&huge}), "sgd needs 4.0 TiB of momentum buffers (1099511627776 parameters × 4 B); "
                                            "this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
  Sgd plain(Sgd::schema().bind({{"momentum", 0.0}}));
  CHECK_NOTHROW(plain.configure({&huge}));  // no buffers to hold
}
