#include "contrastive_margin.hpp"

#include "test_support.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using contra::plugins::ContrastiveMargin;

namespace {

ContrastiveMargin make(double margin, bool normalize = false, const char* reduction = "mean",
                       std::int64_t chunk = 1024) {
  return ContrastiveMargin(ContrastiveMargin::schema().bind(
      {{"margin", margin}, {"normalize", normalize}, {"reduction", std::string(reduction)}, {"chunk", chunk}}));
}

contra::Pairs all_pairs() {
  contra::Pairs p;
  p.all = true;
  return p;
}

// Row r = v * n + i is view v of sample i.
std::vector<std::int64_t> samples(std::int64_t n, std::int64_t views) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

contra::Tensor random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(rng.normal());
  return t;
}

double metric(const contra::LossResult& r, const std::string& name) {
  for (const auto& [k, v] : r.metrics)
    if (k == name) return v;
  FAIL("metric " << name << " missing");
  return 0.0;
}

using Real = long double;

Real distance(const contra::Tensor& z, std::int64_t i, std::int64_t j, bool normalize) {
  const std::int64_t d = z.dim(1);
  const float* p = z.data<float>();
  Real ni = 1, nj = 1, s = 0;
  if (normalize) {
    ni = nj = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      ni += Real(p[i * d + k]) * p[i * d + k];
      nj += Real(p[j * d + k]) * p[j * d + k];
    }
    ni = std::sqrt(ni);
    nj = std::sqrt(nj);
  }
  for (std::int64_t k = 0; k < d; ++k) {
    const Real t = p[i * d + k] / ni - p[j * d + k] / nj;
    s += t * t;
  }
  return std::sqrt(s);
}

// The definition over explicit pair lists.
double reference(const contra::Tensor& z, const std::vector<std::pair<std::int32_t, std::int32_t>>& pos,
                 const std::vector<std::pair<std::int32_t, std::int32_t>>& neg, double margin, bool normalize) {
  Real total = 0;
  for (const auto& [i, j] : pos) total += std::pow(distance(z, i, j, normalize), 2);
  for (const auto& [i, j] : neg) total += std::pow(std::max(Real(0), margin - distance(z, i, j, normalize)), 2);
  return static_cast<double>(total / (pos.size() + neg.size()));
}

// Every unordered pair once, split by sample, as Pairs::all means it.
contra::Pairs explicit_all(const std::vector<std::int64_t>& sample) {
  contra::Pairs p;
  for (std::int32_t i = 0; i < static_cast<std::int32_t>(sample.size()); ++i)
    for (std::int32_t j = i + 1; j < static_cast<std::int32_t>(sample.size()); ++j)
      (sample[i] == sample[j] ? p.positive : p.negative).push_back({i, j});
  return p;
}

// Largest |numeric - analytic| over every entry of z, checking each.
double check_gradient(ContrastiveMargin& loss, const contra::Embeddings& emb, const contra::Pairs& pairs) {
  contra::LossResult out, probe;
  loss.compute(emb, pairs, out);
  const contra::Tensor grad = out.grad.clone();
  float* z = const_cast<float*>(emb.z.data<float>());
  auto f = [&]() {
    loss.compute(emb, pairs, probe);
    return probe.value;
  };
  double worst = 0;
  for (std::int64_t k = 0; k < emb.z.numel(); ++k) {
    const double num = contra::test::numeric_derivative(f, z, k, 1e-3);
    const double ana = grad.data<float>()[k];
    worst = std::max(worst, std::abs(num - ana));
    CHECK(ana == Approx(num).margin(1e-3).epsilon(1e-3));
  }
  return worst;
}

}  // namespace

TEST_CASE("contrastive_margin: schema declares margin, normalize, reduction and chunk", "[plugins][contrastive_margin]") {
  contra::Schema s = ContrastiveMargin::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("margin") == 1.0);
  CHECK(p.get<bool>("normalize") == false);
  CHECK(p.get<std::string>("reduction") == "mean");
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"reduction", std::string("max")}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"margin", -1.0}}), contra::ConfigError);
  CHECK_THROWS_WITH(ContrastiveMargin(s.bind({{"margin", 0.0}})),
                    Catch::Matchers::Contains("margin: expected a margin > 0, found 0"));
}

