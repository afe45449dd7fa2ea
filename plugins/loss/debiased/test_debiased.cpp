#include "debiased.hpp"

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

using contra::plugins::Debiased;

namespace {

Debiased make(double temperature, double tau_plus, std::int64_t chunk = 1024) {
  return Debiased(Debiased::schema().bind({{"temperature", temperature}, {"tau_plus", tau_plus}, {"chunk", chunk}}));
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

// Random L2-normalised rows, as a memory holds them.
contra::Tensor random_keys(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  contra::Tensor t = random_matrix(rows, cols, seed);
  for (std::int64_t i = 0; i < rows; ++i) {
    float* r = t.data<float>() + i * cols;
    double ss = 0;
    for (std::int64_t k = 0; k < cols; ++k) ss += double(r[k]) * r[k];
    for (std::int64_t k = 0; k < cols; ++k) r[k] = static_cast<float>(r[k] / std::sqrt(ss));
  }
  return t;
}

double metric(const contra::LossResult& r, const std::string& name) {
  for (const auto& [k, v] : r.metrics)
    if (k == name) return v;
  FAIL("metric " << name << " missing");
  return 0.0;
}

using Real = long double;

// Cosine similarities s_ij / T of rows, and of rows against keys, in long double.
struct Sims {
  std::vector<Real> zh, kh;
  std::int64_t m = 0, k = 0, d = 0;
  Sims(const contra::Tensor& z, const contra::Tensor* keys) : m(z.dim(0)), d(z.dim(1)) {
    zh = normalised(z);
    if (keys) {
      k = keys->dim(0);
      kh.assign(keys->data<float>(), keys->data<float>() + keys->numel());
    }
  }
  std::vector<Real> normalised(const contra::Tensor& t) const {
    std::vector<Real> out(static_cast<std::size_t>(t.numel()));
    for (std::int64_t i = 0; i < t.dim(0); ++i) {
      Real ss = 0;
      for (std::int64_t c = 0; c < d; ++c) ss += Real(t.data<float>()[i * d + c]) * t.data<float>()[i * d + c];
      for (std::int64_t c = 0; c < d; ++c) out[i * d + c] = t.data<float>()[i * d + c] / std::sqrt(ss);
    }
    return out;
  }
  Real rows(std::int64_t i, std::int64_t j) const {
    Real dot = 0;
    for (std::int64_t c = 0; c < d; ++c) dot += zh[i * d + c] * zh[j * d + c];
    return dot;
  }
  Real key(std::int64_t i, std::int64_t j) const {
    Real dot = 0;
    for (std::int64_t c = 0; c < d; ++c) dot += zh[i * d + c] * kh[j * d + c];
    return dot;
  }
};

// Negatives of row i: with Pairs::all the rows of other samples and every key whose id is neither
// -1 nor row i's id; with explicit pairs exactly the listed rows and keys.
struct MemorySpec {
  const contra::Tensor* keys = nullptr;
  const std::vector<std::int64_t>* key_ids = nullptr;
  const std::vector<std::int64_t>* row_ids = nullptr;
  const contra::Pairs* listed = nullptr;
};

std::vector<Real> negative_cosines(const Sims& s, const std::vector<std::int64_t>& sample, std::int64_t i,
                                   const MemorySpec& mem) {
  std::vector<Real> c;
  if (mem.listed) {
    for (const auto& [a, n] : mem.listed->negative)
      if (a == i) c.push_back(s.rows(i, n));
    for (const auto& [a, k] : mem.listed->memory_negative)
      if (a == i) c.push_back(s.key(i, k));
    return c;
  }
  for (std::int64_t j = 0; j < s.m; ++j)
    if (sample[j] != sample[i]) c.push_back(s.rows(i, j));
  if (mem.keys) {
    for (std::int64_t k = 0; k < s.k; ++k) {
      const std::int64_t id = mem.key_ids ? (*mem.key_ids)[k] : 0;
      if (mem.key_ids && (id < 0 || (mem.row_ids && id == (*mem.row_ids)[i]))) continue;
      c.push_back(s.key(i, k));
    }
  }
  return c;
}

// Positives of row i: the listed ones, or the other views of its sample.
std::vector<std::int64_t> positives(const std::vector<std::int64_t>& sample, std::int64_t i, const MemorySpec& mem) {
  std::vector<std::int64_t> p;
  if (mem.listed && !mem.listed->positive.empty()) {
    for (const auto& [a, q] : mem.listed->positive)
      if (a == i) p.push_back(q);
    return p;
  }
  for (std::int64_t j = 0; j < static_cast<std::int64_t>(sample.size()); ++j)
    if (j != i && sample[j] == sample[i]) p.push_back(j);
  return p;
}

// The debiased loss (Chuang et al. 2020) written directly, memory negatives included.
double reference_debiased(const contra::Tensor& z, const std::vector<std::int64_t>& sample, double t, double tau,
                          const MemorySpec& mem = {}) {
  Sims s(z, mem.keys);
  Real total = 0;
  int anchors = 0;
  for (std::int64_t i = 0; i < s.m; ++i) {
    std::vector<Real> neg = negative_cosines(s, sample, i, mem);
    const Real n = static_cast<Real>(neg.size());
    Real sum = 0;
    for (Real c : neg) sum += std::exp(c / t);
    Real li = 0;
    int np = 0;
    for (std::int64_t j : positives(sample, i, mem)) {
      const Real pos = std::exp(s.rows(i, j) / t);
      const Real ng = n == 0 ? Real(0) : std::max((sum - n * tau * pos) / (1 - tau), n * std::exp(Real(-1) / t));
      li += -std::log(pos / (pos + ng));
      ++np;
    }
    if (np == 0) continue;
    total += li / np;
    ++anchors;
  }
  return static_cast<double>(total / anchors);
}

// NT-Xent / InfoNCE as the info_nce plugin defines it.
double reference_info_nce(const contra::Tensor& z, const std::vector<std::int64_t>& sample, double t) {
  Sims s(z, nullptr);
  Real total = 0;
  for (std::int64_t i = 0; i < s.m; ++i) {
    Real neg = 0, li = 0;
    int np = 0;
    for (std::int64_t j = 0; j < s.m; ++j)
      if (sample[j] != sample[i]) neg += std::exp(s.rows(i, j) / t);
    for (std::int64_t j = 0; j < s.m; ++j)
      if (j != i && sample[j] == sample[i]) {
        li += -std::log(std::exp(s.rows(i, j) / t) / (std::exp(s.rows(i, j) / t) + neg));
        ++np;
      }
    total += li / np;
  }
  return static_cast<double>(total / s.m);
}

// Largest |numeric - analytic| over every entry of z, checking each.
double check_gradient(Debiased& loss, const contra::Embeddings& emb, const contra::Pairs& pairs) {
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
    CHECK(ana == Approx(num).margin(2e-4).epsilon(1e-2));
  }
  return worst;
}

}  // namespace

