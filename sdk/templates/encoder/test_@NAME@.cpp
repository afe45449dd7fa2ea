// Tests of @NAME@, run by `ctest --test-dir build`. The checks come from
// contra/testing.hpp and return {ok, message} so that they fit any framework.
#include "@NAME@.hpp"

#include <contra/testing.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>  // Catch2 v3
#else
#include <catch2/catch.hpp>  // Catch2 v2
#endif

#include <cmath>
#include <memory>

namespace ct = contra::testing;

namespace {
// A [1, 4, 4] input and seed 3; the other fields keep their defaults (set by
// name, so that fields a newer SDK adds need no change here).
contra::EncoderContext context() {
  contra::EncoderContext ctx;
  ctx.input = contra::Shape{1, 4, 4};
  ctx.seed = 3;
  return ctx;
}
}  // namespace

TEST_CASE("@NAME@: schema is well formed and the defaults construct the plugin") {
  auto r = ct::check_schema<@CLASS@>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: the built library loads as contra loads it") {
  auto r = ct::check_library(PLUGIN_FILE);
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: same seed, same network and output") {
  auto r = ct::check_encoder_deterministic(
      [] { return std::make_shared<@CLASS@>(@CLASS@::schema().bind({{"hidden", 8}, {"output", 4}})); }, context(),
      ct::random_tensor({3, 1, 4, 4}, 5));
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: gradients agree with finite differences") {
  @CLASS@ enc(@CLASS@::schema().bind({{"hidden", 8}, {"output", 4}}));
  enc.build(context());
  auto g = ct::check_encoder_gradients(enc, ct::random_tensor({3, 1, 4, 4}, 5));
  INFO(g.message);
  CHECK(g.ok);
}
