// vit: gradients against finite differences, the parameters' names and
// shapes, the patch layout, and its errors.
#include "vit.hpp"

#include "layer_check.hpp"

#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace contra;
using contra::plugins::VisionTransformer;

namespace {

VisionTransformer small(const std::string& pooling = "cls") {
  return VisionTransformer(VisionTransformer::schema().bind({{"patch", std::int64_t{2}},
                                                             {"width", std::int64_t{8}},
                                                             {"layers", std::int64_t{2}},
                                                             {"heads", std::int64_t{2}},
                                                             {"mlp_ratio", std::int64_t{2}},
                                                             {"output", std::int64_t{6}},
                                                             {"pooling", pooling}}));
}

}  // namespace

TEST_CASE("vit: schema is well formed", "[plugins][vit]") {
  const auto r = testing::check_schema<VisionTransformer>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("vit: parameters in CLIP's order and shapes", "[plugins][vit]") {
  VisionTransformer net = small();
  net.build({Shape{3, 4, 6}, 1});  // 2 × 3 patches of 2 × 2 × 3 = 12 features, 7 positions
  const auto ps = net.parameters();
  REQUIRE(ps.size() == 1 + 2 + 2 + 2 * 12 + 3);
  CHECK(ps[0]->name == "patch_embedding.weight");
  CHECK(ps[0]->value.shape() == Shape{8, 12});
  CHECK(ps[1]->name == "class_embedding");
  CHECK(ps[2]->name == "positional_embedding");
  CHECK(ps[2]->value.shape() == Shape{7, 8});
  CHECK_FALSE(ps[2]->decay);
  CHECK(ps[3]->name == "ln_pre.weight");
  CHECK(ps[5]->name == "blocks.0.ln_1.weight");
  CHECK(ps[ps.size() - 1]->name == "projection.weight");
  CHECK(ps[ps.size() - 1]->value.shape() == Shape{6, 8});
  CHECK(net.output_dim() == 6);
}

TEST_CASE("vit: gradients of every parameter and of the images against finite differences", "[plugins][vit]") {
  for (const std::string pooling : {"cls", "mean"}) {
    INFO("pooling " << pooling);
    VisionTransformer net = small(pooling);
    net.build({Shape{2, 4, 6}, 3});
    test::GradCheckOptions o;
    o.eps = 3e-3;
    o.abs_tol = 1e-3;
    o.rel_tol = 1e-2;
    test::check_encoder_gradients(net, testing::random_tensor({3, 2, 4, 6}, 11), o);
  }
}

TEST_CASE("vit: an image's patches keep their places: swapping two changes its embedding", "[plugins][vit]") {
  // Two copies of one image embed alike (to the products' rounding, which
  // may differ by row); with two of its patches swapped, the second does
  // not (the positions tell the patches apart).
  VisionTransformer net = small();
  net.build({Shape{1, 4, 4}, 2});
  Tensor x = testing::random_tensor({2, 1, 4, 4}, 5);
  float* second = x.data<float>() + 16;
  for (int i = 0; i < 16; ++i) second[i] = x.data<float>()[i];
  const Tensor same = net.forward(x, Mode::eval).clone();
  for (int d = 0; d < 6; ++d) CHECK(same.data<float>()[d] == Approx(same.data<float>()[6 + d]).margin(1e-5));
  // Swap the top-left and bottom-right 2 × 2 patches of the second image.
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) std::swap(second[dy * 4 + dx], second[(2 + dy) * 4 + 2 + dx]);
  const Tensor swapped = net.forward(x, Mode::eval).clone();
  double diff = 0;
  for (int d = 0; d < 6; ++d) diff += std::abs(swapped.data<float>()[d] - swapped.data<float>()[6 + d]);
  CHECK(diff > 1e-4);
}

TEST_CASE("vit: errors name what was expected", "[plugins][vit]") {
  SECTION("a patch that does not divide the image") {
    VisionTransformer net = small();
    CHECK_THROWS_WITH(net.build({Shape{1, 28, 27}, 0}), "vit.patch = 2 must divide the images' 28×27 sides");
  }
  SECTION("token ids") {
    VisionTransformer net = small();
    EncoderContext ctx;
    ctx.input = Shape{16};
    ctx.vocabulary.size = 260;
    CHECK_THROWS_WITH(net.build(ctx), "vit: takes images [C, H, W], got inputs of shape [16] (token ids)");
  }
  SECTION("heads that do not divide the width") {
    VisionTransformer net(VisionTransformer::schema().bind({{"width", std::int64_t{10}}, {"heads", std::int64_t{4}}}));
    CHECK_THROWS_WITH(net.build({Shape{1, 8, 8}, 0}), "vit.width = 10 is not a multiple of vit.heads = 4");
  }
  SECTION("images of another shape, and backward without forward") {
    VisionTransformer net = small();
    net.build({Shape{1, 4, 4}, 0});
    CHECK_THROWS_WITH(net.forward(testing::random_tensor({2, 1, 4, 6}, 1), Mode::train),
                      "vit: forward() expected f32 images [N, 1, 4, 4] on cpu, got f32 [2, 1, 4, 6] on cpu");
    CHECK_THROWS_WITH(net.backward(testing::random_tensor({2, 6}, 1), false),
                      "vit: backward() needs a train-mode forward() first (none since the last backward() or "
                      "eval-mode forward())");
  }
}
