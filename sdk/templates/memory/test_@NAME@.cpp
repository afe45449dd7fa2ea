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

TEST_CASE("@NAME@: keeps the newest rows, normalised, with their ids") {
  @CLASS@ memory(@CLASS@::schema().bind({{"size", 8}}));
  memory.configure({4, 100, nullptr, 1});
  auto batch = ct::random_embeddings(3, 2, 4, 1);
  memory.update(batch.embeddings());
  const contra::MemoryView& v = memory.view();
  REQUIRE(v.size() == 8);
  CHECK((*v.ids)[5] == 1002);
  CHECK((*v.ids)[6] == -1);
  double norm = 0;
  for (int d = 0; d < 4; ++d) norm += v.keys.data<float>()[d] * v.keys.data<float>()[d];
  CHECK(std::abs(norm - 1.0) < 1e-5);
}
