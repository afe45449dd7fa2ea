#include "knn.hpp"

#include "test_support.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::Knn;
using Figures = std::vector<std::pair<std::string, double>>;

namespace {

using ints = std::vector<std::int64_t>;
using reals = std::vector<double>;

Knn make(ints k, reals t, std::int64_t chunk = 1024) {
  return Knn(Knn::schema().bind({{"k", k}, {"temperature", t}, {"chunk", chunk}}));
}

// A split from rows of 2-D (or any D) points.
contra::FeatureSet split(const std::vector<std::vector<float>>& rows, ints labels, std::int64_t classes) {
  contra::FeatureSet s;
  const std::int64_t n = static_cast<std::int64_t>(rows.size()), d = static_cast<std::int64_t>(rows[0].size());
  s.features = contra::Tensor::empty({n, d}, contra::DType::f32);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) s.features.data<float>()[i * d + k] = rows[i][k];
  s.labels = std::move(labels);
  s.num_classes = classes;
  return s;
}

std::vector<float> at_angle(double degrees, double radius = 1.0) {
  const double a = degrees * 3.14159265358979323846 / 180.0;
  return {static_cast<float>(radius * std::cos(a)), static_cast<float>(radius * std::sin(a))};
}

// Clustered random data: class c around a random centre, plus noise.
contra::FeatureSet random_split(std::int64_t n, std::int64_t d, std::int64_t classes, double noise,
                                std::uint64_t seed) {
  contra::Rng centres(99, 0, 0, 0, 0);
  std::vector<float> mu(static_cast<std::size_t>(classes * d));
  for (auto& v : mu) v = static_cast<float>(centres.normal());
  contra::Rng rng(seed, 0, 0, 0, 1);
  contra::FeatureSet s;
  s.features = contra::Tensor::empty({n, d}, contra::DType::f32);
  s.num_classes = classes;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = rng.integer(0, classes - 1);
    s.labels.push_back(c);
    for (std::int64_t k = 0; k < d; ++k)
      s.features.data<float>()[i * d + k] = mu[c * d + k] + static_cast<float>(noise * rng.normal());
  }
  return s;
}

double figure(const Figures& f, const std::string& name) {
  for (const auto& [k, v] : f)
    if (k == name) return v;
  FAIL("figure " << name << " missing");
  return 0.0;
}

// The definition, written directly (double precision, full sort).
std::vector<double> reference(const contra::FeatureSet& train, const contra::FeatureSet& test, const ints& ks,
                              const reals& ts) {
  const std::int64_t n = train.features.dim(0), m = test.features.dim(0), d = train.features.dim(1);
  auto unit = [d](const float* x) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += double(x[k]) * x[k];
    std::vector<double> u(static_cast<std::size_t>(d));
    for (std::int64_t k = 0; k < d; ++k) u[k] = x[k] / std::sqrt(ss);
    return u;
  };
  std::vector<double> acc(ks.size() + 1, 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    const auto q = unit(test.features.data<float>() + i * d);
    std::vector<std::pair<double, std::int64_t>> sims;
    for (std::int64_t j = 0; j < n; ++j) {
      const auto t = unit(train.features.data<float>() + j * d);
      double dot = 0;
      for (std::int64_t k = 0; k < d; ++k) dot += q[k] * t[k];
      sims.push_back({-dot, j});
    }
    std::sort(sims.begin(), sims.end());
    for (std::size_t p = 0; p < ks.size(); ++p) {
      std::vector<double> score(static_cast<std::size_t>(train.num_classes), 0.0);
      for (std::int64_t r = 0; r < std::min(ks[p], n); ++r)
        score[train.labels[sims[r].second]] += std::exp(-sims[r].first / ts[p]);
      std::vector<std::int64_t> order(score.size());
      for (std::size_t c = 0; c < order.size(); ++c) order[c] = static_cast<std::int64_t>(c);
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return score[a] > score[b]; });
      acc[p] += order[0] == test.labels[i] ? 1 : 0;
      if (p == 0) acc[ks.size()] += std::find(order.begin(), order.begin() + std::min<std::size_t>(5, order.size()),
                                              test.labels[i]) != order.begin() + std::min<std::size_t>(5, order.size());
    }
  }
  for (auto& a : acc) a /= static_cast<double>(m);
  return acc;
}

}  // namespace

