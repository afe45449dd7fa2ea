#include <contra/gradient_ready.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/rng.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace contra;
using contra::test::random_tensor;

namespace {
// Records each parameter said ready, and a copy of its gradient then.
struct RecordingHook : GradientReadyHook {
  std::vector<std::string> names;
  std::vector<Tensor> grads;
  void ready(Parameter& p) override {
    names.push_back(p.name);
    grads.push_back(p.grad.clone());
  }
};

// backward() of `layer` on `x` with `hook` installed; the gradients each
// parameter held when it was said ready equal those it holds after.
template <class L> std::vector<std::string> announced(L& layer, const Tensor& x) {
  RecordingHook hook;
  const Tensor& y = layer.forward(x, Mode::train);
  const Tensor dy = random_tensor(y.shape(), 7);
  {
    const ScopedGradientReadyHook installed(&hook);
    layer.backward(dy, true);
  }
  std::vector<Parameter*> params;
  layer.parameters(params);
  for (std::size_t i = 0; i < hook.names.size(); ++i)
    for (Parameter* p : params)
      if (p->name == hook.names[i])
        for (std::int64_t j = 0; j < p->grad.numel(); ++j)
          REQUIRE(hook.grads[i].template data<float>()[j] == p->grad.template data<float>()[j]);
  // Without a hook nothing is said (and nothing fails).
  layer.forward(x, Mode::train);
  layer.backward(dy, true);
  return hook.names;
}
}  // namespace

TEST_CASE("gradient_ready: Conv2d, Linear and BatchNorm say each parameter's finished gradient", "[sdk][nn]") {
  Rng init(3, 0, 0, 0, 0);
  nn::Conv2d conv("conv", 3, 4, 3, 1, 1, true, init);
  CHECK(announced(conv, random_tensor({2, 5, 5, 3}, 1)) == std::vector<std::string>{"conv.weight", "conv.bias"});
  nn::Linear fc("fc", 6, 2, false, init);
  CHECK(announced(fc, random_tensor({4, 6}, 2)) == std::vector<std::string>{"fc.weight"});
  nn::BatchNorm bn("bn", 3);
  CHECK(announced(bn, random_tensor({4, 2, 2, 3}, 3)) == std::vector<std::string>{"bn.weight", "bn.bias"});
}

TEST_CASE("gradient_ready: ScopedGradientReadyHook installs per thread and restores the previous one", "[sdk]") {
  RecordingHook outer, inner;
  CHECK(gradient_ready_hook() == nullptr);
  {
    const ScopedGradientReadyHook a(&outer);
    {
      const ScopedGradientReadyHook b(&inner);
      CHECK(gradient_ready_hook() == &inner);
    }
    CHECK(gradient_ready_hook() == &outer);
  }
  CHECK(gradient_ready_hook() == nullptr);
}
