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

TEST_CASE("@NAME@: one step moves a parameter against its gradient") {
  contra::Parameter p;
  p.name = "w";
  p.value = ct::random_tensor({4}, 1);
  p.grad = ct::random_tensor({4}, 2);
  const contra::Tensor before = p.value.clone();
  @CLASS@ opt(@CLASS@::schema().bind({{"lr", 0.5}}));
  opt.configure({&p});
  opt.step({0, 1.0});
  CHECK(opt.learning_rate() == 0.5);
  for (int i = 0; i < 4; ++i)
    CHECK(p.value.data<float>()[i] == before.data<float>()[i] - 0.5f * p.grad.data<float>()[i]);
}
