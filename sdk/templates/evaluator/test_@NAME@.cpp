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

TEST_CASE("@NAME@: separable classes score 1") {
  contra::FeatureSet train{contra::Tensor::zeros({4, 2}, contra::DType::f32), {0, 0, 1, 1}, 2};
  contra::FeatureSet test{contra::Tensor::zeros({2, 2}, contra::DType::f32), {1, 0}, 2};
  float* a = train.features.data<float>();
  a[0] = 1, a[2] = 0.9f, a[5] = 1, a[7] = 0.8f;  // class 0 along x, class 1 along y
  float* b = test.features.data<float>();
  b[1] = 2, b[2] = 3;
  @CLASS@ eval(@CLASS@::schema().bind({}));
  auto figures = eval.evaluate(train, test, 1);
  REQUIRE(figures.size() == 1);
  CHECK(figures[0].second == 1.0);
}
