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

TEST_CASE("@NAME@: batches are reproducible and in range") {
  std::vector<std::int64_t> labels(50, 0);
  contra::SamplerContext ctx{50, &labels, 7, 1};
  auto r = ct::check_sampler([] { return std::make_shared<@CLASS@>(@CLASS@::schema().bind({{"batch_size", 8}})); },
                             ctx);
  INFO(r.message);
  CHECK(r.ok);
}