TEST_CASE("debiased: schema declares temperature, tau_plus and chunk with their ranges", "[plugins][debiased]") {
  contra::Schema s = Debiased::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("temperature") == 0.5);
  CHECK(p.get<double>("tau_plus") == 0.1);
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"temperature", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"tau_plus", 1.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"tau_plus", -0.1}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"beta", 1.0}}), contra::ConfigError);  // that is hcl's
}

TEST_CASE("debiased: value and metrics match a case worked by hand", "[plugins][debiased]") {
  // N = 2 samples, V = 2 views, D = 2 (the info_nce example). Rows: 0 = (view 0, sample 0),
  // 1 = (view 0, sample 1), 2 = (view 1, sample 0), 3 = (view 1, sample 1):
  //   z0 = (2, 0) -> (1, 0);  z1 = (0, 3) -> (0, 1);  z2 = (1, 1) -> (r, r), r = 1/sqrt(2);
  //   z3 = (-1, 0) -> (-1, 0).
  // Cosines: c01 = 0, c02 = r, c03 = -1, c12 = r, c13 = 0, c23 = -r. Each row has one positive and
  // N = 2 negatives. T = 1, tau+ = 0.1, so Ng = (neg1 + neg2 - 0.2 pos) / 0.9, bound 2e^-1 = 0.7357588823:
  //   row 0: pos = e^r = 2.0281149816, negs e^0 + e^-1 = 1.3678794412, Ng = 1.0691738276,
  //          l0 = log(1 + Ng / pos) = 0.4234203700
  //   row 1: pos = 1, negs e^0 + e^r = 3.0281149816, Ng = 3.1423499796, l1 = log(1 + Ng) = 1.4212632547
  //   row 2: pos = e^r, negs e^r + e^-r = 2.5211836730, Ng = 2.3506229741,
  //          l2 = log(1 + Ng / pos) = 0.7696537637
  //   row 3: pos = 1, negs e^-1 + e^-r = 0.8609481326, (0.8609481326 - 0.2) / 0.9 = 0.7343868140
  //          is below the bound, so Ng = 0.7357588823 and l3 = log(1.7357588823) = 0.5514447139
  //   loss = (l0 + l1 + l2 + l3) / 4 = 0.7914455256, clamped = 1/4 (row 3).
  // With tau+ = 0 it is NT-Xent: 0.8344351924 (the info_nce example).
  float data[] = {2, 0, 0, 3, 1, 1, -1, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  contra::LossResult out;

  Debiased loss = make(1.0, 0.1);
  loss.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.7914455256).margin(1e-6));
  CHECK(metric(out, "clamped") == 0.25);
  CHECK(metric(out, "pos_sim") == Approx(0.3535533906).margin(1e-6));
  CHECK(metric(out, "neg_sim") == Approx(-0.25).margin(1e-6));
  REQUIRE(out.grad.shape() == contra::Shape({4, 2}));

  Debiased nt_xent = make(1.0, 0.0);
  nt_xent.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.8344351924).margin(1e-6));
  CHECK(metric(out, "clamped") == 0.0);
}

