#include "supcon.hpp"

#include "test_support.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::SupCon;

namespace {

SupCon make(double temperature, std::int64_t chunk = 1024) {
  return SupCon(SupCon::schema().bind({{"temperature", temperature}, {"chunk", chunk}}));
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

std::vector<Real> normalised(const contra::Tensor& z) {
  const std::int64_t m = z.dim(0), d = z.dim(1);
  const float* p = z.data<float>();
  std::vector<Real> zh(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    Real ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<Real>(p[i * d + k]) * p[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) zh[i * d + k] = p[i * d + k] / std::sqrt(ss);
  }
  return zh;
}

// L_out of Khosla et al. written directly, positives grouped by `group`.
double reference_supcon(const contra::Tensor& z, const std::vector<std::int64_t>& group, double t) {
  const std::int64_t m = z.dim(0), d = z.dim(1);
  std::vector<Real> zh = normalised(z);
  auto s = [&](std::int64_t i, std::int64_t j) {
    Real dot = 0;
    for (std::int64_t k = 0; k < d; ++k) dot += zh[i * d + k] * zh[j * d + k];
    return dot / static_cast<Real>(t);
  };
  Real total = 0;
  int anchors = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    Real den = 0, li = 0;
    int np = 0;
    for (std::int64_t a = 0; a < m; ++a)
      if (a != i) den += std::exp(s(i, a));
    for (std::int64_t p = 0; p < m; ++p)
      if (p != i && group[p] == group[i]) {
        li += -std::log(std::exp(s(i, p)) / den);
        ++np;
      }
    if (np == 0) continue;
    total += li / np;
    ++anchors;
  }
  return static_cast<double>(total / anchors);
}

// Largest |numeric - analytic| over every entry of z, checking each.
double check_gradient(SupCon& loss, const contra::Embeddings& emb) {
  contra::LossResult out, probe;
  loss.compute(emb, all_pairs(), out);
  const contra::Tensor grad = out.grad.clone();
  float* z = const_cast<float*>(emb.z.data<float>());
  auto f = [&]() {
    loss.compute(emb, all_pairs(), probe);
    return probe.value;
  };
  double worst = 0;
  for (std::int64_t k = 0; k < emb.z.numel(); ++k) {
    const double num = contra::test::numeric_derivative(f, z, k, 1e-3);
    const double ana = grad.data<float>()[k];
    worst = std::max(worst, std::abs(num - ana));
    CHECK(ana == Approx(num).margin(2e-4).epsilon(1e-2));
  }
  return worst;
}

}  // namespace

TEST_CASE("supcon: schema declares temperature in [1e-3, 10], default 0.1, and chunk >= 1", "[plugins][supcon]") {
  contra::Schema s = SupCon::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.bind({}).get<double>("temperature") == 0.1);
  CHECK(s.bind({}).get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"temperature", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"temperature", 11.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
}

