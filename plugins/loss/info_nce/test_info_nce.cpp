#include "info_nce.hpp"

#include "test_support.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::InfoNce;

namespace {

InfoNce make(double temperature) { return InfoNce(InfoNce::schema().bind({{"temperature", temperature}})); }

InfoNce make(double temperature, std::int64_t chunk, const std::string& batch_negatives = "auto") {
  return InfoNce(InfoNce::schema().bind(
      {{"temperature", temperature}, {"chunk", chunk}, {"batch_negatives", batch_negatives}}));
}

contra::Tensor matrix(std::vector<float>& data, std::int64_t rows, std::int64_t cols) {
  return contra::Tensor::wrap(data.data(), {rows, cols}, contra::DType::f32);
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

// As reference_loss, but rows without a positive are no anchors: skipped, and the mean is over
// the anchors.
double reference_loss_anchors(const contra::Tensor& z, const std::vector<std::int64_t>& sample, double t) {
  const std::int64_t m = z.dim(0), d = z.dim(1);
  const float* p = z.data<float>();
  std::vector<double> zh(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(p[i * d + k]) * p[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) zh[i * d + k] = p[i * d + k] / std::sqrt(ss);
  }
  auto s = [&](std::int64_t i, std::int64_t j) {
    double dot = 0;
    for (std::int64_t k = 0; k < d; ++k) dot += zh[i * d + k] * zh[j * d + k];
    return dot / t;
  };
  double total = 0;
  std::int64_t anchors = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    double neg = 0, li = 0;
    int np = 0;
    for (std::int64_t j = 0; j < m; ++j)
      if (sample[j] != sample[i]) neg += std::exp(s(i, j) - 1 / t);
    for (std::int64_t j = 0; j < m; ++j)
      if (j != i && sample[j] == sample[i]) {
        li += -(s(i, j) - 1 / t) + std::log(std::exp(s(i, j) - 1 / t) + neg);
        ++np;
      }
    if (np == 0) continue;
    total += li / np;
    ++anchors;
  }
  return total / static_cast<double>(anchors);
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

TEST_CASE("info_nce: refuses triplets, ambiguous and empty selections with a usage error", "[plugins][info_nce]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  InfoNce loss = make(0.5);
  contra::LossResult out;
  contra::Pairs explicit_pairs;
  explicit_pairs.positive.push_back({0, 2});
  explicit_pairs.triplets.push_back({0, 2, 1});
  CHECK_THROWS_AS(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out), contra::UsageError);
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out),
                    "info_nce: Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative and/or Pairs::synthetic_negative with optional "
                    "Pairs::positive");
  explicit_pairs.triplets.clear();  // positives only: nothing to contrast them with
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out),
                    "info_nce: nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative and/or Pairs::synthetic_negative with optional "
                    "Pairs::positive");
  contra::Pairs both = all_pairs();
  both.negative.push_back({0, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, both, out),
                    "info_nce: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the other");
  contra::Pairs out_of_range;
  out_of_range.negative.push_back({0, 4});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, out_of_range, out),
                    "info_nce: negative pair (0, 4) is outside the 4 rows");
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

// ---------------------------------------------------------------------------------------------
// Memory negatives, momentum keys, chunking.

