#include "seed_resnet.hpp"
#include "seed_resnet_net.hpp"

#include "layer_check.hpp"
#include "scoped_env.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using contra::plugins::SeedResNet;

namespace {
std::int64_t count(const std::vector<Parameter*>& ps) {
  std::int64_t n = 0;
  for (auto* p : ps) n += p->value.numel();
  return n;
}
}  // namespace

TEST_CASE("seed_resnet: layers and parameter count match the tutorial's ResNetEncoder", "[plugins][seed_resnet]") {
  SeedResNet net(SeedResNet::schema().bind({}));
  net.build({Shape{1, 28, 28}, 0});
  auto ps = net.parameters();
  // stem conv 1·64·9; layer1 2×64·64·9; layer2 64·128·9 + 128·128·9; five BNs (γ, β);
  // fc 128·128 + 128 — the same as PyTorch's sum(p.numel()) for that model.
  const std::int64_t convs = 1 * 64 * 9 + 2 * 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9;
  const std::int64_t bns = 2 * (64 + 64 + 64 + 128 + 128);
  CHECK(count(ps) == convs + bns + 128 * 128 + 128);
  CHECK(ps.front()->name == "stem.conv.weight");
  CHECK(ps.back()->name == "fc.bias");
  CHECK(net.buffers().size() == 10);  // running mean and var of five BNs

  Tensor x = test::random_tensor({3, 1, 28, 28}, 5);
  const Tensor& z = net.forward(x, Mode::train);
  CHECK(z.shape() == Shape{3, 128});
}

TEST_CASE("seed_resnet: gradients match finite differences end to end", "[plugins][seed_resnet]") {
  SeedResNet net(SeedResNet::schema().bind({{"width", 4}, {"output", 6}}));
  net.build({Shape{3, 9, 7}, 11});
  test::GradCheckOptions o;
  o.samples = 8;
  o.eps = 1e-4;  // a deep ReLU/max-pool net has kinks everywhere: small steps
  o.abs_tol = 5e-3;
  // Fourteen float32 layers (see GradCheckOptions); the exact check is
  // against autograd in float64 (test_encoders_vs_torch.cpp).
  o.min_agreement = 0.95;
  test::check_encoder_gradients(net, test::random_tensor({16, 3, 9, 7}, 21), o);
}

TEST_CASE("seed_resnet: the seed decides the initial weights", "[plugins][seed_resnet]") {
  SeedResNet a(SeedResNet::schema().bind({{"width", 4}})), b(SeedResNet::schema().bind({{"width", 4}})),
      c(SeedResNet::schema().bind({{"width", 4}}));
  a.build({Shape{1, 8, 8}, 1});
  b.build({Shape{1, 8, 8}, 1});
  c.build({Shape{1, 8, 8}, 2});
  Tensor x = test::random_tensor({2, 1, 8, 8}, 3);
  Tensor za = a.forward(x, Mode::eval).clone(), zb = b.forward(x, Mode::eval).clone(),
         zc = c.forward(x, Mode::eval).clone();
  for (std::int64_t i = 0; i < za.numel(); ++i) REQUIRE(za.data<float>()[i] == zb.data<float>()[i]);
  bool differs = false;
  for (std::int64_t i = 0; i < za.numel(); ++i) differs |= za.data<float>()[i] != zc.data<float>()[i];
  CHECK(differs);
}

TEST_CASE("seed_resnet: rejects inputs it was not built for", "[plugins][seed_resnet]") {
  SeedResNet net(SeedResNet::schema().bind({{"width", 4}}));
  CHECK_THROWS_WITH(net.build({Shape{784}, 0}),
                    "seed_resnet: takes images [C, H, W], got inputs of shape [784]");
  net.build({Shape{1, 8, 8}, 0});
  CHECK_THROWS_WITH(net.forward(test::random_tensor({2, 3, 8, 8}, 1), Mode::train),
                    "seed_resnet: expected images [N, 1, H, W], got [2, 3, 8, 8]");
}

TEST_CASE("seed_resnet: pool_grid averages the last stage over a grid before the linear layer",
          "[plugins][seed_resnet]") {
  SeedResNet net(SeedResNet::schema().bind({{"width", 4}, {"output", 6}, {"pool_grid", 2}}));
  net.build({Shape{3, 12, 12}, 11});  // 12×12 → max pool → 6×6 → 2×2 cells of 3×3
  auto ps = net.parameters();
  CHECK(ps.back()->name == "fc.bias");
  CHECK(ps[ps.size() - 2]->value.numel() == 8 * 2 * 2 * 6);  // fc weight: (2·width·grid²) × output
  test::GradCheckOptions o;
  o.samples = 8;
  o.eps = 1e-4;
  o.abs_tol = 5e-3;
  o.min_agreement = 0.95;  // as above
  test::check_encoder_gradients(net, test::random_tensor({16, 3, 12, 12}, 21), o);

  // A wide map (a rendered word): pool_grid cells down, as many more across.
  SeedResNet wide(SeedResNet::schema().bind({{"width", 4}, {"output", 6}, {"pool_grid", 2}}));
  wide.build({Shape{1, 12, 36}, 11});  // → 6×18 → 2×6 cells of 3×3
  auto wide_ps = wide.parameters();
  CHECK(wide_ps[wide_ps.size() - 2]->value.numel() == 8 * 2 * 6 * 6);
  test::check_encoder_gradients(wide, test::random_tensor({16, 1, 12, 36}, 22), o);

  SeedResNet bad(SeedResNet::schema().bind({{"width", 4}, {"pool_grid", 3}}));
  CHECK_THROWS_WITH(bad.build({Shape{1, 28, 28}, 0}),
                    "seed_resnet: pool_grid = 3 must divide the shorter side of the 14×14 feature map of inputs "
                    "[1, 28, 28] into cells that also divide the longer side");
  CHECK_THROWS_WITH(bad.build({Shape{1, 12, 26}, 0}),
                    "seed_resnet: pool_grid = 3 must divide the shorter side of the 6×13 feature map of inputs "
                    "[1, 12, 26] into cells that also divide the longer side");
}

