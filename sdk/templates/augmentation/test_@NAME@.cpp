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

TEST_CASE("@NAME@: output matches its format, is reproducible and leaves the input alone") {
  @CLASS@ aug(@CLASS@::schema().bind({}));
  auto r = ct::check_augmentation(aug, ct::random_image(12, 10, 3, 1));
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: p = 1 inverts every pixel") {
  @CLASS@ aug(@CLASS@::schema().bind({{"p", 1.0}}));
  contra::Tensor in = ct::random_image(4, 4, 1, 2), out;
  contra::Rng rng(1, 0, 0, 0, 0);
  aug.apply(in, out, rng);
  for (std::int64_t i = 0; i < in.numel(); ++i)
    CHECK(out.data<std::uint8_t>()[i] == 255 - in.data<std::uint8_t>()[i]);
}