namespace {

// Two samples, two views, D = 2 (rows normalised already): r0 = r2 = (1, 0) of sample 0
// (id 10), r1 = r3 = (0, 1) of sample 1 (id 11).
struct HandBatch {
  std::vector<float> z{1, 0, 0, 1, 1, 0, 0, 1};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  std::vector<std::int64_t> ids{10, 11, 10, 11};
};

// Memory keys: k0 = (1, 0) of id 11, k1 = (0, 1) an empty slot, k2 = (-1, 0) of id 20.
struct HandMemory {
  std::vector<float> keys{1, 0, 0, 1, -1, 0};
  std::vector<std::int64_t> ids{11, -1, 20};
  contra::MemoryView view{contra::Tensor::wrap(keys.data(), {3, 2}, contra::DType::f32), &ids, nullptr};
};

// Straightforward double-precision NT-Xent with memory negatives (no momentum keys): loss
// and dL/dz through the normalisation. Rows of another sample and memory keys of another,
// non-empty id are the negatives; other views of the sample the positives.
double reference_with_memory(const contra::Tensor& z, const std::vector<std::int64_t>& sample,
                             const std::vector<std::int64_t>* ids, const contra::MemoryView* mem, double t,
                             std::vector<double>& grad) {
  const std::int64_t m = z.dim(0), d = z.dim(1), k = mem ? mem->size() : 0;
  const float* p = z.data<float>();
  std::vector<double> zh(static_cast<std::size_t>(m * d)), norm(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (std::int64_t c = 0; c < d; ++c) ss += static_cast<double>(p[i * d + c]) * p[i * d + c];
    norm[i] = std::sqrt(ss);
    for (std::int64_t c = 0; c < d; ++c) zh[i * d + c] = p[i * d + c] / norm[i];
  }
  const float* kp = mem ? mem->keys.data<float>() : nullptr;
  auto cand = [&](std::int64_t j, std::int64_t c) -> double { return j < m ? zh[j * d + c] : kp[(j - m) * d + c]; };
  std::vector<double> dzh(static_cast<std::size_t>(m * d), 0.0), s(static_cast<std::size_t>(m + k));
  std::vector<int> role(static_cast<std::size_t>(m + k));  // 1 positive, -1 negative, 0 neither
  double total = 0;
  std::int64_t anchors = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < m; ++j)
      if (j != i && sample[j] == sample[i]) {
        ++anchors;
        break;
      }
  for (std::int64_t i = 0; i < m; ++i) {
    int np = 0;
    double mx = -1e300;
    for (std::int64_t j = 0; j < m + k; ++j) {
      double dot = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += zh[i * d + c] * cand(j, c);
      s[j] = dot / t;
      if (j < m) role[j] = j == i ? 0 : sample[j] == sample[i] ? 1 : -1;
      else {
        const std::int64_t id = (*mem->ids)[j - m];
        role[j] = (id == -1 || id == (*ids)[i]) ? 0 : -1;
      }
      if (role[j] == 1) ++np;
      if (role[j] != 0) mx = std::max(mx, s[j]);
    }
    if (np == 0) continue;
    double neg = 0;
    for (std::int64_t j = 0; j < m + k; ++j)
      if (role[j] == -1) neg += std::exp(s[j] - mx);
    std::vector<double> g(static_cast<std::size_t>(m + k), 0.0);
    for (std::int64_t j = 0; j < m + k; ++j) {
      if (role[j] != 1) continue;
      const double den = std::exp(s[j] - mx) + neg;
      total += (-(s[j] - mx) + std::log(den)) / np;
      g[j] += (std::exp(s[j] - mx) / den - 1) / np;
      for (std::int64_t q = 0; q < m + k; ++q)
        if (role[q] == -1) g[q] += std::exp(s[q] - mx) / den / np;
    }
    for (std::int64_t j = 0; j < m + k; ++j) {
      if (g[j] == 0) continue;
      const double w = g[j] / (t * static_cast<double>(anchors));
      for (std::int64_t c = 0; c < d; ++c) {
        dzh[i * d + c] += w * cand(j, c);
        if (j < m) dzh[j * d + c] += w * zh[i * d + c];
      }
    }
  }
  grad.assign(static_cast<std::size_t>(m * d), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    double dot = 0;
    for (std::int64_t c = 0; c < d; ++c) dot += zh[i * d + c] * dzh[i * d + c];
    for (std::int64_t c = 0; c < d; ++c) grad[i * d + c] = (dzh[i * d + c] - zh[i * d + c] * dot) / norm[i];
  }
  return total / static_cast<double>(anchors);
}

// A random memory of `k` normalised keys: every fifth slot empty, every seventh holding a key
// of one of the batch's ids (ids of the batch are 1000 + sample).
struct RandomMemory {
  contra::Tensor keys;
  std::vector<std::int64_t> ids;
  contra::MemoryView view;
  RandomMemory(std::int64_t k, std::int64_t d, std::int64_t n, std::uint64_t seed) : keys(random_matrix(k, d, seed)) {
    float* p = keys.data<float>();
    for (std::int64_t r = 0; r < k; ++r) {
      double ss = 0;
      for (std::int64_t c = 0; c < d; ++c) ss += p[r * d + c] * p[r * d + c];
      for (std::int64_t c = 0; c < d; ++c) p[r * d + c] = static_cast<float>(p[r * d + c] / std::sqrt(ss));
      ids.push_back(r % 5 == 0 ? -1 : r % 7 == 0 ? 1000 + (r / 7) % n : 5000 + r);
    }
    view = contra::MemoryView{keys, &ids, nullptr};
  }
};

