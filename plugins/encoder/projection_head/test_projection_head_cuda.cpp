// projection_head's cuda build against its CPU build (the oracle), both built
// from the same seed: identical initial parameters; outputs, dL/dx and every
// parameter gradient of three train steps, the running statistics and an
// eval-mode output within 1e-4 of the CPU's largest entry in strict f32,
// 2e-2 with TF32 products and with bf16 precision.
#include "projection_head.hpp"
#include "projection_head_cuda.hpp"

#include <contra/cpu.hpp>

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <catch2/catch.hpp>

#include <tuple>

using contra::plugins::ProjectionHead;
using contra::plugins::ProjectionHeadCuda;

TEST_CASE("projection_head cuda: schema and configuration errors are the CPU build's",
          "[plugins][projection_head][cuda]") {
  CHECK(ProjectionHeadCuda::schema().describe() == ProjectionHead::schema().describe());
  ProjectionHeadCuda head(ProjectionHead::schema().bind({}));
  CHECK_THROWS_WITH(head.build({contra::Shape{3, 8, 8}, 1}),
                    "projection_head: takes feature vectors [D], got inputs of shape [3, 8, 8]; place it in "
                    "[head], after an encoder");
  if (!contra::cuda::available()) {
    ProjectionHeadCuda ok(ProjectionHead::schema().bind({}));
    CHECK_THROWS_WITH(ok.build({contra::Shape{64}, 1}),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by projection_head (cuda))");
  }
}

TEST_CASE("projection_head cuda: matches the CPU build end to end", "[plugins][projection_head][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  for (bool bn : {true, false}) {
    for (auto [mode, precision, tol] :
         {std::tuple<contra::cuda::MathMode, contra::Precision, double>{contra::cuda::MathMode::strict_f32,
                                                                         contra::Precision::f32, 1e-4},
          {contra::cuda::MathMode::tf32, contra::Precision::f32, 2e-2},
          {contra::cuda::MathMode::strict_f32, contra::Precision::bf16, 2e-2}}) {
      if (precision == contra::Precision::bf16 && !contra::cpu_capabilities().bf16) continue;  // CPU twin cannot
      contra::cuda::set_math_mode(mode);
      INFO("batch_norm " << bn << ", " << contra::cuda::math_mode_name(mode)
                         << (precision == contra::Precision::bf16 ? ", bf16" : ""));
      const contra::Params p = ProjectionHead::schema().bind(
          {{"hidden", std::int64_t{24}}, {"output", std::int64_t{12}}, {"batch_norm", bn}});
      ProjectionHead cpu(p);
      ProjectionHeadCuda gpu(p);
      const contra::EncoderContext ctx{contra::Shape{32}, 5, precision};
      cpu.build(ctx);
      gpu.build(ctx);
      layer_twin::compare_encoder(cpu, gpu, contra::Shape{10, 32}, tol);
    }
  }
}