TEST_CASE("contrastive_margin: value and metrics match a case worked by hand", "[plugins][contrastive_margin]") {
  // N = 2 samples, V = 2 views, D = 2, margin m = 2. Rows: 0 = (view 0, sample 0) = (0, 0),
  // 1 = (view 0, sample 1) = (3, 0), 2 = (view 1, sample 0) = (0, 1), 3 = (view 1, sample 1) = (1.5, 0).
  // All 6 unordered pairs:
  //   (0,1) negative, d = 3           -> max(0, 2 - 3)^2       = 0
  //   (0,2) positive, d = 1           -> 1^2                   = 1
  //   (0,3) negative, d = 1.5         -> (2 - 1.5)^2           = 0.25
  //   (1,2) negative, d = sqrt(10)    -> 0
  //   (1,3) positive, d = 1.5         -> 1.5^2                 = 2.25
  //   (2,3) negative, d = sqrt(3.25) = 1.8027756377 -> (2 - 1.8027756377)^2 = 0.0388974491
  //   sum = 3.5388974491, mean = 0.5898162415.
  // pos_dist = (1 + 1.5) / 2 = 1.25; neg_dist = (3 + 1.5 + 3.1622776602 + 1.8027756377) / 4 = 2.3662633245;
  // active_negatives = 2 / 4 (pairs (0,3) and (2,3)).
  float data[] = {0, 0, 3, 0, 0, 1, 1.5f, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  contra::LossResult out;
  ContrastiveMargin mean = make(2.0);
  mean.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.5898162415).margin(1e-6));
  CHECK(metric(out, "pos_dist") == Approx(1.25).margin(1e-6));
  CHECK(metric(out, "neg_dist") == Approx(2.3662633245).margin(1e-6));
  CHECK(metric(out, "active_negatives") == 0.5);
  ContrastiveMargin sum = make(2.0, false, "sum");
  sum.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(3.5388974491).margin(1e-6));

  // Explicit pairs: positive (0,2), negatives (0,3) and (2,1): (1 + 0.25 + 0) / 3 = 0.4166666667.
  // Gradient of row 0: pair (0,2) gives 2 (z0 - z2) = (0, -2); pair (0,3) gives
  // -2 (m - d) (z0 - z3) / d = -2 * 0.5 * (-1.5, 0) / 1.5 = (1, 0); divided by 3: (1/3, -2/3).
  // Row 1 only meets the inactive negative (2,1): zero.
  contra::Pairs pairs;
  pairs.positive = {{0, 2}};
  pairs.negative = {{0, 3}, {2, 1}};
  mean.compute(emb, pairs, out);
  CHECK(out.value == Approx(0.4166666667).margin(1e-6));
  CHECK(out.grad.data<float>()[0] == Approx(1.0 / 3).margin(1e-6));
  CHECK(out.grad.data<float>()[1] == Approx(-2.0 / 3).margin(1e-6));
  CHECK(out.grad.data<float>()[2] == 0.0f);
  CHECK(out.grad.data<float>()[3] == 0.0f);
  CHECK(metric(out, "active_negatives") == 0.5);
}

TEST_CASE("contrastive_margin: all pairs equal the same pairs listed explicitly, and the definition",
          "[plugins][contrastive_margin]") {
  const std::int64_t n = 5, v = 3, d = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 31);
  contra::Pairs listed = explicit_all(sample);
  for (bool normalize : {false, true}) {
    const double margin = normalize ? 1.0 : 3.0;
    ContrastiveMargin loss = make(margin, normalize);
    contra::LossResult a, b;
    loss.compute({z, &sample, nullptr, v}, all_pairs(), a);
    loss.compute({z, &sample, nullptr, v}, listed, b);
    CHECK(a.value == Approx(reference(z, listed.positive, listed.negative, margin, normalize)).epsilon(1e-5));
    CHECK(b.value == Approx(a.value).epsilon(1e-5));
    CHECK(metric(a, "active_negatives") > 0.0);
    CHECK(metric(a, "active_negatives") < 1.0);
    for (std::int64_t k = 0; k < z.numel(); ++k)
      CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-5));
  }
}

TEST_CASE("contrastive_margin: gradient matches central finite differences", "[plugins][contrastive_margin]") {
  auto [normalize, listed] = GENERATE(std::make_tuple(false, false), std::make_tuple(false, true),
                                      std::make_tuple(true, false), std::make_tuple(true, true));
  const std::int64_t n = 4, v = 2, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 41);
  const double margin = normalize ? 1.2 : 2.5;
  contra::Pairs pairs = listed ? explicit_all(sample) : all_pairs();
  // Away from the kink at d = m: no pair within 1e-2 of the margin.
  for (std::int64_t i = 0; i < n * v; ++i)
    for (std::int64_t j = i + 1; j < n * v; ++j) REQUIRE(std::abs(double(distance(z, i, j, normalize)) - margin) > 1e-2);
  ContrastiveMargin loss = make(margin, normalize);
  INFO("normalize: " << normalize << ", explicit pairs: " << listed);
  const double worst = check_gradient(loss, {z, &sample, nullptr, v}, pairs);
  INFO("largest |numeric - analytic| = " << worst);
  CHECK(worst < 1e-3);
}

TEST_CASE("contrastive_margin: chunk = 1 gives the value and gradient of one block", "[plugins][contrastive_margin]") {
  const std::int64_t n = 6, v = 2, d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 5);
  ContrastiveMargin one = make(3.0, false, "mean", 1), all = make(3.0), five = make(3.0, false, "mean", 5);
  contra::LossResult a, b, c;
  one.compute({z, &sample, nullptr, v}, all_pairs(), a);
  all.compute({z, &sample, nullptr, v}, all_pairs(), b);
  five.compute({z, &sample, nullptr, v}, all_pairs(), c);
  CHECK(a.value == Approx(b.value).epsilon(1e-6));
  CHECK(c.value == Approx(b.value).epsilon(1e-6));
  for (std::int64_t k = 0; k < z.numel(); ++k) {
    CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
    CHECK(c.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
  }
}