TEST_CASE("knn: default parameters give the figure names top1_k200_t0.1, top1_k20_t0.07, top5_k200_t0.1",
          "[evaluator]") {
  Knn knn(Knn::schema().bind({}));
  CHECK(knn.figure_names() == std::vector<std::string>{"top1_k200_t0.1", "top1_k20_t0.07", "top5_k200_t0.1"});
  const auto train = split({at_angle(0), at_angle(90)}, {0, 1}, 2);
  const auto test = split({at_angle(10)}, {0}, 2);
  const Figures f = knn.evaluate(train, test, 0);
  REQUIRE(f.size() == 3);
  CHECK(f[0].first == "top1_k200_t0.1");
  CHECK(f[1].first == "top1_k20_t0.07");
  CHECK(f[2].first == "top5_k200_t0.1");
}

TEST_CASE("knn: the vote worked by hand, where k and T change the winner", "[evaluator]") {
  // Train: class 0 at 0 degrees; class 1 at +60 and -60 degrees (cosine 0.5 to the first query).
  // Query A at 0 degrees (label 0):
  //   k = 1: only the class-0 point votes                          -> 0 (right)
  //   k = 3, T = 1:   class 0: e^1 = 2.718, class 1: 2 e^0.5 = 3.297 -> 1 (wrong)
  //   k = 3, T = 0.1: class 0: e^10 = 22026, class 1: 2 e^5 = 297  -> 0 (right)
  //   (class 1 wins at k = 3 exactly when ln 2 > 0.5 / T, i.e. T > 0.721)
  // Query B at 180 degrees (label 1): cosines -1 (class 0), -0.5 and -0.5 (class 1):
  //   k = 1 -> 1; k = 3, T = 1: 2 e^-0.5 = 1.213 > e^-1 = 0.368 -> 1; T = 0.1 -> 1.
  // Norms do not matter (features are normalised): radii 1, 3 and 0.2.
  const auto train = split({at_angle(0, 1.0), at_angle(60, 3.0), at_angle(-60, 0.2)}, {0, 1, 1}, 2);
  const auto test = split({at_angle(0, 7.0), at_angle(180)}, {0, 1}, 2);
  Knn knn = make({1, 3, 3}, {1.0, 1.0, 0.1});
  const Figures f = knn.evaluate(train, test, 0);
  CHECK(figure(f, "top1_k1_t1") == 1.0);
  CHECK(figure(f, "top1_k3_t1") == 0.5);
  CHECK(figure(f, "top1_k3_t0.1") == 1.0);
  CHECK(figure(f, "top5_k1_t1") == 1.0);  // 2 classes: always within the top 5

  // T = 0.8 > 0.721: still class 1; T = 0.7 < 0.721: class 0.
  CHECK(figure(make({3, 3}, {0.8, 0.7}).evaluate(train, test, 0), "top1_k3_t0.8") == 0.5);
  CHECK(figure(make({3, 3}, {0.8, 0.7}).evaluate(train, test, 0), "top1_k3_t0.7") == 1.0);
}

TEST_CASE("knn: equal similarities go to the lower train index, equal scores to the lower class", "[evaluator]") {
  const auto test = split({{1.0f, 0.0f}}, {1}, 2);
  // Rows 0 and 1 point the same way: k = 1 takes row 0.
  CHECK(make({1}, {0.1}).evaluate(split({{2, 0}, {1, 0}, {0, 1}}, {1, 0, 0}, 2), test, 0)[0].second == 1.0);
  CHECK(make({1}, {0.1}).evaluate(split({{2, 0}, {1, 0}, {0, 1}}, {0, 1, 0}, 2), test, 0)[0].second == 0.0);
  // Rows 0 (class 1) and 1 (class 0) both at cosine 0: equal scores, class 0 wins although
  // its neighbour comes second.
  const auto orth = split({{0, 1}, {0, -1}, {-1, 0}}, {1, 0, 0}, 2);
  CHECK(make({2}, {0.1}).evaluate(orth, test, 0)[0].second == 0.0);
  CHECK(make({2}, {0.1}).evaluate(orth, split({{1.0f, 0.0f}}, {0}, 2), 0)[0].second == 1.0);
}

