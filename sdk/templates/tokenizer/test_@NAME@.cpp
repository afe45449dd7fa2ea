// Tests of @NAME@, run by `ctest --test-dir build`. The checks come from
// contra/testing.hpp and return {ok, message} so that they fit any framework.
#include "@NAME@.hpp"

#include <contra/testing.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>  // Catch2 v3
#else
#include <catch2/catch.hpp>  // Catch2 v2
#endif

#include <string>
#include <vector>

namespace ct = contra::testing;
using namespace std::string_literals;

namespace {
@CLASS@ make(const std::string& alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-") {
  return @CLASS@(@CLASS@::schema().bind({{"alphabet", alphabet}}));
}

std::vector<std::int32_t> encode(const @CLASS@& tokenizer, const std::string& text) {
  std::vector<std::int32_t> ids;
  tokenizer.encode(text, ids);
  return ids;
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

TEST_CASE("@NAME@: ids stay in the vocabulary, decode inverts encode, encode is thread-safe") {
  // What encode() must survive: empty text, upper case, UTF-8 beyond ASCII,
  // invalid UTF-8 and a NUL byte.
  const std::vector<std::string> samples = {"a quick brown fox", "", "Mixed CASE, digits 0123!",
                                            "caf\xc3\xa9 \xe2\x82\xac", "bad \xff\xfe utf-8 \0 nul"s};
  auto r = ct::check_tokenizer(make(), samples);
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: one id per character, upper case read as lower case, any other character unk") {
  const auto tokenizer = make("abc");
  CHECK(tokenizer.vocabulary().size == 4 + 3);
  CHECK(encode(tokenizer, "cab") == std::vector<std::int32_t>{6, 4, 5});
  CHECK(encode(tokenizer, "CAB") == encode(tokenizer, "cab"));
  const std::int32_t unk = tokenizer.vocabulary().unk;
  CHECK(encode(tokenizer, "a\xc3\xa9z") == std::vector<std::int32_t>{4, unk, unk});  // é is one character
  CHECK(tokenizer.decode({1, 6, unk, 4, 2, 0, 99}) == "ca");
}

TEST_CASE("@NAME@: an alphabet it cannot use is refused") {
  CHECK_THROWS_AS(make(""), contra::ConfigError);
  CHECK_THROWS_AS(make("abca"), contra::ConfigError);  // a character twice
  CHECK_THROWS_AS(make("abC"), contra::ConfigError);   // never produced: read as lower case
  CHECK_THROWS_AS(make("ab\xc3\xa9"), contra::ConfigError);
}
