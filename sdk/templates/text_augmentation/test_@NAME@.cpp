// Tests of @NAME@, run by `ctest --test-dir build`. The checks come from
// contra/testing.hpp and return {ok, message} so that they fit any framework.
#include "@NAME@.hpp"

#include <contra/testing.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>  // Catch2 v3
#else
#include <catch2/catch.hpp>  // Catch2 v2
#endif

#include <vector>

namespace ct = contra::testing;

namespace {
// 100 ids: pad 0, bos 1, eos 2, unk 3 (contra::Vocabulary's defaults), then text tokens.
const contra::Vocabulary vocabulary{100};

@CLASS@ make(double p) { return @CLASS@(@CLASS@::schema().bind({{"p", p}})); }

std::vector<std::int32_t> apply(const @CLASS@& augmentation, const std::vector<std::int32_t>& in, std::uint64_t sample) {
  std::vector<std::int32_t> out;
  contra::Rng rng(1, 0, sample, 0, 0);
  augmentation.apply(in, out, vocabulary, rng);
  return out;
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

TEST_CASE("@NAME@: ids stay in the vocabulary, output is reproducible, the input is left alone") {
  for (double p : {0.0, 0.5, 1.0}) {
    auto r = ct::check_text_augmentation(make(p), vocabulary);
    INFO("p = " << p << ": " << r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("@NAME@: p = 1 drops the first or the last token, both over many samples, and p = 0 drops none") {
  const std::vector<std::int32_t> in{10, 11, 12, 13};
  const std::vector<std::int32_t> without_first{11, 12, 13}, without_last{10, 11, 12};
  const auto always = make(1.0), never = make(0.0);
  int firsts = 0, lasts = 0;
  for (std::uint64_t sample = 0; sample < 100; ++sample) {
    const auto out = apply(always, in, sample);
    REQUIRE((out == without_first || out == without_last));
    if (out == without_first)
      ++firsts;
    else
      ++lasts;
    CHECK(apply(never, in, sample) == in);
  }
  CHECK(firsts > 0);
  CHECK(lasts > 0);
  CHECK(apply(always, {42}, 0) == std::vector<std::int32_t>{42});  // one token is kept
}