TEST_CASE("debiased: value with several positives per row matches the definition", "[plugins][debiased]") {
  const std::int64_t n = 4, v = 3, d = 6;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 11);
  contra::Embeddings emb{z, &sample, nullptr, v};
  contra::LossResult out;
  for (auto [t, tau] : {std::make_pair(0.1, 0.1), std::make_pair(0.5, 0.05), std::make_pair(2.0, 0.3),
                        std::make_pair(0.5, 0.9)}) {
    Debiased loss = make(t, tau);
    loss.compute(emb, all_pairs(), out);
    INFO("T = " << t << ", tau+ = " << tau);
    CHECK(out.value == Approx(reference_debiased(z, sample, t, tau)).epsilon(1e-5));
  }
}

TEST_CASE("debiased: tau+ = 0 is InfoNCE", "[plugins][debiased]") {
  auto [n, v, t] = GENERATE(std::make_tuple(4, 2, 0.5), std::make_tuple(3, 3, 0.2), std::make_tuple(6, 2, 1.0));
  const std::int64_t d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 21 + static_cast<std::uint64_t>(n * v));
  contra::Embeddings emb{z, &sample, nullptr, v};
  contra::LossResult out;
  Debiased loss = make(t, 0.0);
  loss.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(reference_info_nce(z, sample, t)).margin(1e-6));
  CHECK(metric(out, "clamped") == 0.0);
}

