#include "batch_all.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::BatchAll;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using Triple = std::tuple<int, int, int>;

BatchAll make(Params p = {}) { return BatchAll(BatchAll::schema().bind(p)); }

contra::Tensor matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& v) {
  REQUIRE(static_cast<std::int64_t>(v.size()) == rows * cols);
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  std::copy(v.begin(), v.end(), t.data<float>());
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

std::vector<Triple> mine(BatchAll& miner, const contra::Embeddings& z) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.positive.empty());
  CHECK(pairs.negative.empty());
  CHECK(pairs.memory_negative.empty());
  std::vector<Triple> t;
  for (const auto& x : pairs.triplets) t.emplace_back(x.anchor, x.positive, x.negative);
  return t;
}

std::vector<Triple> sorted(std::vector<Triple> t) {
  std::sort(t.begin(), t.end());
  return t;
}

// Four rows on a line (x, 0): samples 0 and 1, two views each.
//   row 0 (sample 0) at 0, row 1 (sample 1) at 1, row 2 (sample 0) at 0.5, row 3 (sample 1) at 3.
// d01 = 1, d02 = 0.5, d03 = 3, d12 = 0.5, d13 = 2, d23 = 2.5; all exact in f32.
const std::vector<float> line = {0.0f, 0.0f, 1.0f, 0.0f, 0.5f, 0.0f, 3.0f, 0.0f};

}  // namespace

TEST_CASE("batch_all: schema is well formed with its parameters and defaults", "[plugins][batch_all]") {
  contra::Schema s = BatchAll::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "batch_all");
  contra::Params p = s.bind({});
  CHECK(p.get<std::string>("distance") == "euclidean");
  CHECK(p.get<double>("margin") == 0.2);
  CHECK_FALSE(p.get<bool>("only_violating"));
  CHECK_FALSE(p.get<bool>("use_labels"));
  CHECK_THROWS_AS(s.bind({{"distance", std::string("manhattan")}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"margin", -0.1}}), contra::ConfigError);
}

TEST_CASE("batch_all: lists every triplet of a 2x2 batch", "[plugins][batch_all]") {
  BatchAll miner = make();
  std::vector<std::int64_t> sample = samples(2, 2);  // 0 1 0 1
  contra::Embeddings z{matrix(4, 2, line), &sample, nullptr, 2};
  const std::vector<Triple> want = {{0, 2, 1}, {0, 2, 3}, {1, 3, 0}, {1, 3, 2},
                                    {2, 0, 1}, {2, 0, 3}, {3, 1, 0}, {3, 1, 2}};
  std::vector<Triple> got = mine(miner, z);
  CHECK(got == want);  // already in (anchor, positive, negative) order
}

TEST_CASE("batch_all: N samples x V views give N*V*(V-1)*(N-1)*V valid triplets", "[plugins][batch_all]") {
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes = {{4, 2}, {3, 3}, {7, 2}, {2, 4}, {5, 1}, {1, 3}};
  for (auto [n, v] : shapes) {
    CAPTURE(n, v);
    BatchAll miner = make();
    std::vector<std::int64_t> sample = samples(n, v);
    const std::int64_t m = n * v;
    contra::Embeddings z{random_matrix(m, 5, 17), &sample, nullptr, v};
    std::vector<Triple> got = mine(miner, z);
    // M anchors, V - 1 positives each, M - V negatives each.
    CHECK(static_cast<std::int64_t>(got.size()) == m * (v - 1) * (m - v));
    CHECK(std::set<Triple>(got.begin(), got.end()).size() == got.size());
    CHECK(std::is_sorted(got.begin(), got.end()));
    for (auto [a, p, neg] : got) {
      CHECK(a != p);
      CHECK(sample[a] == sample[p]);
      CHECK(sample[a] != sample[neg]);
    }
  }
}

TEST_CASE("batch_all: only_violating keeps d(a,p) - d(a,n) + margin > 0 (euclidean)", "[plugins][batch_all]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings z{matrix(4, 2, line), &sample, nullptr, 2};
  SECTION("margin 0.2") {
    BatchAll miner = make({{"only_violating", true}});
    // (1,3,0): 2 - 1 + .2; (1,3,2): 2 - .5 + .2; (2,0,1): .5 - .5 + .2.
    CHECK(sorted(mine(miner, z)) == std::vector<Triple>{{1, 3, 0}, {1, 3, 2}, {2, 0, 1}});
  }
  SECTION("margin 0.6 adds (0,2,1): .5 - 1 + .6 and (3,1,2): 2 - 2.5 + .6") {
    BatchAll miner = make({{"only_violating", true}, {"margin", 0.6}});
    CHECK(sorted(mine(miner, z)) ==
          std::vector<Triple>{{0, 2, 1}, {1, 3, 0}, {1, 3, 2}, {2, 0, 1}, {3, 1, 2}});
  }
  SECTION("margin 0.5 puts those two exactly at 0: not kept (strict)") {
    BatchAll miner = make({{"only_violating", true}, {"margin", 0.5}});
    CHECK(sorted(mine(miner, z)) == std::vector<Triple>{{1, 3, 0}, {1, 3, 2}, {2, 0, 1}});
  }
  SECTION("margin 0 keeps only strictly violating triplets") {
    BatchAll miner = make({{"only_violating", true}, {"margin", 0.0}});
    CHECK(sorted(mine(miner, z)) == std::vector<Triple>{{1, 3, 0}, {1, 3, 2}});
  }
}