TEST_CASE("contrastive_margin: coincident rows give a finite gradient", "[plugins][contrastive_margin]") {
  // Rows 0 and 1 coincide (a negative pair at d = 0: loss m^2 = 1, gradient 0 there); rows 0 and 2
  // too (a positive at d = 0: loss 0, gradient 0). Pairs: (0,1) neg 1, (0,2) pos 0, (0,3) neg d = 5,
  // (1,2) neg 1, (1,3) pos 25, (2,3) neg d = 5 -> 0: mean = 27 / 6 = 4.5.
  float data[] = {1, 1, 1, 1, 1, 1, 4, 5};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  ContrastiveMargin loss = make(1.0);
  contra::LossResult out;
  loss.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(4.5).margin(1e-6));
  for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(std::isfinite(out.grad.data<float>()[k]));
  // Only (1,3) has a gradient: 2 (z1 - z3) / 6 = (-1, -4/3) for row 1, the opposite for row 3.
  CHECK(out.grad.data<float>()[2] == Approx(-1.0).margin(1e-6));
  CHECK(out.grad.data<float>()[3] == Approx(-4.0 / 3).margin(1e-6));
  CHECK(out.grad.data<float>()[0] == Approx(0.0).margin(1e-6));
  CHECK(out.grad.data<float>()[6] == Approx(1.0).margin(1e-6));
}

TEST_CASE("contrastive_margin: close rows far apart from the rest keep their distances", "[plugins][contrastive_margin]") {
  // Each sample's views lie within ~0.05 of a centre at distance ~1000 from the other centres:
  // |x|^2 + |y|^2 - 2 x.y of two views cancels completely in float32 (|x|^2 ~ 1e6, d^2 ~ 1e-3).
  // Close pairs are recomputed from their difference, so d and the gradient stay exact.
  const std::int64_t n = 4, v = 2, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor centre = random_matrix(n, d, 12);
  contra::Tensor noise = random_matrix(n * v, d, 13);
  contra::Tensor z = contra::Tensor::empty({n * v, d}, contra::DType::f32);
  for (std::int64_t r = 0; r < n * v; ++r)
    for (std::int64_t k = 0; k < d; ++k)
      z.data<float>()[r * d + k] = 1000.0f * centre.data<float>()[(r % n) * d + k] + 0.05f * noise.data<float>()[r * d + k];
  contra::Pairs listed = explicit_all(sample);
  ContrastiveMargin loss = make(0.1);
  contra::LossResult a, b;
  loss.compute({z, &sample, nullptr, v}, all_pairs(), a);
  loss.compute({z, &sample, nullptr, v}, listed, b);
  CHECK(a.value > 0.0);
  CHECK(a.value == Approx(reference(z, listed.positive, listed.negative, 0.1, false)).epsilon(1e-4));
  for (std::int64_t k = 0; k < z.numel(); ++k)
    CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
}

TEST_CASE("contrastive_margin: reuses its buffers across steps of one shape", "[plugins][contrastive_margin]") {
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Tensor z = random_matrix(8, 4, 1);
  ContrastiveMargin loss = make(1.0, false, "mean", 3);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  const void* first = out.grad.raw();
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.grad.raw() == first);
  CHECK(out.metrics.size() == 3);
}

TEST_CASE("contrastive_margin: refuses triplets and bad pairs with a usage error", "[plugins][contrastive_margin]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  ContrastiveMargin loss = make(1.0);
  contra::LossResult out;
  contra::Pairs triplets;
  triplets.triplets.push_back({0, 2, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, triplets, out),
                    "contrastive_margin: Pairs::triplets is not supported; it takes Pairs::all (the all_pairs "
                    "miner), or Pairs::positive and/or Pairs::negative");
  contra::Pairs bad;
  bad.negative.push_back({0, 4});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, bad, out),
                    "contrastive_margin: negative pair (0, 4) is outside the 4 rows");
  CHECK_THROWS_AS(loss.compute({z, nullptr, nullptr, 2}, all_pairs(), out), contra::UsageError);
  contra::Pairs both = all_pairs();
  both.positive.push_back({0, 2});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, both, out),
                    "contrastive_margin: Pairs::all together with explicit pair lists is ambiguous; a miner sets "
                    "one or the other");
  contra::Pairs memory;
  memory.negative.push_back({0, 1});
  memory.memory_negative.push_back({0, 0});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, memory, out),
                    "contrastive_margin: Pairs::memory_negative is not supported; it takes Pairs::all (the "
                    "all_pairs miner), or Pairs::positive and/or Pairs::negative");
}