TEST_CASE("debiased: gradient matches central finite differences", "[plugins][debiased]") {
  // float32 throughout: with a step of 1e-3 the difference quotient carries up to ~1e-4 of
  // rounding. tau+ stays small enough that the lower bound on Ng (a kink) is not active.
  auto [n, v, t, tau] = GENERATE(std::make_tuple(3, 2, 0.5, 0.1), std::make_tuple(2, 3, 0.2, 0.01),
                                 std::make_tuple(4, 2, 1.0, 0.1), std::make_tuple(3, 2, 0.5, 0.0));
  const std::int64_t d = 5;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 7 + static_cast<std::uint64_t>(n * v));
  contra::Embeddings emb{z, &sample, nullptr, v};
  INFO("n = " << n << ", v = " << v << ", T = " << t << ", tau+ = " << tau);
  Debiased loss = make(t, tau);
  contra::LossResult out;
  loss.compute(emb, all_pairs(), out);
  REQUIRE(metric(out, "clamped") == 0.0);
  const double worst = check_gradient(loss, emb, all_pairs());
  INFO("largest |numeric - analytic| = " << worst);
  CHECK(worst < 2e-4);
}

TEST_CASE("debiased: gradient matches finite differences where the lower bound is active", "[plugins][debiased]") {
  // Second views close to the first make pos large; tau+ = 0.9 then drives
  // (R - N tau+ pos) / (1 - tau+) below N e^{-1/T} for most terms: those get no gradient through
  // the negatives.
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Tensor z = random_matrix(6, 4, 5);
  contra::Tensor noise = random_matrix(3, 4, 6);
  for (std::int64_t k = 0; k < 12; ++k) z.data<float>()[12 + k] = z.data<float>()[k] + 0.3f * noise.data<float>()[k];
  contra::Embeddings emb{z, &sample, nullptr, 2};
  Debiased loss = make(0.5, 0.9);
  contra::LossResult out;
  loss.compute(emb, all_pairs(), out);
  CHECK(metric(out, "clamped") > 0.0);
  CHECK(out.value == Approx(reference_debiased(z, sample, 0.5, 0.9)).epsilon(1e-5));
  CHECK(check_gradient(loss, emb, all_pairs()) < 2e-4);
}

TEST_CASE("debiased: chunk = 1 gives the value and gradient of one block", "[plugins][debiased]") {
  const std::int64_t n = 5, v = 3, d = 4, k = 7;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 3);
  contra::Tensor keys = random_keys(k, d, 4);
  std::vector<std::int64_t> key_ids{100, 101, 2, -1, 103, 104, 0};
  std::vector<std::int64_t> row_ids;
  for (std::int64_t s : sample) row_ids.push_back(s);
  contra::MemoryView mem{keys, &key_ids, nullptr};
  contra::Embeddings emb{z, &sample, nullptr, v, &row_ids};
  for (bool with_memory : {false, true}) {
    emb.memory = with_memory ? &mem : nullptr;
    Debiased one = make(0.3, 0.1, 1), all = make(0.3, 0.1, 1024), four = make(0.3, 0.1, 4);
    contra::LossResult a, b, c;
    one.compute(emb, all_pairs(), a);
    all.compute(emb, all_pairs(), b);
    four.compute(emb, all_pairs(), c);
    CHECK(a.value == Approx(b.value).epsilon(1e-6));
    CHECK(c.value == Approx(b.value).epsilon(1e-6));
    for (std::int64_t i = 0; i < z.numel(); ++i) {
      CHECK(a.grad.data<float>()[i] == Approx(b.grad.data<float>()[i]).margin(1e-6));
      CHECK(c.grad.data<float>()[i] == Approx(b.grad.data<float>()[i]).margin(1e-6));
    }
    CHECK(metric(a, "clamped") == metric(b, "clamped"));
  }
}

