// mlp's cuda build against its CPU build (the oracle), both built from the
// same seed: identical initial parameters; outputs, dL/dx and every parameter
// gradient of three train steps and an eval-mode output within 1e-5 of the
// CPU's largest entry in strict f32 (products of a few hundred terms summed
// in another order), 1e-2 with TF32 products.
#include "mlp.hpp"
#include "mlp_cuda.hpp"

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <catch2/catch.hpp>

using contra::plugins::Mlp;
using contra::plugins::MlpCuda;

TEST_CASE("mlp cuda: schema and configuration errors are the CPU build's", "[plugins][mlp][cuda]") {
  CHECK(MlpCuda::schema().describe() == Mlp::schema().describe());
  MlpCuda empty(Mlp::schema().bind({}));
  CHECK_THROWS_WITH(empty.build({contra::Shape{0}, 1}),
                    "mlp: cannot take inputs of shape [0]; expected [C, H, W] or [D] with no zero dimension");
  if (!contra::cuda::available()) {
    MlpCuda ok(Mlp::schema().bind({}));
    CHECK_THROWS_WITH(ok.build({contra::Shape{8}, 1}),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by mlp (cuda))");
  }
}

TEST_CASE("mlp cuda: matches the CPU build end to end", "[plugins][mlp][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32}) {
    contra::cuda::set_math_mode(mode);
    INFO(contra::cuda::math_mode_name(mode));
    const contra::Params p =
        Mlp::schema().bind({{"hidden", std::vector<std::int64_t>{40, 24}}, {"output", std::int64_t{12}}});
    Mlp cpu(p);
    MlpCuda gpu(p);
    const contra::EncoderContext ctx{contra::Shape{2, 5, 6}, 8};
    cpu.build(ctx);
    gpu.build(ctx);
    layer_twin::compare_encoder(cpu, gpu, contra::Shape{9, 2, 5, 6},
                                mode == contra::cuda::MathMode::strict_f32 ? 1e-5 : 1e-2);
  }
}