TEST_CASE("knn: top-5 counts the true class among the five best scores", "[evaluator]") {
  // Class c has one train point at 10 c degrees; queries at 0 degrees rank class c c-th.
  std::vector<std::vector<float>> rows;
  ints labels;
  for (int c = 0; c < 7; ++c) {
    rows.push_back(at_angle(10.0 * c));
    labels.push_back(c);
  }
  const auto train = split(rows, labels, 7);
  const auto test = split({at_angle(0), at_angle(0), at_angle(0), at_angle(0)}, {0, 4, 5, 6}, 7);
  const Figures f = make({7, 2}, {0.1, 0.5}).evaluate(train, test, 0);
  CHECK(figure(f, "top1_k7_t0.1") == 0.25);
  CHECK(figure(f, "top1_k2_t0.5") == 0.25);
  CHECK(figure(f, "top5_k7_t0.1") == 0.5);  // labels 0 and 4 (ranks 0 and 4), not 5 and 6
  // With k = 2 only classes 0 and 1 score; the others tie at 0 and rank by class index
  // (as sorting the score vector does in the reference implementations): 2, 3, 4 complete the top 5.
  const Figures g = make({2}, {0.1}).evaluate(train, test, 0);
  CHECK(figure(g, "top5_k2_t0.1") == 0.5);
}

TEST_CASE("knn: matches the definition on clustered data, whatever chunk and thread count", "[evaluator]") {
  const auto train = random_split(700, 16, 10, 1.5, 1);
  const auto test = random_split(150, 16, 10, 1.5, 2);
  const ints ks{200, 20, 1, 5};
  const reals ts{0.1, 0.07, 0.5, 1.0};
  const Figures big = make(ks, ts, 1024).evaluate(train, test, 0);
  const Figures one = make(ks, ts, 1).evaluate(train, test, 0);
  const Figures odd = make(ks, ts, 37).evaluate(train, test, 0);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Figures serial = make(ks, ts, 64).evaluate(train, test, 0);
  omp_set_num_threads(threads);
  CHECK(one == big);
  CHECK(odd == big);
  CHECK(serial == big);
  const auto ref = reference(train, test, ks, ts);
  REQUIRE(big.size() == ref.size());
  for (std::size_t p = 0; p < ref.size(); ++p) CHECK(big[p].second == Approx(ref[p]).margin(1e-12));
  // Clusters with noise: clearly better than chance, not perfect.
  CHECK(big[0].second > 0.5);
}

TEST_CASE("knn: k above the train size uses every train row", "[evaluator]") {
  const auto train = random_split(30, 4, 3, 0.5, 3);
  const auto test = random_split(20, 4, 3, 0.5, 4);
  const Figures f = make({1000, 30}, {0.2, 0.2}).evaluate(train, test, 0);
  CHECK(f[0].second == f[1].second);
}

TEST_CASE("knn: refuses k and temperature lists of different lengths, and repeated pairs", "[evaluator]") {
  CHECK_THROWS_AS(make({200, 20}, {0.1}), contra::ConfigError);
  CHECK_THROWS_WITH(make({200}, {0.1, 0.07}),
                    Catch::Contains("knn.temperature") && Catch::Contains("has 2 values but k has 1"));
  CHECK_THROWS_WITH(make({20, 20}, {0.1, 0.1}), Catch::Contains("repeats an earlier one (top1_k20_t0.1)"));
  CHECK_THROWS_AS(make({0}, {0.1}), contra::ConfigError);
  CHECK_THROWS_AS(make({5}, {0.0}), contra::ConfigError);
  CHECK_THROWS_AS(make({5}, {0.1}, 0), contra::ConfigError);
}

TEST_CASE("knn: refuses splits that do not fit together", "[evaluator]") {
  Knn knn = make({1}, {0.1});
  const auto train = split({{1, 0}, {0, 1}}, {0, 1}, 2);
  CHECK_THROWS_WITH(knn.evaluate(train, split({{1, 0, 0}}, {0}, 2), 0),
                    Catch::Contains("train features have 2 dimensions, test features 3"));
  CHECK_THROWS_WITH(knn.evaluate(train, split({{1, 0}}, {2}, 2), 0),
                    Catch::Contains("test split: label 2 of row 0 is outside [0, 2)"));
  CHECK_THROWS_WITH(knn.evaluate(split({{1, 0}, {0, 1}}, {0}, 2), train, 0),
                    Catch::Contains("train split: 1 labels for 2 rows"));
  contra::FeatureSet empty;
  CHECK_THROWS_AS(knn.evaluate(train, empty, 0), contra::UsageError);
}

TEST_CASE("knn: 10k test x 60k train x 128 timing", "[.][bench]") {
  const auto train = random_split(60000, 128, 10, 3.0, 5);
  const auto test = random_split(10000, 128, 10, 3.0, 6);
  Knn knn(Knn::schema().bind({}));
  const auto t0 = std::chrono::steady_clock::now();
  const Figures f = knn.evaluate(train, test, 0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "knn 10000 x 60000 x 128, defaults, " << omp_get_max_threads() << " threads: " << s << " s\n";
  for (const auto& [k, v] : f) std::cout << "  " << k << " = " << v << "\n";
}
