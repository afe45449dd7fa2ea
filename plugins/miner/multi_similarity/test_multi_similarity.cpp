#include "multi_similarity.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::MultiSimilarity;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using PairList = std::vector<std::pair<int, int>>;

MultiSimilarity make(Params p = {}) { return MultiSimilarity(MultiSimilarity::schema().bind(p)); }

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

PairList sorted(const std::vector<std::pair<std::int32_t, std::int32_t>>& v) {
  PairList p(v.begin(), v.end());
  std::sort(p.begin(), p.end());
  return p;
}

struct Mined {
  PairList pos, neg;
};

Mined mine(MultiSimilarity& miner, const contra::Embeddings& z) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.triplets.empty());
  CHECK(pairs.memory_negative.empty());
  return {sorted(pairs.positive), sorted(pairs.negative)};
}

// Six rows in 4-D whose cosine similarities are exact in f32 (entries 0, ±1 with 1 or 4 of them
// non-zero, so norms are 1 or 2). Rows 0-2 are class 0; rows 3, 4, 5 each a class of its own.
//   row 0 = row 1 = (1,1,1,1)   row 2 = (1,0,0,0)
//   row 3 = (1,1,1,-1)   row 4 = (1,1,-1,-1)   row 5 = (-1,0,0,0)
// S from row 0 (and 1): row 1 (or 0) 1, row 2 .5 | negatives: row 3 .5, row 4 0, row 5 -.5
// S from row 2:         rows 0, 1 .5             | negatives: row 3 .5, row 4 .5, row 5 -1
// Rows 3-5 have no positive and give nothing.
const std::vector<float> exact = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0,  0, 0,
                                  1, 1, 1, -1, 1, 1, -1, -1, -1, 0, 0, 0};

Mined mine_exact(double epsilon) {
  std::vector<std::int64_t> sample = samples(6, 1);
  std::vector<std::int64_t> label = {0, 0, 0, 3, 4, 5};
  contra::Embeddings z{matrix(6, 4, exact), &sample, &label, 1};
  MultiSimilarity miner = make({{"epsilon", epsilon}, {"use_labels", true}});
  return mine(miner, z);
}

}  // namespace

TEST_CASE("multi_similarity: schema is well formed with its parameters and defaults",
          "[plugins][multi_similarity]") {
  contra::Schema s = MultiSimilarity::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "multi_similarity");
  contra::Params p = s.bind({});
  CHECK(p.get<double>("epsilon") == 0.1);
  CHECK_FALSE(p.get<bool>("use_labels"));
  CHECK_THROWS_AS(s.bind({{"epsilon", -0.1}}), contra::ConfigError);
}

TEST_CASE("multi_similarity: keeps and drops by hand with epsilon 0.1", "[plugins][multi_similarity]") {
  // Row 0: min_p S = .5, max_n S = .5. Negatives: .5 + .1 > .5 keeps 3; 0 and -.5 dropped.
  //        Positives: 1 - .1 < .5 drops row 1; .5 - .1 keeps row 2. Row 1 likewise.
  // Row 2: min_p S = .5, max_n S = .5: keeps rows 3 and 4 (.6 > .5), drops 5; keeps both positives.
  Mined m = mine_exact(0.1);
  CHECK(m.pos == PairList{{0, 2}, {1, 2}, {2, 0}, {2, 1}});
  CHECK(m.neg == PairList{{0, 3}, {1, 3}, {2, 3}, {2, 4}});
}

TEST_CASE("multi_similarity: the epsilon boundary is strict", "[plugins][multi_similarity]") {
  // With epsilon = 0.5, row 0's negative 4 (S = 0) sits exactly at 0 + .5 = min_p S = .5 and its
  // positive 1 (S = 1) exactly at 1 - .5 = max_n S = .5: both dropped. Just above, both kept.
  const Mined below = mine_exact(0.4999);
  const Mined at = mine_exact(0.5);
  const Mined above = mine_exact(0.5001);
  CHECK(at.pos == PairList{{0, 2}, {1, 2}, {2, 0}, {2, 1}});
  CHECK(at.neg == PairList{{0, 3}, {1, 3}, {2, 3}, {2, 4}});
  CHECK(below.pos == at.pos);
  CHECK(below.neg == at.neg);
  CHECK(above.pos == PairList{{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}});
  CHECK(above.neg == PairList{{0, 3}, {0, 4}, {1, 3}, {1, 4}, {2, 3}, {2, 4}});
  // Row 5 (S = -.5 from rows 0 and 1, -1 from row 2) needs epsilon > 1 and > 1.5.
  CHECK(mine_exact(1.0001).neg ==
        PairList{{0, 3}, {0, 4}, {0, 5}, {1, 3}, {1, 4}, {1, 5}, {2, 3}, {2, 4}});
  CHECK(mine_exact(1.5001).neg.size() == 9u);
}

TEST_CASE("multi_similarity: epsilon 0 keeps only pairs that cross", "[plugins][multi_similarity]") {
  const Mined m = mine_exact(0.0);  // nothing strictly crosses: S_an <= .5 <= S_ap everywhere
  CHECK(m.pos.empty());
  CHECK(m.neg.empty());
}

