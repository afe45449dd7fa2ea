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

TEST_CASE("@NAME@: value and gradient are finite, deterministic and agree with finite differences") {
  auto batch = ct::random_embeddings(8, 2, 16, 1);  // 8 samples, 2 views, 16 dimensions
  contra::Pairs all;
  all.all = true;
  @CLASS@ loss(@CLASS@::schema().bind({}));
  auto r = ct::check_loss(loss, batch.embeddings(), all);
  INFO(r.message);
  CHECK(r.ok);
  auto g = ct::check_loss_gradient(loss, batch.embeddings(), all);
  INFO(g.message);
  CHECK(g.ok);
}
