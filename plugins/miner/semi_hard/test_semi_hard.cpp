#include "semi_hard.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::SemiHard;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using Triple = std::tuple<int, int, int>;

SemiHard make(Params p = {}) { return SemiHard(SemiHard::schema().bind(p)); }

// Points (x, 0) on a line.
contra::Tensor on_line(const std::vector<float>& xs) {
  contra::Tensor t = contra::Tensor::empty({static_cast<std::int64_t>(xs.size()), 2}, contra::DType::f32);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    t.data<float>()[2 * i] = xs[i];
    t.data<float>()[2 * i + 1] = 0.0f;
  }
  return t;
}

contra::Tensor random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(rng.normal());
  return t;
}

// Row r = v * n + i is view v of sample i.
std::vector<std::int64_t> samples(std::int64_t n, std::int64_t views) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

std::vector<Triple> mine(SemiHard& miner, const contra::Embeddings& z) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.positive.empty());
  CHECK(pairs.negative.empty());
  std::vector<Triple> t;
  for (const auto& x : pairs.triplets) t.emplace_back(x.anchor, x.positive, x.negative);
  std::sort(t.begin(), t.end());
  return t;
}

// Rows 0 and 1 (class 0) at 0 and 1, so d(a,p) = 1 both ways; every other row is alone in its
// class: a negative of both, never an anchor.
std::vector<Triple> mine_pair(Params params, const std::vector<float>& xs) {
  std::vector<std::int64_t> sample = samples(static_cast<std::int64_t>(xs.size()), 1);
  std::vector<std::int64_t> label = sample;
  label[1] = 0;
  contra::Embeddings z{on_line(xs), &sample, &label, 1};
  SemiHard miner = SemiHard(SemiHard::schema().bind(params));
  return mine(miner, z);
}

}  // namespace

TEST_CASE("semi_hard: schema is well formed with its parameters and defaults", "[plugins][semi_hard]") {
  contra::Schema s = SemiHard::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "semi_hard");
  contra::Params p = s.bind({});
  CHECK(p.get<std::string>("distance") == "euclidean");
  CHECK(p.get<double>("margin") == 0.2);
  CHECK(p.get<std::string>("fallback") == "tfa");
  CHECK_FALSE(p.get<bool>("use_labels"));
  CHECK_THROWS_AS(s.bind({{"fallback", std::string("easiest")}}), contra::ConfigError);
}

TEST_CASE("semi_hard: 2 samples x 2 views, every pick by hand", "[plugins][semi_hard]") {
  // row 0 (sample 0) at 0, row 1 (sample 1) at 3, row 2 (sample 0) at 1, row 3 (sample 1) at 1.125.
  // a=0, p=2, d=1:     negatives 1 (3), 3 (1.125)   -> 3 is semi-hard (1 < 1.125 < 1.2)
  // a=1, p=3, d=1.875: negatives 0 (3), 2 (2)       -> 2 is semi-hard (< 2.075)
  // a=2, p=0, d=1:     negatives 1 (2), 3 (0.125)   -> none; 1 is the nearest farther than p (easy)
  // a=3, p=1, d=1.875: negatives 0 (1.125), 2 (.125) -> none, none farther: the farthest, 0
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings z{on_line({0, 3, 1, 1.125f}), &sample, nullptr, 2};
  SemiHard tfa = make();
  CHECK(mine(tfa, z) == std::vector<Triple>{{0, 2, 3}, {1, 3, 2}, {2, 0, 1}, {3, 1, 0}});
  SemiHard skip = make({{"fallback", std::string("skip")}});
  CHECK(mine(skip, z) == std::vector<Triple>{{0, 2, 3}, {1, 3, 2}});
  // A wider window makes (2, 0, 1) semi-hard: 1 < 2 < 1 + 1.5.
  SemiHard wide = make({{"fallback", std::string("skip")}, {"margin", 1.5}});
  CHECK(mine(wide, z) == std::vector<Triple>{{0, 2, 3}, {1, 3, 2}, {2, 0, 1}});
}

TEST_CASE("semi_hard: picks the nearest negative inside the window", "[plugins][semi_hard]") {
  // From row 0: negatives at 2.125, 1.0625, 0.5, 1.5; from row 1: 1.125, 2.0625, 0.5, 2.5.
  const std::vector<float> xs = {0, 1, 2.125f, -1.0625f, 0.5f, -1.5f};
  CHECK(mine_pair({{"use_labels", true}}, xs) == std::vector<Triple>{{0, 1, 3}, {1, 0, 2}});
  CHECK(mine_pair({{"use_labels", true}, {"fallback", std::string("skip")}}, xs) ==
        std::vector<Triple>{{0, 1, 3}, {1, 0, 2}});
  // Window (1, 1.1): only 1.0625 is inside for (0, 1); for (1, 0) the nearest farther one, 1.125,
  // is now easy: tfa still takes it, skip drops the pair.
  CHECK(mine_pair({{"use_labels", true}, {"margin", 0.1}}, xs) == std::vector<Triple>{{0, 1, 3}, {1, 0, 2}});
  CHECK(mine_pair({{"use_labels", true}, {"margin", 0.1}, {"fallback", std::string("skip")}}, xs) ==
        std::vector<Triple>{{0, 1, 3}});
}

