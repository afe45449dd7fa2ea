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

TEST_CASE("@NAME@: pairs are in range and the same on every run") {
  auto batch = ct::random_embeddings(6, 2, 8, 1);  // 6 samples, 2 views, 8 dimensions
  @CLASS@ miner(@CLASS@::schema().bind({{"max_negatives", 3}}));
  auto r = ct::check_miner(miner, batch.embeddings());
  INFO(r.message);
  CHECK(r.ok);
  contra::Pairs pairs;
  miner.mine(batch.embeddings(), pairs);
  CHECK(pairs.positive.size() == 12);     // each row's other view
  CHECK(pairs.negative.size() == 12 * 3);
}
