#include "info_nce.hpp"

#include "test_support.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::InfoNce;

namespace {

InfoNce make(double temperature) { return InfoNce(InfoNce::schema().bind({{"temperature", temperature}})); }

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

// The definition, written as directly as possible, in long double (whose exp() reaches e^11356,
// so that T = 1e-3 does not overflow it).
double reference_loss(const contra::Tensor& z, const std::vector<std::int64_t>& sample, double t) {
  const std::int64_t m = z.dim(0), d = z.dim(1);
  const float* p = z.data<float>();
  std::vector<long double> zh(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    long double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<long double>(p[i * d + k]) * p[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) zh[i * d + k] = p[i * d + k] / std::sqrt(ss);
  }
  auto s = [&](std::int64_t i, std::int64_t j) {
    long double dot = 0;
    for (std::int64_t k = 0; k < d; ++k) dot += zh[i * d + k] * zh[j * d + k];
    return dot / static_cast<long double>(t);
  };
  long double total = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    long double neg = 0, li = 0;
    int np = 0;
    for (std::int64_t j = 0; j < m; ++j)
      if (sample[j] != sample[i]) neg += std::exp(s(i, j));
    for (std::int64_t j = 0; j < m; ++j)
      if (j != i && sample[j] == sample[i]) {
        li += -std::log(std::exp(s(i, j)) / (std::exp(s(i, j)) + neg));
        ++np;
      }
    total += li / np;
  }
  return static_cast<double>(total / m);
}

}  // namespace

TEST_CASE("info_nce: schema declares temperature in [1e-3, 10], default 0.5", "[plugins][info_nce]") {
  contra::Schema s = InfoNce::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.bind({}).get<double>("temperature") == 0.5);
  CHECK_THROWS_AS(s.bind({{"temperature", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"temperature", 11.0}}), contra::ConfigError);
}

TEST_CASE("info_nce: value and metrics match a case worked by hand", "[plugins][info_nce]") {
  // N = 2 samples, V = 2 views, D = 2. Rows: 0 = (view 0, sample 0), 1 = (view 0, sample 1),
  // 2 = (view 1, sample 0), 3 = (view 1, sample 1). Norms differ, to exercise the normalisation:
  //   z0 = (2, 0) -> (1, 0);  z1 = (0, 3) -> (0, 1);  z2 = (1, 1) -> (r, r), r = 1/sqrt(2);
  //   z3 = (-1, 0) -> (-1, 0).
  // Cosines: c01 = 0, c02 = r, c03 = -1, c12 = r, c13 = 0, c23 = -r. Positives: (0,2), (1,3).
  // With T = 1 (s = c), each row's denominator is every other row (NT-Xent):
  //   l0 = -r + log(e^r + e^0 + e^-1)      = 0.5154898450
  //   l1 = -0 + log(e^0 + e^0 + e^r)       = 1.3932985200
  //   l2 = -r + log(e^r + e^r + e^-r)      = 0.8078662981
  //   l3 = -0 + log(e^0 + e^-1 + e^-r)     = 0.6210861065
  //   loss = (l0 + l1 + l2 + l3) / 4       = 0.8344351924
  // With T = 0.5 every s doubles:
  //   l0 = -2r + log(e^2r + 1 + e^-2) = 0.2437450802, l1 = log(2 + e^2r) = 1.8104586086,
  //   l2 = -2r + log(2e^2r + e^-2r) = 0.7222717849, l3 = log(1 + e^-2 + e^-2r) = 0.3209611432,
  //   loss = 0.7743591543.
  // pos_sim = (c02 + c20 + c13 + c31) / 4 = 2r / 4 = 0.3535533906;
  // neg_sim = (c01 + c03 + c10 + c12 + c21 + c23 + c30 + c32) / 8 = (0 - 1 + 0 + r + r - r - 1 - r) / 8 = -0.25.
  float data[] = {2, 0, 0, 3, 1, 1, -1, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  contra::LossResult out;

  InfoNce t1 = make(1.0);
  t1.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.8344351924).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(0.3535533906).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx(-0.25).margin(1e-6));
  REQUIRE(out.grad.shape() == contra::Shape({4, 2}));

  InfoNce t05 = make(0.5);
  t05.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.7743591543).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(0.3535533906).margin(1e-6));
}

TEST_CASE("info_nce: value with several positives per row matches the definition", "[plugins][info_nce]") {
  // V = 3: each row has two positives, and the loss averages over them.
  const std::int64_t n = 4, v = 3, d = 6;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 11);
  contra::Embeddings emb{z, &sample, nullptr, v};
  contra::LossResult out;
  for (double t : {0.05, 0.5, 2.0}) {
    InfoNce loss = make(t);
    loss.compute(emb, all_pairs(), out);
    CHECK(out.value == Approx(reference_loss(z, sample, t)).epsilon(1e-5));
  }
}

TEST_CASE("info_nce: gradient matches central finite differences", "[plugins][info_nce]") {
  // float32 throughout: a loss evaluation is accurate to ~1e-7 relative, so with a step of
  // 1e-3 the difference quotient carries up to ~1e-4 of rounding; truncation error is ~1e-7.
  auto [n, v, t] = GENERATE(std::make_tuple(3, 2, 0.5), std::make_tuple(2, 3, 0.2), std::make_tuple(4, 2, 1.0));
  const std::int64_t d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 7 + static_cast<std::uint64_t>(n * v));
  contra::Embeddings emb{z, &sample, nullptr, v};
  InfoNce loss = make(t);
  contra::LossResult out, probe;
  loss.compute(emb, all_pairs(), out);
  const contra::Tensor grad = out.grad.clone();

  auto f = [&]() {
    loss.compute(emb, all_pairs(), probe);
    return probe.value;
  };
  double worst = 0;
  for (std::int64_t k = 0; k < z.numel(); ++k) {
    double num = contra::test::numeric_derivative(f, z.data<float>(), k, 1e-3);
    double ana = grad.data<float>()[k];
    worst = std::max(worst, std::abs(num - ana));
    CHECK(ana == Approx(num).margin(2e-4).epsilon(1e-2));
  }
  INFO("largest |numeric - analytic| = " << worst);
  CHECK(worst < 2e-4);  // observed: about 4e-5
}