TEST_CASE("batch_all: only_violating with cosine distance on a circle", "[plugins][batch_all]") {
  // Rows along the axes, with different norms: (1,0) s0, (0,5) s1, (0,-2) s0, (-3,0) s1.
  // Cosine distances: d01 = d02 = d13 = d23 = 1, d03 = d12 = 2.
  std::vector<std::int64_t> sample = samples(2, 2);
  const std::vector<float> pts = {1, 0, 0, 5, 0, -2, -3, 0};
  contra::Embeddings z{matrix(4, 2, pts), &sample, nullptr, 2};
  BatchAll cos = make({{"only_violating", true}, {"distance", std::string("cosine")}});
  CHECK(sorted(mine(cos, z)) == std::vector<Triple>{{0, 2, 1}, {1, 3, 0}, {2, 0, 3}, {3, 1, 2}});
  // Euclidean on the same points: d02 = 2.24 < d01 = 5.10, d03 = 4; d13 = 5.83 > d01 = 5.10,
  // d12 = 7; d20 = 2.24 < d23 = 3.61, d21 = 7; d31 = 5.83 > d30 = 4, d32 = 3.61.
  BatchAll euc = make({{"only_violating", true}});
  CHECK(sorted(mine(euc, z)) == std::vector<Triple>{{1, 3, 0}, {3, 1, 0}, {3, 1, 2}});
}

TEST_CASE("batch_all: use_labels groups rows by class label", "[plugins][batch_all]") {
  // One view of four samples; classes 0 0 1 1.
  std::vector<std::int64_t> sample = samples(4, 1);
  std::vector<std::int64_t> label = {0, 0, 1, 1};
  contra::Embeddings z{random_matrix(4, 3, 5), &sample, &label, 1};
  BatchAll by_label = make({{"use_labels", true}});
  CHECK(mine(by_label, z) == std::vector<Triple>{{0, 1, 2}, {0, 1, 3}, {1, 0, 2}, {1, 0, 3},
                                                 {2, 3, 0}, {2, 3, 1}, {3, 2, 0}, {3, 2, 1}});
  BatchAll by_sample = make();  // labels present but not used: no sample has a second view
  CHECK(mine(by_sample, z).empty());

  // Two views of four samples, classes 0 0 1 1: each row has 3 positives (its other view and both
  // views of the other sample of its class) and 4 negatives.
  std::vector<std::int64_t> sample2 = samples(4, 2);
  std::vector<std::int64_t> label2 = {0, 0, 1, 1, 0, 0, 1, 1};
  contra::Embeddings z2{random_matrix(8, 3, 6), &sample2, &label2, 2};
  std::vector<Triple> got = mine(by_label, z2);
  CHECK(got.size() == 8u * 3u * 4u);
  for (auto [a, p, n] : got) {
    CHECK(label2[a] == label2[p]);
    CHECK(label2[a] != label2[n]);
  }
  CHECK(mine(by_sample, z2).size() == 8u * 1u * 6u);
}

TEST_CASE("batch_all: use_labels without labels is a UsageError", "[plugins][batch_all]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings z{matrix(4, 2, line), &sample, nullptr, 2};
  BatchAll miner = make({{"use_labels", true}});
  contra::Pairs pairs;
  CHECK_THROWS_WITH(miner.mine(z, pairs),
                    "batch_all: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}

TEST_CASE("batch_all: rejects malformed embeddings", "[plugins][batch_all]") {
  BatchAll miner = make();
  contra::Pairs pairs;
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings wrong_rows{matrix(4, 2, line), &sample, nullptr, 2};
  std::vector<std::int64_t> short_sample = {0, 1, 0};
  wrong_rows.sample = &short_sample;
  CHECK_THROWS_WITH(miner.mine(wrong_rows, pairs),
                    "batch_all: Embeddings::sample must give the sample of each of the 4 rows");
  contra::Embeddings wrong_type{contra::Tensor::zeros({4, 2}, contra::DType::i64), &sample, nullptr, 2};
  CHECK_THROWS_AS(miner.mine(wrong_type, pairs), contra::UsageError);
  contra::Embeddings rank1{contra::Tensor::zeros({4}, contra::DType::f32), &sample, nullptr, 2};
  CHECK_THROWS_AS(miner.mine(rank1, pairs), contra::UsageError);
}

TEST_CASE("batch_all: repeated calls give the same triplets", "[plugins][batch_all]") {
  BatchAll miner = make({{"only_violating", true}, {"margin", 1.0}});
  std::vector<std::int64_t> sample = samples(300, 2);  // more rows than one distance block
  contra::Embeddings z{random_matrix(600, 8, 9), &sample, nullptr, 2};
  std::vector<Triple> first = mine(miner, z);
  CHECK_FALSE(first.empty());
  CHECK(first.size() < 600u * 598u);
  CHECK(mine(miner, z) == first);
}