std::vector<std::int64_t> batch_ids(const std::vector<std::int64_t>& sample) {
  std::vector<std::int64_t> ids;
  for (std::int64_t s : sample) ids.push_back(1000 + s);
  return ids;
}

}  // namespace

TEST_CASE("info_nce: schema declares chunk >= 1 (1024) and batch_negatives auto|yes|no", "[plugins][info_nce]") {
  contra::Schema s = InfoNce::schema();
  CHECK(s.bind({}).get<std::int64_t>("chunk") == 1024);
  CHECK(s.bind({}).get<std::string>("batch_negatives") == "auto");
  CHECK_THROWS_AS(s.bind({{"chunk", std::int64_t{0}}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"batch_negatives", std::string("maybe")}}), contra::ConfigError);
}

TEST_CASE("info_nce: memory keys are negatives, worked by hand", "[plugins][info_nce]") {
  // T = 1. Row 0 (and 2): positive r2 (s = 1); negatives r1, r3 (0), k0 (1: id 11 is not the
  // row's 10), k2 (-1); k1 is an empty slot.  l0 = -1 + log(2e + 2 + e^-1) = 1.0546931995.
  // Row 1 (and 3): positive r3 (1); negatives r0, r2 (0), k2 (0); k0 has the row's own id 11.
  // l1 = -1 + log(e + 3) = 0.7436683806.  loss = (l0 + l1) / 2 = 0.8991807901.
  // neg_sim: rows 0, 2: (0 + 0 + 1 - 1) each; rows 1, 3: 0 + 0 + 0 -> 0 / 14.
  HandBatch h;
  HandMemory mem;
  contra::Embeddings emb{matrix(h.z, 4, 2), &h.sample, nullptr, 2, &h.ids, {}, &mem.view};
  InfoNce loss = make(1.0);
  contra::LossResult out;
  loss.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.8991807901).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(1.0).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx(0.0).margin(1e-6));

  // batch_negatives = "no": memory keys only. l0 = -1 + log(2e + e^-1), l1 = -1 + log(e + 1).
  InfoNce memory_only = make(1.0, 1024, "no");
  memory_only.compute(emb, all_pairs(), out);
  const double e = std::exp(1.0);
  CHECK(out.value == Approx((-2 + std::log(2 * e + 1 / e) + std::log(e + 1)) / 2).margin(1e-6));
}

TEST_CASE("info_nce: explicit memory negatives are exactly the listed keys, worked by hand", "[plugins][info_nce]") {
  // Pairs::memory_negative (row, key): (0, k2), (2, k0), (2, k2), (1, k2), (3, k0). Positives
  // from the grouping, nothing from the batch as negatives, listed keys taken as listed (k0
  // for row 3 too, although it has the row's id). T = 1:
  //   l0 = -1 + log(e + e^-1), l2 = -1 + log(2e + e^-1), l1 = l3 = -1 + log(e + 1);
  //   loss = 0.3780187654.
  HandBatch h;
  HandMemory mem;
  contra::Embeddings emb{matrix(h.z, 4, 2), &h.sample, nullptr, 2, &h.ids, {}, &mem.view};
  contra::Pairs pairs;
  pairs.memory_negative = {{0, 2}, {2, 0}, {2, 2}, {1, 2}, {3, 0}};
  InfoNce loss = make(1.0);
  contra::LossResult out;
  loss.compute(emb, pairs, out);
  CHECK(out.value == Approx(0.3780187654).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx((-1 + 1 - 1 + 0 + 0) / 5.0).margin(1e-6));

  // Explicit positives: only row 0's pair (0, 2) counts, so the loss is l0 alone.
  pairs.positive = {{0, 2}};
  loss.compute(emb, pairs, out);
  CHECK(out.value == Approx(-1 + std::log(std::exp(1.0) + std::exp(-1.0))).margin(1e-6));

  // An empty slot, or a key outside the memory, is refused.
  pairs.memory_negative = {{0, 1}};
  CHECK_THROWS_WITH(loss.compute(emb, pairs, out),
                    "info_nce: memory negative (row 0, key 1) is an empty slot of the memory");
  pairs.memory_negative = {{0, 3}};
  CHECK_THROWS_WITH(loss.compute(emb, pairs, out),
                    "info_nce: memory negative (row 0, key 3) is outside the 4 rows or the 3 keys");
}

