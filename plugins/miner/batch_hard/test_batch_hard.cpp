#include "batch_hard.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::BatchHard;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using Triple = std::tuple<int, int, int>;

BatchHard make(Params p = {}) { return BatchHard(BatchHard::schema().bind(p)); }

contra::Tensor matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& v) {
  REQUIRE(static_cast<std::int64_t>(v.size()) == rows * cols);
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// Points (x, 0) on a line.
contra::Tensor on_line(const std::vector<float>& xs) {
  std::vector<float> v;
  for (float x : xs) v.insert(v.end(), {x, 0.0f});
  return matrix(static_cast<std::int64_t>(xs.size()), 2, v);
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

std::vector<Triple> mine(BatchHard& miner, const contra::Embeddings& z) {
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

}  // namespace

TEST_CASE("batch_hard: schema is well formed with its parameters and defaults", "[plugins][batch_hard]") {
  contra::Schema s = BatchHard::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "batch_hard");
  contra::Params p = s.bind({});
  CHECK(p.get<std::string>("distance") == "euclidean");
  CHECK_FALSE(p.get<bool>("use_labels"));
  CHECK_THROWS_AS(s.bind({{"margin", 0.2}}), contra::ConfigError);
}

TEST_CASE("batch_hard: farthest positive and nearest negative per anchor", "[plugins][batch_hard]") {
  // Two samples, three views: rows 0 2 4 are sample 0, rows 1 3 5 sample 1.
  //   row: 0    1    2    3    4     5
  //   x:   0    5    1    3    2.5   12.5
  std::vector<std::int64_t> sample = samples(2, 3);
  contra::Embeddings z{on_line({0, 5, 1, 3, 2.5f, 12.5f}), &sample, nullptr, 3};
  BatchHard miner = make();
  // a=0: positives 2 (1), 4 (2.5); negatives 1 (5), 3 (3), 5 (12.5).
  // a=1: positives 3 (2), 5 (7.5); negatives 0 (5), 2 (4), 4 (2.5).
  // a=2: positives 0 (1), 4 (1.5); negatives 1 (4), 3 (2), 5 (11.5).
  // a=3: positives 1 (2), 5 (9.5); negatives 0 (3), 2 (2), 4 (0.5).
  // a=4: positives 0 (2.5), 2 (1.5); negatives 1 (2.5), 3 (0.5), 5 (10).
  // a=5: positives 1 (7.5), 3 (9.5); negatives 0 (12.5), 2 (11.5), 4 (10).
  CHECK(mine(miner, z) ==
        std::vector<Triple>{{0, 4, 3}, {1, 5, 4}, {2, 4, 3}, {3, 5, 4}, {4, 0, 3}, {5, 3, 4}});
}

TEST_CASE("batch_hard: ties go to the lower row", "[plugins][batch_hard]") {
  // Three samples, two views; row 0 at 0 has negatives 1 (at -1) and 2 (at 1) equally near.
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Embeddings z{on_line({0, -1, 1, 0.5f, -3, 2.5f}), &sample, nullptr, 2};
  BatchHard miner = make();
  std::vector<Triple> got = mine(miner, z);
  REQUIRE(got.size() == 6u);
  CHECK(got[0] == Triple{0, 3, 1});
}

TEST_CASE("batch_hard: cosine distance ignores the norm, euclidean does not", "[plugins][batch_hard]") {
  // Two samples, two views, on the unit circle at 0, 90, 30 (norm 3) and 200 degrees.
  auto at = [](double deg, double r) {
    const double t = deg * 3.14159265358979323846 / 180.0;
    return std::vector<float>{static_cast<float>(r * std::cos(t)), static_cast<float>(r * std::sin(t))};
  };
  std::vector<float> v;
  for (auto p : {at(0, 1), at(90, 1), at(30, 3), at(200, 1)}) v.insert(v.end(), p.begin(), p.end());
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings z{matrix(4, 2, v), &sample, nullptr, 2};
  // Angles to row 1 (90°): row 0 90°, row 2 60° → cosine picks row 2; in the plane row 0 is at
  // √2 and row 2 (3·(cos 30°, sin 30°)) at 2.65 → euclidean picks row 0.
  BatchHard cos = make({{"distance", std::string("cosine")}});
  CHECK(mine(cos, z) == std::vector<Triple>{{0, 2, 1}, {1, 3, 2}, {2, 0, 1}, {3, 1, 0}});
  BatchHard euc = make();
  CHECK(mine(euc, z) == std::vector<Triple>{{0, 2, 1}, {1, 3, 0}, {2, 0, 1}, {3, 1, 0}});
}

TEST_CASE("batch_hard: use_labels, and anchors without a positive are skipped", "[plugins][batch_hard]") {
  std::vector<std::int64_t> sample = samples(4, 1);
  contra::Tensor x = on_line({0, 1, 3, 7});
  SECTION("classes 0 1 0 1") {
    std::vector<std::int64_t> label = {0, 1, 0, 1};
    contra::Embeddings z{x, &sample, &label, 1};
    BatchHard by_label = make({{"use_labels", true}});
    CHECK(mine(by_label, z) == std::vector<Triple>{{0, 2, 1}, {1, 3, 0}, {2, 0, 1}, {3, 1, 2}});
    BatchHard by_sample = make();  // one view per sample: no anchor has a positive
    CHECK(mine(by_sample, z).empty());
  }
  SECTION("classes 0 0 0 1: row 3 has no positive, rows 0-2 one negative") {
    std::vector<std::int64_t> label = {0, 0, 0, 1};
    contra::Embeddings z{x, &sample, &label, 1};
    BatchHard by_label = make({{"use_labels", true}});
    CHECK(mine(by_label, z) == std::vector<Triple>{{0, 2, 3}, {1, 2, 3}, {2, 0, 3}});
  }
  SECTION("one class: no negatives, no triplets") {
    std::vector<std::int64_t> label = {4, 4, 4, 4};
    contra::Embeddings z{x, &sample, &label, 1};
    BatchHard by_label = make({{"use_labels", true}});
    CHECK(mine(by_label, z).empty());
  }
  SECTION("no labels") {
    contra::Embeddings z{x, &sample, nullptr, 1};
    BatchHard by_label = make({{"use_labels", true}});
    contra::Pairs pairs;
    CHECK_THROWS_WITH(by_label.mine(z, pairs),
                      "batch_hard: use_labels = true, but the batch has no labels (Embeddings::label is null)");
  }
}

TEST_CASE("batch_hard: matches a brute-force reference on a large random batch", "[plugins][batch_hard]") {
  // 700 rows: more than one distance block of anchors.
  std::vector<std::int64_t> sample = samples(350, 2);
  contra::Tensor x = random_matrix(700, 6, 11);
  contra::Embeddings z{x, &sample, nullptr, 2};
  for (std::string dist : {"euclidean", "cosine"}) {
    CAPTURE(dist);
    BatchHard miner = make({{"distance", dist}});
    std::vector<Triple> got = mine(miner, z);
    REQUIRE(got.size() == 700u);
    const float* p = x.data<float>();
    auto d = [&](int a, int b) {
      double ab = 0, aa = 0, bb = 0, ss = 0;
      for (int k = 0; k < 6; ++k) {
        const double u = p[a * 6 + k], w = p[b * 6 + k];
        ab += u * w, aa += u * u, bb += w * w, ss += (u - w) * (u - w);
      }
      return dist == "cosine" ? 1.0 - ab / std::sqrt(aa * bb) : std::sqrt(ss);
    };
    int mismatches = 0;
    for (auto [a, pos, neg] : got) {
      CHECK(pos == (a + 350) % 700);
      double best = 1e300;
      for (int j = 0; j < 700; ++j)
        if (sample[j] != sample[a]) best = std::min(best, d(a, j));
      mismatches += std::abs(d(a, neg) - best) > 1e-5;
    }
    CHECK(mismatches == 0);
  }
}
