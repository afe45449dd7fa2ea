#include "token_dropout.hpp"

#include <test_support.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

using contra::Rng;
using contra::plugins::TokenDropout;

namespace {

TokenDropout make(double p) { return TokenDropout(TokenDropout::schema().bind({{"p", p}})); }

std::vector<std::int32_t> iota(std::int32_t n) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 10);
  return v;
}

std::vector<std::int32_t> run(const TokenDropout& aug, const std::vector<std::int32_t>& in, std::uint64_t sample) {
  std::vector<std::int32_t> out{-1};  // apply() must clear what was there
  Rng rng(7, 0, sample, 0, 0);
  aug.apply(in, out, contra::Vocabulary{}, rng);
  return out;
}

}  // namespace

TEST_CASE("token_dropout: schema is well formed and p must lie in [0, 1]", "[plugins][token_dropout]") {
  CHECK_NOTHROW(TokenDropout::schema().check_well_formed());
  CHECK_THROWS_WITH(make(-0.1), "error: token_dropout.p: expected a value in [0, 1], found -0.1\n");
}

TEST_CASE("token_dropout: drops tokens at rate p and keeps the rest in order", "[plugins][token_dropout]") {
  const auto in = iota(50);
  for (double p : {0.1, 0.3, 0.7}) {
    const auto aug = make(p);
    const int draws = 2000;
    std::int64_t kept = 0;
    for (int k = 0; k < draws; ++k) {
      const auto out = run(aug, in, static_cast<std::uint64_t>(k));
      REQUIRE(std::is_sorted(out.begin(), out.end()));  // a subsequence of the input: order kept
      REQUIRE(std::adjacent_find(out.begin(), out.end()) == out.end());
      REQUIRE(std::includes(in.begin(), in.end(), out.begin(), out.end()));
      kept += static_cast<std::int64_t>(out.size());
    }
    const double n = 50.0 * draws, rate = 1.0 - static_cast<double>(kept) / n;
    INFO("p = " << p << ", observed drop rate " << rate);
    CHECK(std::abs(rate - p) < 4 * std::sqrt(p * (1 - p) / n));
  }
}

TEST_CASE("token_dropout: the same Rng key gives the same output", "[plugins][token_dropout]") {
  const auto aug = make(0.5);
  const auto in = iota(40);
  CHECK(run(aug, in, 3) == run(aug, in, 3));
  CHECK(run(aug, in, 3) != run(aug, in, 4));
}

TEST_CASE("token_dropout: edge cases: empty input, p = 0, p = 1", "[plugins][token_dropout]") {
  CHECK(run(make(0.5), {}, 0).empty());
  CHECK(run(make(1.0), {}, 0).empty());
  const auto in = iota(7);
  CHECK(run(make(0.0), in, 0) == in);
  // p = 1 keeps exactly one token, uniformly chosen.
  std::vector<int> times_kept(7, 0);
  for (std::uint64_t k = 0; k < 7000; ++k) {
    const auto out = run(make(1.0), in, k);
    REQUIRE(out.size() == 1);
    ++times_kept[static_cast<std::size_t>(out[0] - 10)];
  }
  for (int c : times_kept) CHECK((c > 850 && c < 1150));  // 1000 expected, sd ≈ 29
  // A single token always survives.
  for (std::uint64_t k = 0; k < 50; ++k) CHECK(run(make(0.9), {42}, k) == std::vector<std::int32_t>{42});
}
