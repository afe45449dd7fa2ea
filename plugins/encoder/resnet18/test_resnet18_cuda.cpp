// resnet18's cuda build against its CPU build (the oracle), both built from
// the same seed: identical initial parameters; outputs, dL/dx and every
// parameter gradient of three train steps, the running statistics and an
// eval-mode output within 2e-3 of the CPU's largest entry in strict f32
// (seventeen convolutions and batch norms deep), 5e-2 with TF32.
#include "resnet18.hpp"
#include "resnet18_cuda.hpp"

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <catch2/catch.hpp>

using contra::plugins::ResNet18;
using contra::plugins::ResNet18Cuda;

TEST_CASE("resnet18 cuda: schema and configuration errors are the CPU build's", "[plugins][resnet18][cuda]") {
  CHECK(ResNet18Cuda::schema().describe() == ResNet18::schema().describe());
  ResNet18Cuda rank(ResNet18::schema().bind({}));
  CHECK_THROWS_WITH(rank.build({contra::Shape{3072}, 1}),
                    "resnet18: takes images [C, H, W], got inputs of shape [3072]");
  if (!contra::cuda::available()) {
    ResNet18Cuda ok(ResNet18::schema().bind({}));
    CHECK_THROWS_WITH(ok.build({contra::Shape{3, 32, 32}, 1}),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by resnet18 (cuda))");
  }
}

TEST_CASE("resnet18 cuda: matches the CPU build end to end", "[plugins][resnet18][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32}) {
    contra::cuda::set_math_mode(mode);
    INFO(contra::cuda::math_mode_name(mode));
    const contra::Params p = ResNet18::schema().bind({{"width", std::int64_t{4}}});
    ResNet18 cpu(p);
    ResNet18Cuda gpu(p);
    const contra::EncoderContext ctx{contra::Shape{3, 16, 16}, 11};
    cpu.build(ctx);
    gpu.build(ctx);
    layer_twin::compare_encoder(cpu, gpu, contra::Shape{4, 3, 16, 16},
                                mode == contra::cuda::MathMode::strict_f32 ? 2e-3 : 5e-2);
  }
}
