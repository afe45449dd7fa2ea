// seed_resnet's cuda build against its CPU build (the oracle), both built from
// the same seed: identical initial parameters; outputs, dL/dx and every
// parameter gradient of three train steps, the running statistics and an
// eval-mode output within 1e-3 of the CPU's largest entry in strict f32
// (eleven layers, each within ~1e-5, batch norm dividing by small batch
// deviations), 3e-2 with TF32 convolutions and products.
#include "seed_resnet.hpp"
#include "seed_resnet_cuda.hpp"

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <catch2/catch.hpp>

using contra::plugins::SeedResNet;
using contra::plugins::SeedResNetCuda;

TEST_CASE("seed_resnet cuda: schema and configuration errors are the CPU build's", "[plugins][seed_resnet][cuda]") {
  CHECK(SeedResNetCuda::schema().describe() == SeedResNet::schema().describe());
  SeedResNetCuda rank(SeedResNet::schema().bind({}));
  CHECK_THROWS_WITH(rank.build({contra::Shape{784}, 1}),
                    "seed_resnet: takes images [C, H, W], got inputs of shape [784]");
  SeedResNetCuda grid(SeedResNet::schema().bind({{"pool_grid", std::int64_t{3}}}));
  CHECK_THROWS_WITH(grid.build({contra::Shape{1, 28, 28}, 1}),
                    "seed_resnet: pool_grid = 3 must divide the shorter side of the 14×14 feature map of inputs "
                    "[1, 28, 28] into cells that also divide the longer side");
  SeedResNet cpu(SeedResNet::schema().bind({{"pool_grid", std::int64_t{3}}}));
  CHECK_THROWS_WITH(cpu.build({contra::Shape{1, 28, 28}, 1}),
                    "seed_resnet: pool_grid = 3 must divide the shorter side of the 14×14 feature map of inputs "
                    "[1, 28, 28] into cells that also divide the longer side");
  if (!contra::cuda::available()) {
    SeedResNetCuda ok(SeedResNet::schema().bind({}));
    CHECK_THROWS_WITH(ok.build({contra::Shape{1, 28, 28}, 1}),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by seed_resnet (cuda))");
  }
}

TEST_CASE("seed_resnet cuda: matches the CPU build end to end", "[plugins][seed_resnet][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  for (std::int64_t grid : {1, 2}) {
    for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32}) {
      contra::cuda::set_math_mode(mode);
      INFO("pool_grid " << grid << ", " << contra::cuda::math_mode_name(mode));
      const contra::Params p =
          SeedResNet::schema().bind({{"width", std::int64_t{8}}, {"output", std::int64_t{16}}, {"pool_grid", grid}});
      SeedResNet cpu(p);
      SeedResNetCuda gpu(p);
      const contra::EncoderContext ctx{contra::Shape{3, 16, 16}, 42};
      cpu.build(ctx);
      gpu.build(ctx);
      layer_twin::compare_encoder(cpu, gpu, contra::Shape{6, 3, 16, 16},
                                  mode == contra::cuda::MathMode::strict_f32 ? 1e-3 : 3e-2);
    }
  }
}

TEST_CASE("seed_resnet cuda: one-channel images (no layout change at the input)", "[plugins][seed_resnet][gpu]") {
  CONTRA_REQUIRE_GPU();
  const contra::Params p = SeedResNet::schema().bind({{"width", std::int64_t{4}}, {"output", std::int64_t{8}}});
  SeedResNet cpu(p);
  SeedResNetCuda gpu(p);
  const contra::EncoderContext ctx{contra::Shape{1, 12, 12}, 3};
  cpu.build(ctx);
  gpu.build(ctx);
  layer_twin::compare_encoder(cpu, gpu, contra::Shape{5, 1, 12, 12}, 1e-3);
}