TEST_CASE("seed_resnet: conv_algorithm direct, winograd and auto compute the same network", "[plugins][seed_resnet]") {
  auto build = [](const char* algorithm) {
    auto net = std::make_unique<SeedResNet>(
        SeedResNet::schema().bind({{"width", 16}, {"output", 8}, {"conv_algorithm", std::string(algorithm)}}));
    net->build({Shape{1, 12, 12}, 3});
    return net;
  };
  auto direct = build("direct"), winograd = build("winograd"), automatic = build("auto");
  Tensor x = test::random_tensor({6, 1, 12, 12}, 9), dy = test::random_tensor({6, 8}, 10);
  std::vector<Tensor> out;
  std::vector<std::vector<Tensor>> grads;
  for (SeedResNet* net : {direct.get(), winograd.get(), automatic.get()}) {
    out.push_back(net->forward(x, Mode::train).clone());
    net->backward(dy, false);
    std::vector<Tensor> g;
    for (Parameter* p : net->parameters()) g.push_back(p->grad.clone());
    grads.push_back(std::move(g));
  }
  for (int k = 1; k < 3; ++k) {
    INFO((k == 1 ? "winograd" : "auto") << " against direct");
    for (std::int64_t i = 0; i < out[0].numel(); ++i)
      CHECK(out[k].data<float>()[i] == Approx(out[0].data<float>()[i]).margin(1e-4));
    for (std::size_t p = 0; p < grads[0].size(); ++p) {
      double worst = 0, scale = 0;
      for (std::int64_t i = 0; i < grads[0][p].numel(); ++i) {
        worst = std::max(worst, std::fabs(static_cast<double>(grads[k][p].data<float>()[i]) - grads[0][p].data<float>()[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(grads[0][p].data<float>()[i])));
      }
      INFO("parameter " << p);
      CHECK(worst <= 1e-4 * std::max(scale, 1.0));
    }
  }
  CHECK_THROWS_WITH(SeedResNet::schema().bind({{"conv_algorithm", std::string("fft")}}),
                    Catch::Contains("conv_algorithm") && Catch::Contains("\"auto\", \"direct\" or \"winograd\""));
}

TEST_CASE("seed_resnet: its size is counted without building it, and one this machine cannot hold is refused",
          "[plugins][seed_resnet][memory]") {
  for (std::int64_t width : {2, 16})
    for (std::int64_t grid : {1, 2}) {
      SeedResNet net(SeedResNet::schema().bind({{"width", width}, {"output", 24}, {"pool_grid", grid}}));
      net.build({Shape{3, 8, 8}, 0});
      std::uint64_t buffers = 0;
      for (auto& b : net.buffers()) buffers += static_cast<std::uint64_t>(b.second->numel());
      const plugins::SeedResNetSize size =
          plugins::seed_resnet_size(3, width, 24, plugins::seed_resnet_pool(Shape{3, 8, 8}, grid));
      CHECK(size.parameters == static_cast<std::uint64_t>(count(net.parameters())));
      CHECK(size.buffers == buffers);
    }
  const test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "4GiB");
  auto table = [](std::vector<RawParam> raw) {
    Diagnostics d;
    Params p = SeedResNet::schema().bind(raw, "encoder", {}, d);
    REQUIRE(d.empty());
    return p;
  };
  // 72·4096² convolution weights: width is named.
  SeedResNet wide(table({{"width", Schema::to_value(std::int64_t{4096}), {}}}));
  CHECK_THROWS_WITH(wide.build({Shape{1, 28, 28}, 0}),
                    "encoder.width = 4096 needs 9.0 GiB of weights and gradients (1209102464 parameters × 4 B × 2, "
                    "for 1-channel images; the linear layer 8192 × 128); this machine has 4.0 GiB available "
                    "(CONTRA_MEMORY_AVAILABLE)");
  CHECK(wide.parameters().empty());
  // A 16 × 16 grid of 128 channels into 65536 outputs: the linear layer is most of it, output is named.
  SeedResNet fc(table({{"output", Schema::to_value(std::int64_t{65536}), {}},
                       {"pool_grid", Schema::to_value(std::int64_t{16}), {}}}));
  CHECK_THROWS_WITH(fc.build({Shape{1, 64, 64}, 0}), Catch::StartsWith("encoder.output = 65536 needs 16.0 GiB"));
}
