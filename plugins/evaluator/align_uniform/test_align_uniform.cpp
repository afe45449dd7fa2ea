#include "align_uniform.hpp"

#include "test_support.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::AlignUniform;
using Figures = std::vector<std::pair<std::string, double>>;

namespace {

AlignUniform make(double t = 2.0, double alpha = 2.0, std::int64_t max_rows = 4096, std::int64_t max_pairs = 65536) {
  return AlignUniform(AlignUniform::schema().bind(
      {{"t", t}, {"alpha", alpha}, {"max_rows", max_rows}, {"max_pairs", max_pairs}}));
}

contra::FeatureSet split(const std::vector<std::vector<float>>& rows, std::vector<std::int64_t> labels,
                         std::int64_t classes) {
  contra::FeatureSet s;
  const std::int64_t n = static_cast<std::int64_t>(rows.size()), d = static_cast<std::int64_t>(rows[0].size());
  s.features = contra::Tensor::empty({n, d}, contra::DType::f32);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) s.features.data<float>()[i * d + k] = rows[i][k];
  s.labels = std::move(labels);
  s.num_classes = classes;
  return s;
}

contra::FeatureSet random_split(std::int64_t n, std::int64_t d, std::int64_t classes, std::uint64_t seed) {
  contra::Rng rng(seed, 0, 0, 0, 0);
  contra::FeatureSet s;
  s.features = contra::Tensor::empty({n, d}, contra::DType::f32);
  s.num_classes = classes;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = rng.integer(0, classes - 1);
    s.labels.push_back(c);
    for (std::int64_t k = 0; k < d; ++k)
      s.features.data<float>()[i * d + k] = static_cast<float>(rng.normal() + (k == c ? 2.0 : 0.0));
  }
  return s;
}

double figure(const Figures& f, const std::string& name) {
  for (const auto& [k, v] : f)
    if (k == name) return v;
  FAIL("figure " << name << " missing");
  return 0.0;
}

// Both formulas over every pair, written directly in double.
std::pair<double, double> reference(const contra::FeatureSet& s, double t, double alpha) {
  const std::int64_t n = s.features.dim(0), d = s.features.dim(1);
  std::vector<double> u(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += double(s.features.data<float>()[i * d + k]) * s.features.data<float>()[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) u[i * d + k] = s.features.data<float>()[i * d + k] / std::sqrt(ss);
  }
  double uni = 0, ali = 0;
  std::int64_t nu = 0, na = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      if (i == j) continue;
      double d2 = 0;
      for (std::int64_t k = 0; k < d; ++k) d2 += (u[i * d + k] - u[j * d + k]) * (u[i * d + k] - u[j * d + k]);
      uni += std::exp(-t * d2);
      ++nu;
      if (s.labels[i] == s.labels[j]) {
        ali += std::pow(d2, alpha / 2);
        ++na;
      }
    }
  return {ali / static_cast<double>(na), std::log(uni / static_cast<double>(nu))};
}

}  // namespace

TEST_CASE("align_uniform: uniformity of +-e1, +-e2 worked by hand", "[evaluator]") {
  // Six pairs: four neighbours at squared distance 2 and two opposites at 4. With t = 2:
  // mean = (4 e^-4 + 2 e^-8) / 6 = (2 e^-4 + e^-8) / 3 = 0.01232225, log = -4.396349.
  // Norms do not matter (features are normalised).
  const auto test = split({{3, 0}, {-1, 0}, {0, 0.5f}, {0, -2}}, {0, 1, 2, 3}, 4);
  const Figures f = make(2.0).evaluate(test, test, 0);
  const double expected = std::log((2 * std::exp(-4.0) + std::exp(-8.0)) / 3);
  CHECK(expected == Approx(-4.396349).epsilon(1e-6));
  CHECK(figure(f, "uniformity") == Approx(expected).epsilon(1e-6));
  // No two rows share a label: no alignment pair.
  CHECK(std::isnan(figure(f, "alignment")));
  // t = 1: (2 e^-2 + e^-4) / 3.
  CHECK(figure(make(1.0).evaluate(test, test, 0), "uniformity") ==
        Approx(std::log((2 * std::exp(-2.0) + std::exp(-4.0)) / 3)).epsilon(1e-6));
}