TEST_CASE("info_nce: empty memory slots and keys of the anchor's own id are left out", "[plugins][info_nce]") {
  // The same loss and gradient with the excluded keys present (whatever their contents) as
  // with them removed from the memory.
  const std::int64_t n = 6, d = 5;
  std::vector<std::int64_t> sample = samples(n, 2);
  std::vector<std::int64_t> ids = batch_ids(sample);
  contra::Tensor z = random_matrix(2 * n, d, 21);
  RandomMemory full(40, d, n, 22);
  std::vector<float> kept;
  std::vector<std::int64_t> kept_ids;
  std::int64_t excluded = 0;
  for (std::int64_t r = 0; r < 40; ++r) {
    if (full.ids[r] == -1) {  // an empty slot may hold anything
      for (std::int64_t c = 0; c < d; ++c) full.keys.data<float>()[r * d + c] = 100.0f;
      ++excluded;
      continue;
    }
    kept.insert(kept.end(), full.keys.data<float>() + r * d, full.keys.data<float>() + (r + 1) * d);
    kept_ids.push_back(full.ids[r]);
  }
  REQUIRE(excluded > 0);
  REQUIRE(std::count_if(kept_ids.begin(), kept_ids.end(), [](std::int64_t id) { return id < 5000; }) > 0);
  // Keys of a batch id excluded from rows of that sample only: compare against the reference.
  contra::MemoryView reduced{contra::Tensor::wrap(kept.data(), {static_cast<std::int64_t>(kept_ids.size()), d},
                                                  contra::DType::f32),
                             &kept_ids, nullptr};
  InfoNce loss = make(0.3);
  contra::LossResult a, b;
  loss.compute({z, &sample, nullptr, 2, &ids, {}, &full.view}, all_pairs(), a);
  loss.compute({z, &sample, nullptr, 2, &ids, {}, &reduced}, all_pairs(), b);
  CHECK(a.value == Approx(b.value).epsilon(1e-6));
  for (std::int64_t k = 0; k < z.numel(); ++k) CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
  std::vector<double> ref_grad;
  CHECK(a.value == Approx(reference_with_memory(z, sample, &ids, &reduced, 0.3, ref_grad)).epsilon(1e-5));
  for (std::int64_t k = 0; k < z.numel(); ++k) CHECK(a.grad.data<float>()[k] == Approx(ref_grad[k]).margin(1e-5));

  // A memory of empty slots only (as at the start of training) adds no negative.
  std::vector<std::int64_t> none(40, -1);
  contra::MemoryView useless{full.keys, &none, nullptr};
  contra::LossResult c, plain;
  loss.compute({z, &sample, nullptr, 2, &ids, {}, &useless}, all_pairs(), c);
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), plain);
  CHECK(c.value == Approx(plain.value).epsilon(1e-6));
}