TEST_CASE("supcon: value and metrics match a case worked by hand", "[plugins][supcon]") {
  // N = 3 samples, V = 2 views, D = 2, unit vectors at angles (degrees): rows 0, 1, 2 (view 0 of
  // samples 0, 1, 2) at 0, 90, 180; rows 3, 4, 5 (view 1) at 60, 120, 270. Samples 0 and 1 are of
  // class 0, sample 2 of class 1: labels (0, 0, 1, 0, 0, 1). Cosines c_ij = cos(angle_i - angle_j):
  //   row 0: (1, 0, -1, 1/2, -1/2, 0)          row 1: (0, 1, 0, h, h, -1)      h = sqrt(3)/2
  //   row 2: (-1, 0, 1, -1/2, 1/2, 0)          row 3: (1/2, h, -1/2, 1, 1/2, -h)
  //   row 4: (-1/2, h, 1/2, 1/2, 1, -h)        row 5: (0, -1, 0, -h, -h, 1)
  // T = 1. loss_i = log Σ_{a≠i} e^{c_ia} − mean_{p∈P(i)} c_ip:
  //   row 0: P = {1, 3, 4}: log(e^0 + e^-1 + e^.5 + e^-.5 + e^0) = 1.5310722616, mean c = 0,
  //          l0 = 1.5310722616
  //   row 1: P = {0, 3, 4}: log(1 + 1 + 2e^h + e^-1) = 1.9632959635, mean c = 2h/3 = 0.5773502692,
  //          l1 = 1.3859456943
  //   row 2: P = {5}: log(e^-1 + 1 + e^-.5 + e^.5 + 1) = 1.5310722616, c25 = 0, l2 = 1.5310722616
  //   row 3: P = {0, 1, 4}: log(e^.5 + e^h + e^-.5 + e^.5 + e^-h) = 1.9024113463,
  //          mean c = (1/2 + h + 1/2) / 3 = 0.6220084679, l3 = 1.2804028783
  //   row 4: P = {0, 1, 3}: same sum 1.9024113463, mean c = (-1/2 + h + 1/2) / 3 = 0.2886751346,
  //          l4 = 1.6137362117
  //   row 5: P = {2}: log(1 + e^-1 + 1 + 2e^-h) = 1.1659965984, c52 = 0, l5 = 1.1659965984
  //   loss = Σ l / 6 = 1.4180376510
  // pos_sim: the 14 ordered positive pairs sum to 4.4641016151 -> 0.3188644011; neg_sim: the 16
  // negative pairs sum to -7.4641016151 -> -0.4665063509.
  // Without labels the positives are the other view only (SimCLR): l = (1.5310722616 - 1/2,
  // 1.9632959635 - h, 1.5310722616 - 0, 1.9024113463 - 1/2, 1.9024113463 - h, 1.1659965984 - 0),
  // loss = 1.2107014950; pos_sim = 2 (1/2 + h + 0) / 6 = 0.4553418013.
  const float h = std::sqrt(3.0f) / 2;
  float data[] = {1, 0, 0, 1, -1, 0, 0.5f, h, -0.5f, h, 0, -1};
  std::vector<std::int64_t> sample{0, 1, 2, 0, 1, 2};
  std::vector<std::int64_t> label{0, 0, 1, 0, 0, 1};
  contra::Tensor z = contra::Tensor::wrap(data, {6, 2}, contra::DType::f32);
  contra::LossResult out;
  SupCon loss = make(1.0);

  loss.compute({z, &sample, &label, 2}, all_pairs(), out);
  CHECK(out.value == Approx(1.4180376510).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(0.3188644011).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx(-0.4665063509).margin(1e-6));
  CHECK(metric(out, "anchors") == 1.0);
  REQUIRE(out.grad.shape() == contra::Shape({6, 2}));

  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.value == Approx(1.2107014950).margin(1e-6));
  CHECK(metric(out, "pos_sim") == Approx(0.4553418013).margin(1e-6));
}

TEST_CASE("supcon: value matches the definition with labels and several views", "[plugins][supcon]") {
  const std::int64_t n = 6, v = 3, d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label;
  for (std::int64_t s : sample) label.push_back(s % 3);  // 3 classes of 2 samples
  contra::Tensor z = random_matrix(n * v, d, 13);
  contra::LossResult out;
  for (double t : {0.05, 0.1, 0.5, 2.0}) {
    SupCon loss = make(t);
    loss.compute({z, &sample, &label, v}, all_pairs(), out);
    CHECK(out.value == Approx(reference_supcon(z, label, t)).epsilon(1e-5));
    loss.compute({z, &sample, nullptr, v}, all_pairs(), out);
    CHECK(out.value == Approx(reference_supcon(z, sample, t)).epsilon(1e-5));
  }
}

TEST_CASE("supcon: without labels and with two views it is NT-Xent", "[plugins][supcon]") {
  // For V = 2 each row's only positive is the other view and the denominator is every other row:
  // exactly NT-Xent as info_nce computes it, -log(e^{s_ip} / Σ_{k≠i} e^{s_ik}).
  const std::int64_t n = 5, d = 4;
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Tensor z = random_matrix(2 * n, d, 17);
  std::vector<Real> zh = normalised(z);
  const double t = 0.5;
  Real total = 0;
  for (std::int64_t i = 0; i < 2 * n; ++i) {
    const std::int64_t p = (i + n) % (2 * n);
    Real den = 0, sp = 0;
    for (std::int64_t k = 0; k < 2 * n; ++k) {
      if (k == i) continue;
      Real dot = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += zh[i * d + c] * zh[k * d + c];
      den += std::exp(dot / t);
      if (k == p) sp = dot / t;
    }
    total += -(sp - std::log(den));
  }
  SupCon loss = make(t);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.value == Approx(static_cast<double>(total / (2 * n))).margin(1e-6));
}

TEST_CASE("supcon: gradient matches central finite differences", "[plugins][supcon]") {
  auto [n, v, t, labelled] = GENERATE(std::make_tuple(4, 2, 0.5, true), std::make_tuple(3, 3, 0.2, true),
                                      std::make_tuple(4, 2, 1.0, false), std::make_tuple(2, 3, 0.1, false));
  const std::int64_t d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label;
  for (std::int64_t s : sample) label.push_back(s % 2);
  contra::Tensor z = random_matrix(n * v, d, 7 + static_cast<std::uint64_t>(n * v));
  SupCon loss = make(t);
  INFO("n = " << n << ", v = " << v << ", T = " << t << ", labels: " << labelled);
  const double worst = check_gradient(loss, {z, &sample, labelled ? &label : nullptr, v});
  INFO("largest |numeric - analytic| = " << worst);
  CHECK(worst < 2e-4);
}

