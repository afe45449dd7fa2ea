#include "resnet18.hpp"

#include "layer_check.hpp"
#include "scoped_env.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using contra::plugins::ResNet18;

TEST_CASE("resnet18: parameter count and output width match torchvision's CIFAR ResNet-18", "[plugins][resnet18]") {
  ResNet18 net(ResNet18::schema().bind({}));
  net.build({Shape{3, 32, 32}, 0});
  std::int64_t n = 0;
  for (auto* p : net.parameters()) n += p->value.numel();
  // ResNet-18 with a 3x3 stem and no fc: 11,168,832 parameters
  // (torchvision's resnet18 has 11,689,512 with its 7x7 stem and 1000-way fc:
  //  − 64·3·49 + 64·3·9 − (512·1000 + 1000)).
  CHECK(n == 11689512 - 64 * 3 * 49 + 64 * 3 * 9 - (512 * 1000 + 1000));
  CHECK(net.output_dim() == 512);
  const Tensor& z = net.forward(test::random_tensor({2, 3, 32, 32}, 1), Mode::train);
  CHECK(z.shape() == Shape{2, 512});
}

TEST_CASE("resnet18: a tiny one matches finite differences end to end", "[plugins][resnet18]") {
  ResNet18 net(ResNet18::schema().bind({{"width", 2}}));
  net.build({Shape{3, 8, 8}, 4});
  test::GradCheckOptions o;
  o.eps = 1e-4;  // a deep ReLU/max-pool net has kinks everywhere: small steps
  o.abs_tol = 5e-3;
  o.samples = 6;
  o.min_agreement = 0.9;  // twenty float32 layers: see GradCheckOptions
  // Width 2 puts batch norms over 1×1 maps in the last stage: about a quarter
  // of the sampled coordinates sit next to a kink. The exact check is against
  // autograd in float64 (test_encoders_vs_torch.cpp).
  o.max_skipped = 0.35;
  test::check_encoder_gradients(net, test::random_tensor({16, 3, 8, 8}, 8), o);
}

TEST_CASE("resnet18: its size is counted without building it, and a width this machine cannot hold is refused",
          "[plugins][resnet18][memory]") {
  for (std::int64_t width : {2, 8, 64})
    for (std::int64_t channels : {1, 3}) {
      ResNet18 net(ResNet18::schema().bind({{"width", width}}));
      net.build({Shape{channels, 8, 8}, 0});
      std::uint64_t params = 0, buffers = 0;
      for (auto* p : net.parameters()) params += static_cast<std::uint64_t>(p->value.numel());
      for (auto& b : net.buffers()) buffers += static_cast<std::uint64_t>(b.second->numel());
      const plugins::ResNet18Size size = plugins::resnet18_size(channels, width);
      CHECK(size.parameters == params);
      CHECK(size.buffers == buffers);
    }
  const test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  Diagnostics d;
  ResNet18 wide(ResNet18::schema().bind({{"width", Schema::to_value(std::int64_t{1024}), {}}}, "encoder", {}, d));
  REQUIRE(d.empty());
  CHECK_THROWS_WITH(wide.build({Shape{3, 32, 32}, 0}),
                    "encoder.width = 1024 needs 21.3 GiB of weights and gradients (2856502272 parameters × 4 B × 2, "
                    "for 3-channel images); this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
  CHECK(wide.parameters().empty());
}