TEST_CASE("semi_hard: fallback when every farther negative is easy", "[plugins][semi_hard]") {
  // From row 0: negatives at 0.25, 3, 2; from row 1: 0.75, 2, 3. Nothing in (1, 1.2).
  const std::vector<float> xs = {0, 1, 0.25f, 3, -2};
  // tfa: the nearest negative farther than the positive (as TF: min d(a,n) over d(a,n) > d(a,p)).
  CHECK(mine_pair({{"use_labels", true}}, xs) == std::vector<Triple>{{0, 1, 4}, {1, 0, 3}});
  CHECK(mine_pair({{"use_labels", true}, {"fallback", std::string("skip")}}, xs).empty());
  // margin 1.5: the same negatives are now semi-hard, and skip keeps them.
  CHECK(mine_pair({{"use_labels", true}, {"fallback", std::string("skip")}, {"margin", 1.5}}, xs) ==
        std::vector<Triple>{{0, 1, 4}, {1, 0, 3}});
}

TEST_CASE("semi_hard: fallback when every negative is hard takes the farthest", "[plugins][semi_hard]") {
  // From row 0: negatives at 0.5, 0.75, 0.125; from row 1: 0.5, 0.25, 0.875. None beyond d(a,p) = 1.
  const std::vector<float> xs = {0, 1, 0.5f, 0.75f, 0.125f};
  CHECK(mine_pair({{"use_labels", true}}, xs) == std::vector<Triple>{{0, 1, 3}, {1, 0, 4}});
  CHECK(mine_pair({{"use_labels", true}, {"fallback", std::string("skip")}}, xs).empty());
}

TEST_CASE("semi_hard: a negative exactly at d(a,p) is not farther, ties take the lower row",
          "[plugins][semi_hard]") {
  // Row 2 at -1 is exactly as far from row 0 as the positive; row 3 at 1.5 is easy.
  // From row 1: row 2 at 2, row 3 at 0.5.
  CHECK(mine_pair({{"use_labels", true}}, {0, 1, -1, 1.5f}) == std::vector<Triple>{{0, 1, 3}, {1, 0, 2}});
  // Only row 2 at exactly d(a,p): not semi-hard, but it is the farthest (hard) negative.
  CHECK(mine_pair({{"use_labels", true}}, {0, 1, -1}) == std::vector<Triple>{{0, 1, 2}, {1, 0, 2}});
  // Rows 2 and 3 both at 1.125 from row 0: row 2. From row 1 they are at 0.125 and 2.125.
  CHECK(mine_pair({{"use_labels", true}}, {0, 1, 1.125f, -1.125f}) == std::vector<Triple>{{0, 1, 2}, {1, 0, 3}});
  // All hard and tied: the lower row.
  CHECK(mine_pair({{"use_labels", true}}, {0, 1, 0.5f, 0.5f}) == std::vector<Triple>{{0, 1, 2}, {1, 0, 2}});
}

TEST_CASE("semi_hard: use_labels without labels is a UsageError", "[plugins][semi_hard]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings z{on_line({0, 1, 2, 3}), &sample, nullptr, 2};
  SemiHard miner = make({{"use_labels", true}});
  contra::Pairs pairs;
  CHECK_THROWS_WITH(miner.mine(z, pairs),
                    "semi_hard: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}

TEST_CASE("semi_hard: matches TripletSemiHardLoss's rule on a random batch", "[plugins][semi_hard]") {
  // 3 views of 100 samples (more rows than one distance block); labels in 7 classes.
  const int n = 100, v = 3, m = n * v, dim = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label(m);
  for (int r = 0; r < m; ++r) label[r] = (sample[r] * 5) % 7;
  contra::Tensor x = random_matrix(m, dim, 3);
  const float* p = x.data<float>();
  for (bool use_labels : {false, true})
    for (std::string dist : {"euclidean", "cosine"})
      for (std::string fallback : {"tfa", "skip"}) {
        CAPTURE(use_labels, dist, fallback);
        const std::vector<std::int64_t>& g = use_labels ? label : sample;
        auto d = [&](int a, int b) {
          double ab = 0, aa = 0, bb = 0, ss = 0;
          for (int k = 0; k < dim; ++k) {
            const double s = p[a * dim + k], t = p[b * dim + k];
            ab += s * t, aa += s * s, bb += t * t, ss += (s - t) * (s - t);
          }
          return dist == "cosine" ? 1.0 - ab / std::sqrt(aa * bb) : std::sqrt(ss);
        };
        SemiHard miner = make({{"use_labels", use_labels}, {"distance", dist}, {"fallback", fallback}});
        contra::Embeddings z{x, &sample, &label, v};
        std::vector<Triple> got = mine(miner, z);
        // Pairs whose pick hinges on rounding (a negative within 1e-5 of d(a,p), or of the window's
        // end) are not checked; there must be few.
        std::size_t expected_count = 0, ambiguous = 0, pairs = 0;
        for (int a = 0; a < m; ++a)
          for (int q = 0; q < m; ++q) {
            if (q == a || g[q] != g[a]) continue;
            ++pairs;
            const double dap = d(a, q);
            double above = 1e300, farthest = -1;
            bool tie = false;
            for (int j = 0; j < m; ++j) {
              if (g[j] == g[a]) continue;
              const double dan = d(a, j);
              if (dan > dap) above = std::min(above, dan);
              farthest = std::max(farthest, dan);
              tie = tie || std::abs(dan - dap) < 1e-5;
            }
            if (tie || std::abs(above - dap - 0.2) < 1e-5) {
              ++ambiguous;
              continue;
            }
            if (fallback == "skip" && !(above < dap + 0.2)) continue;
            ++expected_count;
            const double want = above < 1e300 ? above : farthest;
            auto it = std::lower_bound(got.begin(), got.end(), Triple{a, q, 0});
            REQUIRE(it != got.end());
            REQUIRE(std::get<0>(*it) == a);
            REQUIRE(std::get<1>(*it) == q);
            CHECK(std::abs(d(a, std::get<2>(*it)) - want) < 1e-5);
          }
        CHECK(ambiguous * 100 < pairs);
        CHECK(got.size() >= expected_count);
        CHECK(got.size() <= expected_count + ambiguous);
      }
}