TEST_CASE("supcon: chunk = 1 gives the value and gradient of one block", "[plugins][supcon]") {
  const std::int64_t n = 5, v = 3, d = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label;
  for (std::int64_t s : sample) label.push_back(s % 2);
  contra::Tensor z = random_matrix(n * v, d, 3);
  SupCon one = make(0.2, 1), all = make(0.2, 1024), four = make(0.2, 4);
  contra::LossResult a, b, c;
  one.compute({z, &sample, &label, v}, all_pairs(), a);
  all.compute({z, &sample, &label, v}, all_pairs(), b);
  four.compute({z, &sample, &label, v}, all_pairs(), c);
  CHECK(a.value == Approx(b.value).epsilon(1e-6));
  CHECK(c.value == Approx(b.value).epsilon(1e-6));
  for (std::int64_t i = 0; i < z.numel(); ++i) {
    CHECK(a.grad.data<float>()[i] == Approx(b.grad.data<float>()[i]).margin(1e-6));
    CHECK(c.grad.data<float>()[i] == Approx(b.grad.data<float>()[i]).margin(1e-6));
  }
}

TEST_CASE("supcon: rows alone in their class are no anchors but stay in denominators", "[plugins][supcon]") {
  // One view per sample (V = 1): only labels make positives. Classes (0, 0, 1, 2, 2, 3): rows 2
  // and 5 have no positive, so 4 of 6 rows are anchors; rows 2 and 5 still appear in the others'
  // denominators, and receive gradient through them.
  std::vector<std::int64_t> sample{0, 1, 2, 3, 4, 5};
  std::vector<std::int64_t> label{0, 0, 1, 2, 2, 3};
  contra::Tensor z = random_matrix(6, 3, 23);
  SupCon loss = make(0.5);
  contra::LossResult out;
  loss.compute({z, &sample, &label, 1}, all_pairs(), out);
  CHECK(metric(out, "anchors") == Approx(4.0 / 6.0));
  CHECK(out.value == Approx(reference_supcon(z, label, 0.5)).epsilon(1e-5));
  double g2 = 0;
  for (std::int64_t k = 0; k < 3; ++k) g2 += std::abs(out.grad.data<float>()[2 * 3 + k]);
  CHECK(g2 > 0);
  CHECK(check_gradient(loss, {z, &sample, &label, 1}) < 2e-4);
}

TEST_CASE("supcon: stays finite at the lowest temperature", "[plugins][supcon]") {
  const std::int64_t n = 4, v = 3, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 9);
  SupCon loss = make(1e-3);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, v}, all_pairs(), out);
  CHECK(std::isfinite(out.value));
  CHECK(out.value == Approx(reference_supcon(z, sample, 1e-3)).epsilon(1e-3));
  for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(std::isfinite(out.grad.data<float>()[k]));
}

TEST_CASE("supcon: reuses its buffers across steps of one shape", "[plugins][supcon]") {
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Tensor z = random_matrix(8, 4, 1);
  SupCon loss = make(0.5, 3);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  const void* first = out.grad.raw();
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.grad.raw() == first);
  CHECK(out.metrics.size() == 3);
}

TEST_CASE("supcon: refuses explicit pairs and malformed labels with a usage error", "[plugins][supcon]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  SupCon loss = make(0.5);
  contra::LossResult out;
  contra::Pairs explicit_pairs;
  explicit_pairs.positive.push_back({0, 2});
  explicit_pairs.triplets.push_back({0, 2, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, explicit_pairs, out),
                    "supcon: Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner) only");
  contra::Pairs both = all_pairs();
  both.memory_negative.push_back({0, 0});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, both, out),
                    "supcon: Pairs::memory_negative is not supported; it takes Pairs::all (the all_pairs miner) only");
  std::vector<std::int64_t> short_label{0, 1};
  CHECK_THROWS_WITH(loss.compute({z, &sample, &short_label, 2}, all_pairs(), out),
                    "supcon: Embeddings::label has 2 entries for 4 rows");
  std::vector<std::int64_t> one_view{0, 1, 2, 3};
  CHECK_THROWS_WITH(loss.compute({z, &one_view, nullptr, 1}, all_pairs(), out),
                    "supcon: no row has a positive (another row of its sample) among 4 rows");
  std::vector<std::int64_t> distinct{0, 1, 2, 3};
  CHECK_THROWS_WITH(loss.compute({z, &one_view, &distinct, 1}, all_pairs(), out),
                    "supcon: no row has a positive (another row of its class) among 4 rows");
}
