#include "random_span.hpp"

#include <test_support.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

using contra::Rng;
using contra::plugins::RandomSpan;

namespace {

RandomSpan make(double lo, double hi) {
  return RandomSpan(RandomSpan::schema().bind({{"min_fraction", lo}, {"max_fraction", hi}}));
}

std::vector<std::int32_t> iota(std::int32_t n) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 100);
  return v;
}

std::vector<std::int32_t> run(const RandomSpan& aug, const std::vector<std::int32_t>& in, std::uint64_t sample) {
  std::vector<std::int32_t> out{-1};  // apply() must clear what was there
  Rng rng(11, 0, sample, 0, 0);
  aug.apply(in, out, contra::Vocabulary{}, rng);
  return out;
}

}  // namespace

TEST_CASE("random_span: schema is well formed and min_fraction above max_fraction is refused", "[plugins][random_span]") {
  CHECK_NOTHROW(RandomSpan::schema().check_well_formed());
  CHECK_THROWS_AS(make(0.8, 0.5), contra::ConfigError);
  CHECK_THROWS_WITH(make(0.8, 0.5), "random_span.min_fraction = 0.8 is larger than random_span.max_fraction = 0.5; "
                                    "expected min_fraction <= max_fraction");
  CHECK_THROWS_WITH(make(0.5, 1.5), "error: random_span.max_fraction: expected a value in [0, 1], found 1.5\n");
}

TEST_CASE("random_span: the span's length range, rounded inwards, at least one token", "[plugins][random_span]") {
  using P = std::pair<std::int64_t, std::int64_t>;
  CHECK(make(0.5, 1.0).span_lengths(10) == P{5, 10});
  CHECK(make(0.3, 0.7).span_lengths(10) == P{3, 7});  // 0.3 × 10 and 0.7 × 10 are not exact in binary
  CHECK(make(0.25, 0.75).span_lengths(5) == P{2, 3});
  CHECK(make(0.0, 0.0).span_lengths(10) == P{1, 1});
  CHECK(make(0.5, 0.6).span_lengths(3) == P{2, 2});  // no integer in [1.5, 1.8]: the shortest
  CHECK(make(0.1, 0.2).span_lengths(1) == P{1, 1});
  CHECK(make(1.0, 1.0).span_lengths(7) == P{7, 7});
}

TEST_CASE("random_span: keeps a contiguous span whose length and start are uniform", "[plugins][random_span]") {
  const auto in = iota(10);
  const auto aug = make(0.3, 0.7);  // lengths 3..7
  std::vector<int> by_length(11, 0), by_start(10, 0);
  const int draws = 10000;
  for (int k = 0; k < draws; ++k) {
    const auto out = run(aug, in, static_cast<std::uint64_t>(k));
    REQUIRE((out.size() >= 3 && out.size() <= 7));
    const auto start = out[0] - 100;
    for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == in[static_cast<std::size_t>(start) + i]);
    ++by_length[out.size()];
    ++by_start[static_cast<std::size_t>(start)];
  }
  for (int length = 3; length <= 7; ++length) {
    INFO("length " << length);
    CHECK(std::abs(by_length[static_cast<std::size_t>(length)] - draws / 5) < 4 * std::sqrt(draws * 0.2 * 0.8));
  }
  // Every start that fits some length occurs; 0 fits all five lengths, 7 only length 3.
  for (int s = 0; s <= 7; ++s) CHECK(by_start[static_cast<std::size_t>(s)] > 0);
  CHECK(by_start[8] == 0);
  CHECK(by_start[0] > by_start[7]);
}

TEST_CASE("random_span: the same Rng key gives the same span", "[plugins][random_span]") {
  const auto aug = make(0.2, 0.9);
  const auto in = iota(30);
  CHECK(run(aug, in, 5) == run(aug, in, 5));
  bool some_differ = false;
  for (std::uint64_t k = 6; k < 16; ++k) some_differ = some_differ || run(aug, in, k) != run(aug, in, 5);
  CHECK(some_differ);
}

TEST_CASE("random_span: edge cases: empty input, one token, whole text", "[plugins][random_span]") {
  CHECK(run(make(0.5, 1.0), {}, 0).empty());
  CHECK(run(make(0.0, 0.0), {7}, 0) == std::vector<std::int32_t>{7});
  CHECK(run(make(1.0, 1.0), iota(9), 3) == iota(9));
}
