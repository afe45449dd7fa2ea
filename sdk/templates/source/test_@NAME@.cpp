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

TEST_CASE("@NAME@: samples load with the announced shape, twice the same") {
  @CLASS@ source(@CLASS@::schema().bind({{"size", 20}}));
  auto r = ct::check_source(source);
  INFO(r.message);
  CHECK(r.ok);
}