TEST_CASE("info_nce: scaling a row does not change the loss, and its gradient is orthogonal to it",
          "[plugins][info_nce]") {
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Tensor z = random_matrix(6, 4, 3);
  contra::Embeddings emb{z, &sample, nullptr, 2};
  InfoNce loss = make(0.3);
  contra::LossResult a, b;
  loss.compute(emb, all_pairs(), a);
  for (std::int64_t r = 0; r < 6; ++r) {
    double dot = 0;
    for (std::int64_t k = 0; k < 4; ++k) dot += a.grad.data<float>()[r * 4 + k] * z.data<float>()[r * 4 + k];
    CHECK(dot == Approx(0).margin(1e-5));
  }
  for (std::int64_t k = 0; k < 4; ++k) z.data<float>()[4 + k] *= 7.5f;  // row 1
  loss.compute(emb, all_pairs(), b);
  CHECK(b.value == Approx(a.value).epsilon(1e-5));
}

TEST_CASE("info_nce: lower temperature sharpens the loss of aligned views", "[plugins][info_nce]") {
  // One-hot embeddings, the two views of a sample identical: every positive has cosine 1, every
  // negative cosine 0, so each row's loss is log(1 + (M - 2) e^{-1/T}) with M = 8.
  const std::int64_t n = 4;
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Tensor z = contra::Tensor::zeros({2 * n, n}, contra::DType::f32);
  for (std::int64_t r = 0; r < 2 * n; ++r) z.data<float>()[r * n + r % n] = 1.0f;
  contra::Embeddings emb{z, &sample, nullptr, 2};
  contra::LossResult out;
  double previous = 0;
  for (double t : {0.1, 0.5, 1.0, 5.0}) {
    InfoNce loss = make(t);
    loss.compute(emb, all_pairs(), out);
    CHECK(out.value == Approx(std::log(1.0 + 6.0 * std::exp(-1.0 / t))).margin(1e-6));
    CHECK(out.value > previous);
    previous = out.value;
  }
  CHECK(metric(out, "pos_sim") == Approx(1.0).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx(0.0).margin(1e-6));
}

TEST_CASE("info_nce: perfectly aligned views give a lower loss than unrelated ones", "[plugins][info_nce]") {
  const std::int64_t n = 8, d = 16;
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Tensor unrelated = random_matrix(2 * n, d, 5);
  contra::Tensor aligned = unrelated.clone();
  for (std::int64_t k = 0; k < n * d; ++k) aligned.data<float>()[n * d + k] = aligned.data<float>()[k];
  InfoNce loss = make(0.5);
  contra::LossResult a, u;
  loss.compute({aligned, &sample, nullptr, 2}, all_pairs(), a);
  loss.compute({unrelated, &sample, nullptr, 2}, all_pairs(), u);
  CHECK(a.value < u.value - 0.5);
  CHECK(metric(a, "pos_sim") == Approx(1.0).margin(1e-5));
  CHECK(metric(a, "pos_sim") > metric(u, "pos_sim"));
}

TEST_CASE("info_nce: stays finite at the lowest temperature", "[plugins][info_nce]") {
  // T = 1e-3 puts similarities in [-1000, 1000]; exp() without shifts overflows.
  const std::int64_t n = 4, v = 3, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 9);
  InfoNce loss = make(1e-3);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, v}, all_pairs(), out);
  CHECK(std::isfinite(out.value));
  CHECK(out.value == Approx(reference_loss(z, sample, 1e-3)).epsilon(1e-3));
  for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(std::isfinite(out.grad.data<float>()[k]));
}

TEST_CASE("info_nce: reuses its buffers across steps of one shape", "[plugins][info_nce]") {
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Tensor z = random_matrix(8, 4, 1);
  InfoNce loss = make(0.5);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  const void* first = out.grad.raw();
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.grad.raw() == first);
  CHECK(out.metrics.size() == 2);
}

TEST_CASE("info_nce: refuses explicit pairs and triplets with a usage error", "[plugins][info_nce]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  InfoNce loss = make(0.5);
  contra::LossResult out;
  contra::Pairs explicit_pairs;
  explicit_pairs.positive.push_back({0, 2});
  explicit_pairs.triplets.push_back({0, 2, 1});
  CHECK_THROWS_AS(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out), contra::UsageError);
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out),
                    "info_nce: needs the all_pairs miner (explicit pairs and triplets are not supported yet)");
}

TEST_CASE("info_nce: refuses malformed embeddings with a usage error", "[plugins][info_nce]") {
  InfoNce loss = make(0.5);
  contra::LossResult out;
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  CHECK_THROWS_AS(loss.compute({z, nullptr, nullptr, 2}, all_pairs(), out), contra::UsageError);
  std::vector<std::int64_t> short_sample{0, 1};
  CHECK_THROWS_AS(loss.compute({z, &short_sample, nullptr, 2}, all_pairs(), out), contra::UsageError);
  std::vector<std::int64_t> one_view{0, 1, 2, 3};
  CHECK_THROWS_WITH(loss.compute({z, &one_view, nullptr, 1}, all_pairs(), out),
                    Catch::Matchers::Contains("no row has a positive"));
}