TEST_CASE("debiased: memory keys of other samples are negatives, own and empty slots are not", "[plugins][debiased]") {
  const std::int64_t n = 3, v = 2, d = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> row_ids{10, 11, 12, 10, 11, 12};
  contra::Tensor z = random_matrix(n * v, d, 8);
  contra::LossResult none, with;
  Debiased loss = make(0.5, 0.1);
  contra::Embeddings emb{z, &sample, nullptr, v, &row_ids};
  loss.compute(emb, all_pairs(), none);

  // A key equal to row 0's direction, belonging to sample id 11: a very hard negative for rows 0
  // and 3 (sample 0), so the loss rises; it matches the definition with the key among negatives.
  contra::Tensor keys = random_keys(4, d, 9);
  {
    double ss = 0;
    for (std::int64_t c = 0; c < d; ++c) ss += double(z.data<float>()[c]) * z.data<float>()[c];
    for (std::int64_t c = 0; c < d; ++c) keys.data<float>()[c] = static_cast<float>(z.data<float>()[c] / std::sqrt(ss));
  }
  std::vector<std::int64_t> key_ids{11, 12, 99, 98};
  contra::MemoryView mem{keys, &key_ids, nullptr};
  emb.memory = &mem;
  loss.compute(emb, all_pairs(), with);
  CHECK(with.value > none.value);
  CHECK(with.value == Approx(reference_debiased(z, sample, 0.5, 0.1, {&keys, &key_ids, &row_ids})).epsilon(1e-5));
  CHECK(check_gradient(loss, emb, all_pairs()) < 2e-4);

  // The same key marked as row 0's own sample (id 10) is skipped for sample 0's rows, and an empty
  // slot (-1) for every row: only keys 1..3 remain for them.
  std::vector<std::int64_t> own_ids{10, -1, 99, 98};
  contra::MemoryView own{keys, &own_ids, nullptr};
  emb.memory = &own;
  loss.compute(emb, all_pairs(), with);
  CHECK(with.value == Approx(reference_debiased(z, sample, 0.5, 0.1, {&keys, &own_ids, &row_ids})).epsilon(1e-5));
  std::vector<std::int64_t> empty_ids{-1, -1, -1, -1};
  contra::MemoryView empty{keys, &empty_ids, nullptr};
  emb.memory = &empty;
  loss.compute(emb, all_pairs(), with);
  CHECK(with.value == Approx(none.value).epsilon(1e-6));

  // Explicit negatives (as a hard-negative miner lists them): exactly the listed rows and keys.
  emb.memory = &mem;
  contra::Pairs listed;
  listed.negative = {{0, 1}, {0, 4}, {2, 5}, {3, 2}};
  listed.memory_negative = {{0, 0}, {3, 0}, {1, 2}, {4, 3}, {4, 2}};
  loss.compute(emb, listed, with);
  CHECK(with.value ==
        Approx(reference_debiased(z, sample, 0.5, 0.1, {&keys, &key_ids, &row_ids, &listed})).epsilon(1e-5));
  CHECK(check_gradient(loss, emb, listed) < 2e-4);
  // With listed positives only those count, and rows without any are no anchors.
  listed.positive = {{0, 3}, {4, 1}, {1, 4}};
  loss.compute(emb, listed, with);
  CHECK(with.value ==
        Approx(reference_debiased(z, sample, 0.5, 0.1, {&keys, &key_ids, &row_ids, &listed})).epsilon(1e-5));
  CHECK(check_gradient(loss, emb, listed) < 2e-4);
}