TEST_CASE("info_nce: momentum keys of the other view are the positives, worked by hand", "[plugins][info_nce]") {
  // Queries (normalised inside): q0 = (1, 0), q1 = (0, 1), q2 = (r, r), q3 = (-1, 0), r = 1/sqrt(2);
  // rows 0, 2 are sample 0, rows 1, 3 sample 1. Keys (normalised inside): k0 = (0, 1), k1 = (1, 0),
  // k2 = (1, 0), k3 = (0, -1). The positive of row i is the key of the other view of its
  // sample: q0·k2 = 1, q2·k0 = r, q1·k3 = -1, q3·k1 = -1. Memory keys m0 = (1, 0), m1 = (0, 1).
  // T = 1, batch_negatives auto = no with keys:
  //   l0 = -1 + log(e + e + 1)             = 0.8619948041
  //   l2 = -r + log(e^r + e^r + e^r)       = log 3 = 1.0986122887
  //   l1 = 1 + log(e^-1 + 1 + e)           = 2.4076059644
  //   l3 = 1 + log(e^-1 + e^-1 + 1)        = 1.5514447139
  //   loss = 1.4799144428; pos_sim = (1 + r - 1 - 1) / 4 = -0.0732233047.
  // batch_negatives = yes adds the keys of the other sample's rows: row 0: k1 (1), k3 (0);
  // row 2: k1 (r), k3 (-r); row 1: k0 (1), k2 (0); row 3: k0 (0), k2 (-1): loss = 1.9876293332.
  std::vector<float> q{1, 0, 0, 1, 2, 2, -3, 0};
  std::vector<float> k{0, 2, 1, 0, 3, 0, 0, -1};
  std::vector<float> m{1, 0, 0, 1};
  std::vector<std::int64_t> sample{0, 1, 0, 1}, ids{5, 6, 5, 6}, mem_ids{100, 101};
  contra::MemoryView mem{matrix(m, 2, 2), &mem_ids, nullptr};
  contra::Embeddings emb{matrix(q, 4, 2), &sample, nullptr, 2, &ids, matrix(k, 4, 2), &mem};
  contra::LossResult out;
  InfoNce moco = make(1.0);
  moco.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(1.4799144428).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(-0.0732233047).margin(1e-6));
  InfoNce with_batch = make(1.0, 1024, "yes");
  with_batch.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(1.9876293332).margin(1e-6));

  // An empty memory (the start of training: no key yet, or only empty slots) gives no
  // negative: every term is log 1 = 0, and so is the gradient.
  std::vector<std::int64_t> empty_ids{-1, -1};
  contra::MemoryView empty{matrix(m, 2, 2), &empty_ids, nullptr};
  contra::MemoryView none{};
  for (const contra::MemoryView* v : {&empty, &none}) {
    moco.compute({matrix(q, 4, 2), &sample, nullptr, 2, &ids, matrix(k, 4, 2), v}, all_pairs(), out);
    CHECK(out.value == Approx(0.0).margin(1e-7));
    for (std::int64_t c = 0; c < 8; ++c) CHECK(out.grad.data<float>()[c] == 0.0f);
  }

  // Without a memory, "auto" with keys has no negative at all: refused.
  contra::Embeddings no_memory{matrix(q, 4, 2), &sample, nullptr, 2, &ids, matrix(k, 4, 2)};
  CHECK_THROWS_WITH(moco.compute(no_memory, all_pairs(), out),
                    "info_nce: no negatives: batch_negatives = \"auto\" with momentum keys takes negatives "
                    "from a memory only, and the pipeline has none");
}

TEST_CASE("info_nce: chunk = 1 and chunk = 1024 agree", "[plugins][info_nce]") {
  const std::int64_t n = 20, d = 8;
  std::vector<std::int64_t> sample = samples(n, 2);
  std::vector<std::int64_t> ids = batch_ids(sample);
  contra::Tensor z = random_matrix(2 * n, d, 31);
  contra::Tensor keys = random_matrix(2 * n, d, 32);
  RandomMemory mem(30, d, n, 33);
  const contra::Embeddings cases[] = {
      {z, &sample, nullptr, 2},
      {z, &sample, nullptr, 2, &ids, {}, &mem.view},
      {z, &sample, nullptr, 2, &ids, keys, &mem.view},
  };
  for (const auto& emb : cases)
    for (const char* batch_negatives : {"yes", "no"}) {
      if (!emb.memory && std::string(batch_negatives) == "no") continue;
      InfoNce one = make(0.2, 1, batch_negatives), all = make(0.2, 1024, batch_negatives),
              seven = make(0.2, 7, batch_negatives);
      contra::LossResult a, b, c;
      one.compute(emb, all_pairs(), a);
      all.compute(emb, all_pairs(), b);
      seven.compute(emb, all_pairs(), c);
      CHECK(a.value == Approx(b.value).epsilon(1e-6));
      CHECK(c.value == Approx(b.value).epsilon(1e-6));
      for (std::size_t i = 0; i < a.metrics.size(); ++i) CHECK(a.metrics[i].second == Approx(b.metrics[i].second).margin(1e-6));
      for (std::int64_t k = 0; k < z.numel(); ++k) {
        CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
        CHECK(c.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
      }
    }
}

TEST_CASE("info_nce: the symmetric tiled path and the general chunked path agree", "[plugins][info_nce]") {
  // Plain NT-Xent (no memory, no keys, T >= 0.025) runs on symmetric tiles with a fixed shift
  // 1/T; a memory of empty slots only adds nothing but sends it through the general path
  // (row blocks against every candidate, shifted by each row's max). V = 3, and one sample
  // with a single view (a row that is no anchor but a negative of the others).
  const std::int64_t n = 23, d = 9;
  std::vector<std::int64_t> sample = samples(n, 3);
  sample.push_back(n);
  std::vector<std::int64_t> ids = batch_ids(sample);
  const std::int64_t m = static_cast<std::int64_t>(sample.size());
  contra::Tensor z = random_matrix(m, d, 61);
  RandomMemory mem(8, d, n, 62);
  std::vector<std::int64_t> empty(8, -1);
  contra::MemoryView nothing{mem.keys, &empty, nullptr};
  for (double t : {0.03, 0.2, 2.0})
    for (std::int64_t chunk : {5, 16, 1024}) {
      INFO("T = " << t << ", chunk = " << chunk);
      InfoNce loss = make(t, chunk);
      contra::LossResult a, b;
      loss.compute({z, &sample, nullptr, 3}, all_pairs(), a);
      loss.compute({z, &sample, nullptr, 3, &ids, {}, &nothing}, all_pairs(), b);
      CHECK(a.value == Approx(b.value).epsilon(1e-6));
      CHECK(a.value == Approx(reference_loss_anchors(z, sample, t)).epsilon(1e-5));
      for (std::size_t k = 0; k < a.metrics.size(); ++k) CHECK(a.metrics[k].second == Approx(b.metrics[k].second).margin(1e-6));
      double largest = 0;
      for (std::int64_t k = 0; k < z.numel(); ++k) largest = std::max(largest, std::abs(double(b.grad.data<float>()[k])));
      for (std::int64_t k = 0; k < z.numel(); ++k)
        CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(2e-6 * largest));
    }
}

