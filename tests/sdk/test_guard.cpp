#include <contra/guard.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

TEST_CASE("guard: passes the result through and names the context of what was thrown", "[sdk][guard]") {
  int calls = 0;
  CHECK(contra::guarded("never", [&] { return ++calls * 7; }) == 7);
  int value = 1;
  int& same = contra::guarded("never", [&]() -> int& { return value; });
  CHECK(&same == &value);

  CHECK_THROWS_AS(contra::guarded("loss 'x': compute()", [] { throw std::runtime_error("bad shape"); }),
                  contra::PluginError);
  CHECK_THROWS_WITH(contra::guarded("loss 'x': compute()", [] { throw std::runtime_error("bad shape"); }),
                    "loss 'x': compute(): bad shape");
  CHECK_THROWS_AS(contra::guarded<contra::ConfigError>("[loss]", [] { throw contra::UsageError("no"); }),
                  contra::ConfigError);
}

TEST_CASE("guard: something that is not a std::exception is named as such", "[sdk][guard]") {
  CHECK_THROWS_AS(contra::guarded("sampler 'x': plan()", [] { throw 42; }), contra::PluginError);
  CHECK_THROWS_WITH(contra::guarded("sampler 'x': plan()", [] { throw 42; }),
                    "sampler 'x': plan(): it threw something that is not a std::exception");
  try {
    throw std::string("a string");
  } catch (...) {
    CHECK(contra::current_exception_message() == "it threw something that is not a std::exception");
  }
  try {
    throw std::logic_error("why");
  } catch (...) {
    CHECK(contra::current_exception_message() == "why");
  }
  CHECK(contra::current_exception_message() == "no exception");
}
