#include "projection_head.hpp"

#include "layer_check.hpp"
#include "scoped_env.hpp"

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

TEST_CASE("projection_head: refuses, before allocating, layers this machine cannot hold, naming the key",
          "[plugins][projection_head][memory]") {
  const test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  Diagnostics d;
  // hidden = 0 takes the encoder's width: 65536² + 2·65536 (batch norm) + 65536·65536 + 65536 parameters.
  ProjectionHead h(
      ProjectionHead::schema().bind({{"output", Schema::to_value(std::int64_t{65536}), {}}}, "head", {}, d));
  REQUIRE(d.empty());
  CHECK_THROWS_WITH(h.build({Shape{65536}, 0}),
                    "head.hidden = 0 (the encoder's output width, 65536) needs 64.0 GiB of weights and gradients "
                    "(8590131200 parameters × 4 B × 2; fc1: 65536 × 65536, fc2: 65536 × 65536); this machine has "
                    "16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
  CHECK(h.parameters().empty());
  // A wide output after a narrow hidden layer: output is named.
  ProjectionHead wide(ProjectionHead::schema().bind(
      {{"hidden", Schema::to_value(std::int64_t{32768}), {}}, {"output", Schema::to_value(std::int64_t{65536}), {}}},
      "head", {}, d));
  CHECK_THROWS_WITH(wide.build({Shape{2048}, 0}), Catch::StartsWith("head.output = 65536 needs 16.5 GiB of weights"));
  ProjectionHead fits(ProjectionHead::schema().bind({}));
  CHECK_NOTHROW(fits.build({Shape{512}, 0}));
}