TEST_CASE("info_nce: gradient with memory negatives and momentum keys matches finite differences",
          "[plugins][info_nce]") {
  // Memory keys and momentum keys are constants: only z is perturbed.
  const std::int64_t n = 4, d = 5;
  std::vector<std::int64_t> sample = samples(n, 2);
  std::vector<std::int64_t> ids = batch_ids(sample);
  contra::Tensor z = random_matrix(2 * n, d, 41);
  contra::Tensor keys = random_matrix(2 * n, d, 42);
  RandomMemory mem(12, d, n, 43);
  contra::Pairs listed;
  listed.memory_negative = {{0, 1}, {0, 2}, {1, 3}, {2, 4}, {2, 6}, {3, 8}, {5, 9}, {6, 11}, {7, 1}};
  listed.negative = {{0, 1}, {1, 6}, {4, 3}, {7, 0}};
  struct Case {
    const char* name;
    contra::Embeddings emb;
    contra::Pairs pairs;
    const char* batch_negatives;
  };
  const Case cases[] = {
      {"all pairs + memory", {z, &sample, nullptr, 2, &ids, {}, &mem.view}, all_pairs(), "auto"},
      {"memory only", {z, &sample, nullptr, 2, &ids, {}, &mem.view}, all_pairs(), "no"},
      {"momentum keys + memory", {z, &sample, nullptr, 2, &ids, keys, &mem.view}, all_pairs(), "auto"},
      {"momentum keys + batch + memory", {z, &sample, nullptr, 2, &ids, keys, &mem.view}, all_pairs(), "yes"},
      {"listed negatives", {z, &sample, nullptr, 2, &ids, {}, &mem.view}, listed, "auto"},
      {"listed negatives, momentum keys", {z, &sample, nullptr, 2, &ids, keys, &mem.view}, listed, "auto"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    InfoNce loss = make(0.4, 3, c.batch_negatives);
    contra::LossResult out, probe;
    loss.compute(c.emb, c.pairs, out);
    const contra::Tensor grad = out.grad.clone();
    auto f = [&]() {
      loss.compute(c.emb, c.pairs, probe);
      return probe.value;
    };
    double worst = 0;
    for (std::int64_t k = 0; k < z.numel(); ++k) {
      const double num = contra::test::numeric_derivative(f, z.data<float>(), k, 1e-3);
      const double ana = grad.data<float>()[k];
      worst = std::max(worst, std::abs(num - ana));
      CHECK(ana == Approx(num).margin(2e-4).epsilon(1e-2));
    }
    INFO("largest |numeric - analytic| = " << worst);
    CHECK(worst < 2e-4);
  }
}

TEST_CASE("info_nce: 2N = 600 in chunks of 128 matches a double-precision reference", "[plugins][info_nce]") {
  const std::int64_t n = 300, d = 32;
  std::vector<std::int64_t> sample = samples(n, 2);
  std::vector<std::int64_t> ids = batch_ids(sample);
  contra::Tensor z = random_matrix(2 * n, d, 51);
  RandomMemory mem(200, d, n, 52);
  for (double t : {0.1, 0.5}) {
    INFO("T = " << t);
    InfoNce loss = make(t, 128);
    contra::LossResult out;
    std::vector<double> ref_grad;
    loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
    const double ref = reference_with_memory(z, sample, nullptr, nullptr, t, ref_grad);
    CHECK(out.value == Approx(ref).epsilon(1e-6));
    CHECK(out.value == Approx(reference_loss(z, sample, t)).epsilon(1e-6));
    double worst = 0, largest = 0;
    for (std::int64_t k = 0; k < z.numel(); ++k) {
      worst = std::max(worst, std::abs(out.grad.data<float>()[k] - ref_grad[k]));
      largest = std::max(largest, std::abs(ref_grad[k]));
    }
    INFO("largest |grad - reference| = " << worst << " of largest |reference| " << largest);
    CHECK(worst < 1e-5 * largest);

    loss.compute({z, &sample, nullptr, 2, &ids, {}, &mem.view}, all_pairs(), out);
    CHECK(out.value == Approx(reference_with_memory(z, sample, &ids, &mem.view, t, ref_grad)).epsilon(1e-6));
    worst = 0;
    for (std::int64_t k = 0; k < z.numel(); ++k) worst = std::max(worst, std::abs(out.grad.data<float>()[k] - ref_grad[k]));
    CHECK(worst < 1e-5 * largest);
  }
}

TEST_CASE("info_nce: refuses a memory without ids, and malformed keys", "[plugins][info_nce]") {
  HandBatch h;
  HandMemory mem;
  InfoNce loss = make(1.0);
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute({matrix(h.z, 4, 2), &h.sample, nullptr, 2, nullptr, {}, &mem.view}, all_pairs(), out),
                    Catch::Matchers::Contains("Embeddings::ids must give the sample id"));
  contra::MemoryView no_ids{mem.view.keys, nullptr, nullptr};
  CHECK_THROWS_WITH(loss.compute({matrix(h.z, 4, 2), &h.sample, nullptr, 2, &h.ids, {}, &no_ids}, all_pairs(), out),
                    "info_nce: the memory's keys come without ids (MemoryView::ids)");
  std::vector<float> wide(12, 1.0f);
  contra::MemoryView wrong{matrix(wide, 4, 3), &mem.ids, nullptr};
  CHECK_THROWS_WITH(loss.compute({matrix(h.z, 4, 2), &h.sample, nullptr, 2, &h.ids, {}, &wrong}, all_pairs(), out),
                    Catch::Matchers::Contains("memory keys (MemoryView::keys) as an f32 [K, 2] CPU tensor"));
  CHECK_THROWS_WITH(loss.compute({matrix(h.z, 4, 2), &h.sample, nullptr, 2, &h.ids, matrix(wide, 3, 2)}, all_pairs(), out),
                    Catch::Matchers::Contains("momentum keys (Embeddings::keys) as an f32 [4, 2] CPU tensor"));
}

