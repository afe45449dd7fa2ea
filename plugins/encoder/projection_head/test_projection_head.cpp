#include "projection_head.hpp"

#include "layer_check.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using contra::plugins::ProjectionHead;

TEST_CASE("projection_head: linear-BN-ReLU-linear with the configured widths", "[plugins][projection_head]") {
  ProjectionHead h(ProjectionHead::schema().bind({{"output", 32}}));
  h.build({Shape{64}, 0});
  auto ps = h.parameters();
  REQUIRE(ps.size() == 5);  // fc1.weight (no bias before BN), bn γ, β, fc2.weight, fc2.bias
  CHECK(ps[0]->name == "fc1.weight");
  CHECK(ps[0]->value.shape() == Shape{64, 64});
  CHECK(ps[3]->value.shape() == Shape{32, 64});
  CHECK(h.output_dim() == 32);
  ProjectionHead plain(ProjectionHead::schema().bind({{"hidden", 16}, {"batch_norm", false}}));
  plain.build({Shape{8}, 0});
  CHECK(plain.parameters().size() == 4);
}

TEST_CASE("projection_head: gradients match finite differences", "[plugins][projection_head]") {
  for (bool bn : {true, false}) {
    ProjectionHead h(ProjectionHead::schema().bind({{"hidden", 6}, {"output", 5}, {"batch_norm", bn}}));
    h.build({Shape{7}, 3});
    test::GradCheckOptions o;
    o.eps = 1e-3;
    test::check_encoder_gradients(h, test::random_tensor({8, 7}, 2), o);
  }
}

TEST_CASE("projection_head: must follow an encoder", "[plugins][projection_head]") {
  ProjectionHead h(ProjectionHead::schema().bind({}));
  CHECK_THROWS_WITH(h.build({Shape{1, 28, 28}, 0}),
                    "projection_head: takes feature vectors [D], got inputs of shape [1, 28, 28]; place it in "
                    "[head], after an encoder");
}