TEST_CASE("debiased: explicit lists of every pair give the value and gradient of Pairs::all", "[plugins][debiased]") {
  const std::int64_t n = 4, v = 3, d = 5, k = 6;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> row_ids;
  for (std::int64_t s : sample) row_ids.push_back(50 + s);
  contra::Tensor z = random_matrix(n * v, d, 71);
  contra::Tensor keys = random_keys(k, d, 72);
  std::vector<std::int64_t> key_ids{50, 60, -1, 52, 61, 62};
  contra::MemoryView mem{keys, &key_ids, nullptr};
  contra::Embeddings emb{z, &sample, nullptr, v, &row_ids};
  emb.memory = &mem;
  contra::Pairs every;
  for (std::int32_t i = 0; i < n * v; ++i) {
    for (std::int32_t j = 0; j < n * v; ++j)
      if (sample[j] != sample[i]) every.negative.push_back({i, j});
    for (std::int32_t q = 0; q < k; ++q)
      if (key_ids[q] >= 0 && key_ids[q] != row_ids[i]) every.memory_negative.push_back({i, q});
  }
  Debiased loss = make(0.4, 0.1);
  contra::LossResult a, b, c;
  loss.compute(emb, all_pairs(), a);
  loss.compute(emb, every, b);  // positives by sample grouping
  for (std::int32_t i = 0; i < n * v; ++i)
    for (std::int32_t j = 0; j < n * v; ++j)
      if (j != i && sample[j] == sample[i]) every.positive.push_back({i, j});
  loss.compute(emb, every, c);  // positives listed
  CHECK(b.value == Approx(a.value).epsilon(1e-6));
  CHECK(c.value == Approx(a.value).epsilon(1e-6));
  CHECK(metric(b, "clamped") == metric(a, "clamped"));
  CHECK(metric(b, "neg_sim") == Approx(metric(a, "neg_sim")).epsilon(1e-6));
  for (std::int64_t q = 0; q < z.numel(); ++q) {
    CHECK(b.grad.data<float>()[q] == Approx(a.grad.data<float>()[q]).margin(1e-6));
    CHECK(c.grad.data<float>()[q] == Approx(a.grad.data<float>()[q]).margin(1e-6));
  }
}

TEST_CASE("debiased: stays finite at the lowest temperature", "[plugins][debiased]") {
  const std::int64_t n = 4, v = 3, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 9);
  contra::LossResult out;
  for (double tau : {0.0, 0.1, 0.9}) {
    Debiased loss = make(1e-3, tau);
    loss.compute({z, &sample, nullptr, v}, all_pairs(), out);
    CHECK(std::isfinite(out.value));
    for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(std::isfinite(out.grad.data<float>()[k]));
  }
}

TEST_CASE("debiased: reuses its buffers across steps of one shape", "[plugins][debiased]") {
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Tensor z = random_matrix(8, 4, 1);
  Debiased loss = make(0.5, 0.1, 3);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  const void* first = out.grad.raw();
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.grad.raw() == first);
  CHECK(out.metrics.size() == 3);
}

TEST_CASE("debiased: refuses pair forms and memory negatives it cannot use", "[plugins][debiased]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  Debiased loss = make(0.5, 0.1);
  contra::LossResult out;
  contra::Pairs triplets;
  triplets.triplets.push_back({0, 2, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, triplets, out),
                    "debiased: Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive");
  contra::Pairs both = all_pairs();
  both.negative.push_back({0, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, both, out),
                    "debiased: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the other");
  contra::Pairs positives_only;
  positives_only.positive.push_back({0, 2});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, positives_only, out),
                    "debiased: nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive");
  contra::Pairs listed;
  listed.memory_negative.push_back({0, 0});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, listed, out),
                    "debiased: Pairs::memory_negative lists memory keys, but the memory is absent");
  contra::Tensor keys = random_keys(2, 3, 3);
  std::vector<std::int64_t> key_ids{5, -1};
  contra::MemoryView mem{keys, &key_ids, nullptr};
  contra::Embeddings emb{z, &sample, nullptr, 2};
  emb.memory = &mem;
  listed.memory_negative = {{0, 2}};
  CHECK_THROWS_WITH(loss.compute(emb, listed, out),
                    "debiased: memory negative (row 0, key 2) is outside the 4 rows or the 2 keys");
  listed.memory_negative = {{1, 1}};
  CHECK_THROWS_WITH(loss.compute(emb, listed, out), "debiased: memory negative (row 1, key 1) is an empty slot of the memory");
  contra::Pairs bad;
  bad.negative.push_back({0, 9});
  CHECK_THROWS_WITH(loss.compute(emb, bad, out), "debiased: negative pair (0, 9) is outside the 4 rows");
  std::vector<std::int64_t> one_view{0, 1, 2, 3};
  CHECK_THROWS_WITH(loss.compute({z, &one_view, nullptr, 1}, all_pairs(), out),
                    Catch::Matchers::Contains("no row has a positive"));
}