TEST_CASE("multi_similarity: sample grouping, and labels ignored without use_labels",
          "[plugins][multi_similarity]") {
  // Two views of two samples on the unit circle: sample 0 at 0° and 60°, sample 1 at 90° and 180°
  // (norms differ; cosine ignores them). S: (0,2) .5, (1,3) 0; (0,1) 0, (0,3) -1, (2,1) .866,
  // (2,3) -.5.
  auto at = [](double deg, double r) {
    const double t = deg * 3.14159265358979323846 / 180.0;
    return std::vector<float>{static_cast<float>(r * std::cos(t)), static_cast<float>(r * std::sin(t))};
  };
  std::vector<float> v;
  for (auto p : {at(0, 1), at(90, 2), at(60, 3), at(180, 1)}) v.insert(v.end(), p.begin(), p.end());
  std::vector<std::int64_t> sample = samples(2, 2);
  std::vector<std::int64_t> label = {0, 0, 0, 0};  // one class: with use_labels no negative at all
  contra::Embeddings z{matrix(4, 2, v), &sample, &label, 2};
  MultiSimilarity miner = make();
  // Row 0: min_p .5, max_n 0: negs 0 + .1 > .5? no; -1 no. Pos .5 - .1 < 0? no.
  // Row 1: min_p 0 (row 3), max_n .866 (row 2): negs row 0 (0 + .1 > 0) yes, row 2 yes; pos row 3 yes.
  // Row 2: min_p .5 (row 0), max_n .866 (row 1): negs row 1 yes, row 3 (-.5) no; pos row 0 yes.
  // Row 3: min_p 0 (row 1), max_n -.5 (row 2): negs row 0 (-1 + .1) no, row 2 (-.4 > 0) no;
  //        pos 0 - .1 < -.5? no.
  const Mined m = mine(miner, z);
  CHECK(m.pos == PairList{{1, 3}, {2, 0}});
  CHECK(m.neg == PairList{{1, 0}, {1, 2}, {2, 1}});
  MultiSimilarity by_label = make({{"use_labels", true}});
  const Mined none = mine(by_label, z);
  CHECK(none.pos.empty());
  CHECK(none.neg.empty());
}

TEST_CASE("multi_similarity: use_labels without labels is a UsageError", "[plugins][multi_similarity]") {
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Embeddings z{random_matrix(6, 3, 1), &sample, nullptr, 2};
  MultiSimilarity miner = make({{"use_labels", true}});
  contra::Pairs pairs;
  CHECK_THROWS_WITH(miner.mine(z, pairs),
                    "multi_similarity: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}

TEST_CASE("multi_similarity: matches the rule on a random batch", "[plugins][multi_similarity]") {
  // 300 rows (more than one block of anchors), 5 classes, in 3-D so that pairs are kept and dropped.
  const int n = 150, v = 2, m = n * v, dim = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label(m);
  for (int r = 0; r < m; ++r) label[r] = sample[r] % 5;
  contra::Tensor x = random_matrix(m, dim, 21);
  const float* p = x.data<float>();
  auto s = [&](int a, int b) {
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < dim; ++k) {
      const double u = p[a * dim + k], w = p[b * dim + k];
      ab += u * w, aa += u * u, bb += w * w;
    }
    return ab / std::sqrt(aa * bb);
  };
  for (bool use_labels : {false, true}) {
    CAPTURE(use_labels);
    const std::vector<std::int64_t>& g = use_labels ? label : sample;
    MultiSimilarity miner = make({{"use_labels", use_labels}});
    contra::Embeddings z{x, &sample, &label, v};
    const Mined got = mine(miner, z);
    // Pairs within 1e-5 of a threshold are decided by rounding: left out of the comparison.
    PairList pos, neg, ambiguous;
    for (int a = 0; a < m; ++a) {
      double min_pos = 1e300, max_neg = -1e300;
      for (int j = 0; j < m; ++j) {
        if (j == a) continue;
        if (g[j] == g[a])
          min_pos = std::min(min_pos, s(a, j));
        else
          max_neg = std::max(max_neg, s(a, j));
      }
      for (int j = 0; j < m; ++j) {
        if (j == a) continue;
        const double t = g[j] == g[a] ? s(a, j) - 0.1 - max_neg : s(a, j) + 0.1 - min_pos;
        if (std::abs(t) < 1e-5)
          ambiguous.emplace_back(a, j);
        else if (g[j] == g[a] && t < 0)
          pos.emplace_back(a, j);
        else if (g[j] != g[a] && t > 0)
          neg.emplace_back(a, j);
      }
    }
    CHECK(ambiguous.size() < 10u);
    auto unambiguous = [&](PairList l) {
      l.erase(std::remove_if(l.begin(), l.end(),
                             [&](auto q) { return std::binary_search(ambiguous.begin(), ambiguous.end(), q); }),
              l.end());
      return l;
    };
    CHECK(!pos.empty());
    CHECK(!neg.empty());
    CHECK(unambiguous(got.pos) == pos);
    CHECK(unambiguous(got.neg) == neg);
  }
}
