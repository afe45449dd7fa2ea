// vit's cuda build against its CPU build (the oracle), both built from the
// same seed: identical initial parameters; outputs, dL/dx and every parameter
// gradient of three train steps and an eval-mode output, for class-token and
// mean pooling, square and wide images of one and three channels.
// Tolerances relative to the CPU's largest entry: 1e-4 in strict f32, 2e-2
// with TF32 products.
#include "vit.hpp"
#include "vit_cuda.hpp"

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <contra/cuda.hpp>

#include <catch2/catch.hpp>

#include <string>

using contra::plugins::VisionTransformer;
using contra::plugins::VisionTransformerCuda;

namespace {

contra::Params small_params(const std::string& pooling) {
  return VisionTransformer::schema().bind({{"patch", std::int64_t{4}},
                                           {"width", std::int64_t{16}},
                                           {"layers", std::int64_t{2}},
                                           {"heads", std::int64_t{4}},
                                           {"mlp_ratio", std::int64_t{2}},
                                           {"output", std::int64_t{12}},
                                           {"pooling", pooling}});
}

}  // namespace

TEST_CASE("vit cuda: schema and configuration errors are the CPU build's", "[plugins][vit][cuda]") {
  CHECK(VisionTransformerCuda::schema().describe() == VisionTransformer::schema().describe());
  VisionTransformerCuda sides(small_params("cls"));
  CHECK_THROWS_WITH(sides.build({contra::Shape{1, 10, 8}, 1}), "vit.patch = 4 must divide the images' 10×8 sides");
  VisionTransformerCuda flat(small_params("cls"));
  CHECK_THROWS_WITH(flat.build({contra::Shape{784}, 1}), "vit: takes images [C, H, W], got inputs of shape [784]");
  if (!contra::cuda::available()) {
    VisionTransformerCuda ok(small_params("cls"));
    CHECK_THROWS_WITH(ok.build({contra::Shape{1, 8, 8}, 1}),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by vit (cuda))");
  }
}

TEST_CASE("vit cuda: matches the CPU build end to end", "[plugins][vit][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  for (const std::string pooling : {"cls", "mean"})
    for (const contra::Shape& image : {contra::Shape{1, 12, 12}, contra::Shape{3, 8, 16}})
      for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32}) {
        contra::cuda::set_math_mode(mode);
        INFO(pooling << " pooling, images " << image.str() << ", " << contra::cuda::math_mode_name(mode));
        VisionTransformer cpu(small_params(pooling));
        VisionTransformerCuda gpu(small_params(pooling));
        const contra::EncoderContext ctx{image, 11};
        cpu.build(ctx);
        gpu.build(ctx);
        layer_twin::compare_encoder(cpu, gpu, contra::Shape{5, image[0], image[1], image[2]},
                                    mode == contra::cuda::MathMode::strict_f32 ? 1e-4 : 2e-2);
      }
}