TEST_CASE("info_nce: repeated calls give bit-identical results", "[plugins][info_nce]") {
  // Tiles are dealt to threads in a fixed order and per-row results summed in row order, so a
  // step's loss and gradient do not depend on timing (a resumed run repeats them exactly).
  const std::int64_t n = 300, d = 16;
  std::vector<std::int64_t> sample = samples(n, 2);
  std::vector<std::int64_t> ids = batch_ids(sample);
  contra::Tensor z = random_matrix(2 * n, d, 71);
  RandomMemory mem(100, d, n, 72);
  const contra::Embeddings cases[] = {{z, &sample, nullptr, 2}, {z, &sample, nullptr, 2, &ids, {}, &mem.view}};
  for (const auto& emb : cases) {
    InfoNce loss = make(0.2, 64);
    contra::LossResult a, b;
    loss.compute(emb, all_pairs(), a);
    const contra::Tensor first = a.grad.clone();
    for (int rep = 0; rep < 5; ++rep) {
      loss.compute(emb, all_pairs(), b);
      CHECK(b.value == a.value);
      CHECK(std::equal(first.data<float>(), first.data<float>() + first.numel(), b.grad.data<float>()));
      for (std::size_t k = 0; k < a.metrics.size(); ++k) CHECK(b.metrics[k].second == a.metrics[k].second);
    }
  }
}