TEST_CASE("align_uniform: alignment over same-label pairs worked by hand", "[evaluator]") {
  // Class 0: e1, e2 (squared distance 2). Class 1: e1, -e1, e2 (4, 2, 2). Class 2: one row, no pair.
  // alpha = 2: (2 + 4 + 2 + 2) / 4 = 2.5.  alpha = 1: (sqrt2 + 2 + sqrt2 + sqrt2) / 4 = 1.560660.
  const auto test = split({{1, 0}, {5, 0}, {0, 1}, {-1, 0}, {0, 2}, {0.6f, 0.8f}}, {0, 1, 0, 1, 1, 2}, 3);
  CHECK(figure(make(2.0, 2.0).evaluate(test, test, 0), "alignment") == Approx(2.5).epsilon(1e-6));
  CHECK(figure(make(2.0, 1.0).evaluate(test, test, 0), "alignment") ==
        Approx((3 * std::sqrt(2.0) + 2) / 4).epsilon(1e-6));
  CHECK(figure(make(2.0, 1.0).evaluate(test, test, 0), "alignment") == Approx(1.560660).epsilon(1e-6));
}

TEST_CASE("align_uniform: all rows and pairs match the definition, whatever the thread count", "[evaluator]") {
  const auto test = random_split(600, 12, 5, 1);  // 600 rows: three uniformity blocks of 256
  const auto [ali, uni] = reference(test, 2.0, 2.0);
  const Figures f = make().evaluate(test, test, 0);
  CHECK(figure(f, "alignment") == Approx(ali).epsilon(1e-6));
  CHECK(figure(f, "uniformity") == Approx(uni).epsilon(1e-6));
  const auto [ali3, uni3] = reference(test, 0.5, 3.0);
  const Figures g = make(0.5, 3.0).evaluate(test, test, 0);
  CHECK(figure(g, "alignment") == Approx(ali3).epsilon(1e-6));
  CHECK(figure(g, "uniformity") == Approx(uni3).epsilon(1e-6));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Figures serial = make().evaluate(test, test, 0);
  omp_set_num_threads(threads);
  CHECK(serial == f);
}

TEST_CASE("align_uniform: subsets of rows and pairs are seeded, and estimate the full figures", "[evaluator]") {
  const auto test = random_split(1500, 8, 4, 2);
  const Figures full = make(2.0, 2.0, 1500, 1 << 30).evaluate(test, test, 0);
  const Figures a = make(2.0, 2.0, 500, 2000).evaluate(test, test, 7);
  const Figures b = make(2.0, 2.0, 500, 2000).evaluate(test, test, 7);
  const Figures c = make(2.0, 2.0, 500, 2000).evaluate(test, test, 8);
  CHECK(a == b);
  CHECK(a[0].second != c[0].second);
  CHECK(a[1].second != c[1].second);
  // Estimates: 2000 pairs and 500 rows of 1500.
  CHECK(figure(a, "alignment") == Approx(figure(full, "alignment")).epsilon(0.05));
  CHECK(figure(a, "uniformity") == Approx(figure(full, "uniformity")).epsilon(0.05));
  // The seed does not matter when everything fits.
  CHECK(make(2.0, 2.0, 1500, 1 << 30).evaluate(test, test, 99) == full);
}

TEST_CASE("align_uniform: refuses bad parameters and test splits", "[evaluator]") {
  CHECK_THROWS_AS(make(0.0), contra::ConfigError);
  CHECK_THROWS_AS(make(2.0, 0.0), contra::ConfigError);
  CHECK_THROWS_AS(make(2.0, 2.0, 1), contra::ConfigError);
  CHECK_THROWS_AS(make(2.0, 2.0, 4096, 0), contra::ConfigError);
  AlignUniform au = make();
  const auto one = split({{1, 0}}, {0}, 1);
  CHECK_THROWS_WITH(au.evaluate(one, one, 0), Catch::Contains("has 1 rows; uniformity needs at least 2"));
  CHECK_THROWS_WITH(au.evaluate(one, split({{1, 0}, {0, 1}}, {0, 3}, 2), 0),
                    Catch::Contains("label 3 of row 1 is outside [0, 2)"));
}
