#include "linear_probe.hpp"

#include "test_support.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::LinearProbe;
using Figures = std::vector<std::pair<std::string, double>>;

namespace {

LinearProbe make(double l2 = 1e-4, std::int64_t max_iter = 200, double tolerance = 1e-6) {
  return LinearProbe(
      LinearProbe::schema().bind({{"l2", l2}, {"max_iter", max_iter}, {"tolerance", tolerance}}));
}

double figure(const Figures& f, const std::string& name) {
  for (const auto& [k, v] : f)
    if (k == name) return v;
  FAIL("figure " << name << " missing");
  return 0.0;
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

// Gaussian blobs: class c around `separation` · e_c (or a random centre when separation is 0),
// unit noise.
contra::FeatureSet blobs(std::int64_t n, std::int64_t d, std::int64_t classes, double separation, double noise,
                         std::uint64_t seed) {
  contra::Rng centres(7, 0, 0, 0, 0);
  std::vector<float> mu(static_cast<std::size_t>(classes * d), 0.0f);
  for (std::int64_t c = 0; c < classes; ++c)
    for (std::int64_t k = 0; k < d; ++k)
      mu[c * d + k] = separation > 0 ? (k == c % d ? static_cast<float>(separation) : 0.0f)
                                     : static_cast<float>(centres.normal());
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

// The objective and its gradient, written directly in double from the raw features and the
// probe's own standardisation and parameters.
double reference(const LinearProbe& probe, const contra::FeatureSet& s, double l2, std::vector<double>* grad) {
  const std::int64_t n = s.features.dim(0), d = s.features.dim(1), c = s.num_classes;
  const auto& th = probe.weights();
  if (grad) grad->assign(th.size(), 0.0);
  double f = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> x(static_cast<std::size_t>(d)), z(static_cast<std::size_t>(c));
    for (std::int64_t k = 0; k < d; ++k)
      x[k] = (s.features.data<float>()[i * d + k] - probe.mean()[k]) / probe.scale()[k];
    for (std::int64_t j = 0; j < c; ++j) {
      z[j] = th[d * c + j];
      for (std::int64_t k = 0; k < d; ++k) z[j] += x[k] * th[k * c + j];
    }
    double sum = 0;
    for (double v : z) sum += std::exp(v);
    f += std::log(sum) - z[s.labels[i]];
    if (grad)
      for (std::int64_t j = 0; j < c; ++j) {
        const double r = (std::exp(z[j]) / sum - (j == s.labels[i] ? 1.0 : 0.0)) / static_cast<double>(n);
        for (std::int64_t k = 0; k < d; ++k) (*grad)[k * c + j] += r * x[k];
        (*grad)[d * c + j] += r;
      }
  }
  f /= static_cast<double>(n);
  for (std::int64_t k = 0; k < d * c; ++k) {
    f += 0.5 * l2 * th[k] * th[k];
    if (grad) (*grad)[k] += l2 * th[k];
  }
  return f;
}

}  // namespace

TEST_CASE("linear_probe: figures top1, train_top1, loss, iterations", "[evaluator]") {
  LinearProbe probe(LinearProbe::schema().bind({}));
  const auto train = blobs(60, 4, 3, 6.0, 1.0, 1);
  const Figures f = probe.evaluate(train, train, 0);
  REQUIRE(f.size() == 4);
  CHECK(f[0].first == "top1");
  CHECK(f[1].first == "train_top1");
  CHECK(f[2].first == "loss");
  CHECK(f[3].first == "iterations");
  CHECK(f[0].second == f[1].second);
}

TEST_CASE("linear_probe: the optimum worked by hand (1-D, labels 3:1 at each point)", "[evaluator]") {
  // x = +1 with labels 1, 1, 1, 0 and x = -1 with labels 0, 0, 0, 1: mean 0, std 1, so x̃ = x.
  // With l2 = 0 and W = [-a, a], b = 0 by symmetry, the optimum has p(1 | x = 1) = σ(2a) = 3/4:
  // a = ln(3) / 2 = 0.549306, and the loss is the entropy of (3/4, 1/4):
  // -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562335. Three of four right on each side.
  const auto train = split({{1}, {1}, {1}, {1}, {-1}, {-1}, {-1}, {-1}}, {1, 1, 1, 0, 0, 0, 0, 1}, 2);
  LinearProbe probe = make(0.0, 500, 1e-10);
  const Figures f = probe.evaluate(train, train, 0);
  CHECK(figure(f, "loss") == Approx(-(0.75 * std::log(0.75) + 0.25 * std::log(0.25))).epsilon(1e-6));
  CHECK(figure(f, "train_top1") == 0.75);
  CHECK(probe.mean()[0] == 0.0);
  CHECK(probe.scale()[0] == 1.0);
  const auto& w = probe.weights();  // W [1, 2], then b [2]
  CHECK(w[1] - w[0] == Approx(std::log(3.0)).epsilon(1e-4));
  CHECK(w[2] - w[3] == Approx(0.0).margin(1e-5));
}

TEST_CASE("linear_probe: reaches the minimum of the objective as written", "[evaluator]") {
  // Overlapping blobs (not separable), a real penalty: the reported loss is the objective
  // at the returned parameters, and its gradient there is about zero.
  const auto train = blobs(400, 6, 4, 0.0, 1.0, 2);
  const double l2 = 1e-2;
  LinearProbe probe = make(l2, 1000, 1e-9);
  const Figures f = probe.evaluate(train, train, 0);
  std::vector<double> g;
  CHECK(figure(f, "loss") == Approx(reference(probe, train, l2, &g)).epsilon(1e-6));
  double gmax = 0;
  for (double v : g) gmax = std::max(gmax, std::abs(v));
  CHECK(gmax < 1e-4);
  CHECK(figure(f, "train_top1") < 1.0);
}

TEST_CASE("linear_probe: 100% on three well-separated blobs in 8-D", "[evaluator]") {
  const auto train = blobs(300, 8, 3, 12.0, 1.0, 3);
  const auto test = blobs(150, 8, 3, 12.0, 1.0, 4);
  const Figures f = make().evaluate(train, test, 0);
  CHECK(figure(f, "top1") == 1.0);
  CHECK(figure(f, "train_top1") == 1.0);
  CHECK(figure(f, "loss") < 0.05);
}

TEST_CASE("linear_probe: features are standardised with the train split's mean and std", "[evaluator]") {
  // Dimension 0 scaled by 1e6, dimension 1 shifted by 1e4 and dimension 2 scaled by 1e-4, in
  // both splits: standardisation undoes it, so the figures stay (up to float rounding).
  const auto train = blobs(300, 8, 3, 3.0, 1.0, 5);
  const auto test = blobs(150, 8, 3, 3.0, 1.0, 6);
  auto distort = [](contra::FeatureSet s) {
    s.features = s.features.clone();
    float* x = s.features.data<float>();
    for (std::int64_t i = 0; i < s.features.dim(0); ++i) {
      x[i * 8 + 0] *= 1e6f;
      x[i * 8 + 1] += 1e4f;
      x[i * 8 + 2] *= 1e-4f;
    }
    return s;
  };
  const Figures plain = make().evaluate(train, test, 0);
  LinearProbe probe = make();
  const Figures distorted = probe.evaluate(distort(train), distort(test), 0);
  CHECK(figure(distorted, "loss") == Approx(figure(plain, "loss")).epsilon(1e-3));
  CHECK(figure(distorted, "top1") == Approx(figure(plain, "top1")).margin(2.0 / 150));
  CHECK(figure(distorted, "train_top1") == Approx(figure(plain, "train_top1")).margin(2.0 / 300));
  CHECK(figure(plain, "top1") > 0.9);
  CHECK(probe.scale()[0] > 1e5);
  CHECK(probe.mean()[1] == Approx(1e4).epsilon(1e-3));
  // A constant dimension (here 5.0 everywhere) is left unscaled: x̃ = x − μ = 0.
  auto constant = [](contra::FeatureSet s) {
    s.features = s.features.clone();
    for (std::int64_t i = 0; i < s.features.dim(0); ++i) s.features.data<float>()[i * 8 + 3] = 5.0f;
    return s;
  };
  LinearProbe c = make();
  const Figures fc = c.evaluate(constant(train), constant(test), 0);
  CHECK(c.scale()[3] == 1.0);
  CHECK(c.mean()[3] == 5.0);
  CHECK(std::isfinite(figure(fc, "loss")));
}

TEST_CASE("linear_probe: the loss decreases at every iteration from log C", "[evaluator]") {
  const auto train = blobs(500, 16, 5, 0.0, 1.5, 7);
  LinearProbe probe = make(1e-3, 50, 0.0);
  const Figures f = probe.evaluate(train, train, 0);
  const auto& h = probe.loss_history();
  REQUIRE(h.size() >= 3);
  CHECK(h.front() == Approx(std::log(5.0)).epsilon(1e-6));
  for (std::size_t i = 1; i < h.size(); ++i) CHECK(h[i] < h[i - 1]);
  CHECK(h.back() == figure(f, "loss"));
  CHECK(static_cast<double>(h.size() - 1) == figure(f, "iterations"));
  // More iterations never end higher.
  CHECK(figure(make(1e-3, 3, 0.0).evaluate(train, train, 0), "loss") >= h.back());
}

TEST_CASE("linear_probe: deterministic, and independent of the seed", "[evaluator]") {
  const auto train = blobs(400, 8, 4, 0.0, 1.0, 8);
  const auto test = blobs(200, 8, 4, 0.0, 1.0, 9);
  LinearProbe probe = make();
  const Figures a = probe.evaluate(train, test, 1);
  const Figures b = probe.evaluate(train, test, 1);
  const Figures c = make().evaluate(train, test, 12345);
  CHECK(a == b);
  CHECK(a == c);
}

TEST_CASE("linear_probe: refuses bad parameters and splits that do not fit", "[evaluator]") {
  CHECK_THROWS_AS(make(-1.0), contra::ConfigError);
  CHECK_THROWS_AS(make(1e-4, 0), contra::ConfigError);
  LinearProbe probe = make();
  const auto train = split({{1, 0}, {0, 1}}, {0, 1}, 2);
  CHECK_THROWS_WITH(probe.evaluate(train, split({{1, 0, 0}}, {0}, 2), 0),
                    Catch::Contains("train features have 2 dimensions, test features 3"));
  CHECK_THROWS_WITH(probe.evaluate(train, split({{1, 0}}, {-1}, 2), 0),
                    Catch::Contains("test split: label -1 of row 0 is outside [0, 2)"));
  CHECK_THROWS_AS(probe.evaluate(contra::FeatureSet{}, train, 0), contra::UsageError);
}

TEST_CASE("linear_probe: 60k x 128 x 10 classes timing", "[.][bench]") {
  const auto train = blobs(60000, 128, 10, 0.0, 3.0, 10);
  const auto test = blobs(10000, 128, 10, 0.0, 3.0, 11);
  LinearProbe probe(LinearProbe::schema().bind({}));
  const auto t0 = std::chrono::steady_clock::now();
  const Figures f = probe.evaluate(train, test, 0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "linear_probe 60000 x 128, 10 classes, defaults, " << omp_get_max_threads() << " threads: " << s
            << " s\n";
  for (const auto& [k, v] : f) std::cout << "  " << k << " = " << v << "\n";
}
