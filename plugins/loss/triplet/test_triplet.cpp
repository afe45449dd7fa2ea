#include "triplet.hpp"

#include "test_support.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::Triplet;

namespace {

struct Options {
  double margin = 0.2;
  const char* distance = "euclidean";
  bool squared = false;
  bool soft = false;
  const char* reduction = "mean";
  bool normalize = false;
  std::int64_t chunk = 1024;
};

Triplet make(const Options& o) {
  return Triplet(Triplet::schema().bind({{"margin", o.margin},
                                         {"distance", std::string(o.distance)},
                                         {"squared", o.squared},
                                         {"soft_margin", o.soft},
                                         {"reduction", std::string(o.reduction)},
                                         {"normalize", o.normalize},
                                         {"chunk", o.chunk}}));
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

// Every (a, p, n) of the batch, as Pairs::all means it for this loss.
contra::Pairs explicit_all(const std::vector<std::int64_t>& sample) {
  contra::Pairs p;
  const auto m = static_cast<std::int32_t>(sample.size());
  for (std::int32_t a = 0; a < m; ++a)
    for (std::int32_t q = 0; q < m; ++q)
      if (q != a && sample[q] == sample[a])
        for (std::int32_t n = 0; n < m; ++n)
          if (sample[n] != sample[a]) p.triplets.push_back({a, q, n});
  return p;
}

using Real = long double;

Real distance(const contra::Tensor& z, std::int64_t i, std::int64_t j, const Options& o) {
  const std::int64_t d = z.dim(1);
  const float* p = z.data<float>();
  const bool cosine = std::string(o.distance) == "cosine";
  Real ni = 1, nj = 1;
  if (cosine || o.normalize) {
    ni = nj = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      ni += Real(p[i * d + k]) * p[i * d + k];
      nj += Real(p[j * d + k]) * p[j * d + k];
    }
    ni = std::sqrt(ni);
    nj = std::sqrt(nj);
  }
  Real dot = 0, s = 0;
  for (std::int64_t k = 0; k < d; ++k) {
    dot += (p[i * d + k] / ni) * (p[j * d + k] / nj);
    s += std::pow(p[i * d + k] / ni - p[j * d + k] / nj, 2);
  }
  if (cosine) return 1 - dot;
  return o.squared ? s : std::sqrt(s);
}

double reference(const contra::Tensor& z, const std::vector<contra::Triplet>& triplets, const Options& o) {
  Real total = 0;
  int active = 0;
  for (const auto& t : triplets) {
    const Real u = distance(z, t.anchor, t.positive, o) - distance(z, t.anchor, t.negative, o);
    const Real l = o.soft ? std::log1p(std::exp(u)) : std::max(Real(0), u + o.margin);
    total += l;
    active += l > 0;
  }
  if (std::string(o.reduction) == "mean_nonzero") return active ? static_cast<double>(total / active) : 0.0;
  return static_cast<double>(total / triplets.size());
}

// Largest |numeric - analytic| over every entry of z, checking each.
double check_gradient(Triplet& loss, const contra::Embeddings& emb, const contra::Pairs& pairs) {
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

TEST_CASE("triplet: schema declares its parameters and refuses squared cosine", "[plugins][triplet]") {
  contra::Schema s = Triplet::schema();
  CHECK_NOTHROW(s.check_well_formed());
  contra::Params p = s.bind({});
  CHECK(p.get<double>("margin") == 0.2);
  CHECK(p.get<std::string>("distance") == "euclidean");
  CHECK(p.get<bool>("squared") == false);
  CHECK(p.get<bool>("soft_margin") == false);
  CHECK(p.get<std::string>("reduction") == "mean");
  CHECK(p.get<bool>("normalize") == false);
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"margin", -0.1}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"distance", std::string("manhattan")}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"reduction", std::string("sum")}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
  CHECK_THROWS_WITH(Triplet(s.bind({{"distance", std::string("cosine")}, {"squared", true}})),
                    Catch::Matchers::Contains(
                        "squared = true applies to distance = \"euclidean\", but distance is \"cosine\""));
}

TEST_CASE("triplet: values and metrics match cases worked by hand", "[plugins][triplet]") {
  // N = 2 samples, V = 2 views, D = 2. Rows: 0 = (view 0, sample 0) = (0, 0), 1 = (view 0, sample 1)
  // = (1, 0), 2 = (view 1, sample 0) = (0, 0.5), 3 = (view 1, sample 1) = (2, 0). Pairs::all gives
  // 4 anchors x 1 positive x 2 negatives = 8 triplets. Euclidean, m = 0.2:
  //   (0,2,1): 0.5 - 1 + 0.2 < 0             (0,2,3): 0.5 - 2 + 0.2 < 0
  //   (1,3,0): 1 - 1 + 0.2 = 0.2             (1,3,2): 1 - sqrt(1.25) + 0.2 = 0.0819660113
  //   (2,0,1): 0.5 - 1.1180339887 + 0.2 < 0  (2,0,3): 0.5 - sqrt(4.25) + 0.2 < 0
  //   (3,1,0): 1 - 2 + 0.2 < 0               (3,1,2): 1 - 2.0615528128 + 0.2 < 0
  //   sum = 0.2819660113: mean = 0.0352457514, mean_nonzero = 0.1409830056, active_triplets = 2/8.
  //   pos_dist = (0.5 + 0.5 + 1 + 1 + 0.5 + 0.5 + 1 + 1) / 8 = 0.75,
  //   neg_dist = (1 + 2 + 1 + 1.1180339887 + 1.1180339887 + 2.0615528128 + 2 + 2.0615528128) / 8 = 1.5448967004.
  // Squared: (1,3,0): 1 - 1 + 0.2 = 0.2, (1,3,2): 1 - 1.25 + 0.2 < 0, all others < 0: mean = 0.025.
  // Soft margin, log(1 + e^{dp - dn}) over the 8: 0.4740769842 + 0.2014132780 + 0.6931471806 +
  //   0.6358706790 + 0.4311348579 + 0.1904633410 + 0.3132616875 + 0.2970764915 = 3.2364444997,
  //   mean = 0.4045555625, every triplet active.
  float data[] = {0, 0, 1, 0, 0, 0.5f, 2, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  contra::LossResult out;

  Triplet mean = make({});
  mean.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.0352457514).margin(1e-6));
  CHECK(metric(out, "active_triplets") == 0.25);
  CHECK(metric(out, "pos_dist") == Approx(0.75).margin(1e-6));
  CHECK(metric(out, "neg_dist") == Approx(1.5448967004).margin(1e-6));
  CHECK(metric(out, "triplets") == 8);
  Options o;
  o.reduction = "mean_nonzero";
  Triplet nonzero = make(o);
  nonzero.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.1409830056).margin(1e-6));
  o = {};
  o.squared = true;
  Triplet squared = make(o);
  squared.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.025).margin(1e-6));
  CHECK(metric(out, "active_triplets") == 0.125);
  o = {};
  o.soft = true;
  Triplet soft = make(o);
  soft.compute(emb, all_pairs(), out);
  CHECK(out.value == Approx(0.4045555625).margin(1e-6));
  CHECK(metric(out, "active_triplets") == 1.0);

  // Cosine distance 1 - cos on unit vectors at 0, 90, 60 and 180 degrees (rows 0..3, same samples):
  //   (0,2,1): 0.5 - 1 + 0.2 < 0          (0,2,3): 0.5 - 2 + 0.2 < 0
  //   (1,3,0): 1 - 1 + 0.2 = 0.2          (1,3,2): 1 - (1 - cos 30) + 0.2 = 1.0660254038
  //   (2,0,1): 0.5 - 0.1339745962 + 0.2 = 0.5660254038      (2,0,3): 0.5 - 1.5 + 0.2 < 0
  //   (3,1,0): 1 - 2 + 0.2 < 0            (3,1,2): 1 - 1.5 + 0.2 < 0
  //   sum = 1.8320508076, mean = 0.2290063509, active 3/8.
  const float h = std::sqrt(3.0f) / 2;
  float angles[] = {1, 0, 0, 1, 0.5f, h, -1, 0};
  contra::Embeddings unit{contra::Tensor::wrap(angles, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  o = {};
  o.distance = "cosine";
  Triplet cosine = make(o);
  cosine.compute(unit, all_pairs(), out);
  CHECK(out.value == Approx(0.2290063509).margin(1e-6));
  CHECK(metric(out, "active_triplets") == 0.375);
}

TEST_CASE("triplet: explicit triplets, with a gradient worked by hand", "[plugins][triplet]") {
  // Rows of the case above; triplets (1,3,0) and (0,2,1). Only (1,3,0) is active, l = 0.2; mean
  // over 2 = 0.1. Its gradient: dl/dz1 = (z1 - z3)/d13 - (z1 - z0)/d10 = (-1, 0) - (1, 0) = (-2, 0),
  // dl/dz3 = -(z1 - z3)/d13 = (1, 0), dl/dz0 = (z1 - z0)/d10 = (1, 0); halved by the mean.
  float data[] = {0, 0, 1, 0, 0, 0.5f, 2, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  contra::Pairs pairs;
  pairs.triplets = {{1, 3, 0}, {0, 2, 1}};
  Triplet loss = make({});
  contra::LossResult out;
  loss.compute(emb, pairs, out);
  CHECK(out.value == Approx(0.1).margin(1e-6));
  const float* g = out.grad.data<float>();
  CHECK(g[0] == Approx(0.5).margin(1e-6));
  CHECK(g[1] == Approx(0.0).margin(1e-6));
  CHECK(g[2] == Approx(-1.0).margin(1e-6));
  CHECK(g[4] == Approx(0.0).margin(1e-6));
  CHECK(g[6] == Approx(0.5).margin(1e-6));
  CHECK(metric(out, "active_triplets") == 0.5);
  CHECK(metric(out, "triplets") == 2);
}

TEST_CASE("triplet: all triplets equal the same triplets listed, and the definition", "[plugins][triplet]") {
  const std::int64_t n = 4, v = 3, d = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 51);
  contra::Pairs listed = explicit_all(sample);
  std::vector<Options> variants(6);
  variants[0].margin = 1.0;
  variants[1].squared = true;
  variants[1].margin = 2.0;
  variants[2].distance = "cosine";
  variants[2].margin = 0.5;
  variants[3].soft = true;
  variants[4].normalize = true;
  variants[4].margin = 0.5;
  variants[5].reduction = "mean_nonzero";
  for (const Options& o : variants) {
    INFO("distance " << o.distance << ", squared " << o.squared << ", soft " << o.soft << ", normalize "
                     << o.normalize << ", reduction " << o.reduction);
    Triplet loss = make(o);
    contra::LossResult a, b;
    loss.compute({z, &sample, nullptr, v}, all_pairs(), a);
    loss.compute({z, &sample, nullptr, v}, listed, b);
    CHECK(a.value == Approx(reference(z, listed.triplets, o)).epsilon(1e-5));
    CHECK(b.value == Approx(a.value).epsilon(1e-5));
    CHECK(metric(a, "triplets") == static_cast<double>(listed.triplets.size()));
    CHECK(metric(a, "active_triplets") == Approx(metric(b, "active_triplets")));
    for (std::int64_t k = 0; k < z.numel(); ++k)
      CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-5));
  }
}

TEST_CASE("triplet: gradient matches central finite differences", "[plugins][triplet]") {
  auto [variant, listed] = GENERATE(std::make_tuple(0, false), std::make_tuple(0, true), std::make_tuple(1, false),
                                    std::make_tuple(2, false), std::make_tuple(2, true), std::make_tuple(3, false),
                                    std::make_tuple(4, false), std::make_tuple(5, true));
  Options o;
  if (variant == 0) o.margin = 1.0;
  if (variant == 1) o.squared = true, o.margin = 2.0;
  if (variant == 2) o.distance = "cosine", o.margin = 0.5;
  if (variant == 3) o.soft = true;
  if (variant == 4) o.normalize = true, o.margin = 0.6;
  if (variant == 5) o.reduction = "mean_nonzero", o.margin = 1.0;
  const std::int64_t n = 3, v = 2, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 61);
  contra::Pairs pairs = listed ? explicit_all(sample) : all_pairs();
  // Away from the hinge: no triplet within 1e-2 of d(a,p) - d(a,n) + m = 0.
  INFO("variant " << variant << ", explicit: " << listed);
  for (const auto& t : explicit_all(sample).triplets)
    if (!o.soft) REQUIRE(std::abs(double(distance(z, t.anchor, t.positive, o) - distance(z, t.anchor, t.negative, o)) + o.margin) > 1e-2);
  Triplet loss = make(o);
  INFO("variant " << variant << ", explicit: " << listed);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, v}, pairs, out);
  CHECK(metric(out, "active_triplets") > 0.0);
  const double worst = check_gradient(loss, {z, &sample, nullptr, v}, pairs);
  INFO("largest |numeric - analytic| = " << worst);
  CHECK(worst < 1e-3);
}

TEST_CASE("triplet: chunk = 1 gives the value and gradient of one block", "[plugins][triplet]") {
  const std::int64_t n = 5, v = 3, d = 4;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor z = random_matrix(n * v, d, 3);
  for (const char* dist : {"euclidean", "cosine"}) {
    Options o;
    o.distance = dist;
    o.margin = 0.5;
    Options o1 = o, o4 = o;
    o1.chunk = 1;
    o4.chunk = 4;
    Triplet one = make(o1), all = make(o), four = make(o4);
    contra::LossResult a, b, c;
    one.compute({z, &sample, nullptr, v}, all_pairs(), a);
    all.compute({z, &sample, nullptr, v}, all_pairs(), b);
    four.compute({z, &sample, nullptr, v}, all_pairs(), c);
    CHECK(a.value == Approx(b.value).epsilon(1e-6));
    CHECK(c.value == Approx(b.value).epsilon(1e-6));
    for (std::int64_t k = 0; k < z.numel(); ++k) {
      CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
      CHECK(c.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-6));
    }
  }
}

TEST_CASE("triplet: mean_nonzero is 0 when no triplet has a loss", "[plugins][triplet]") {
  // Views of a sample coincide and samples are far apart: every d(a,p) - d(a,n) + m < 0.
  float data[] = {0, 0, 10, 0, 0, 0, 10, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  Options o;
  o.reduction = "mean_nonzero";
  Triplet loss = make(o);
  contra::LossResult out;
  loss.compute(emb, all_pairs(), out);
  CHECK(out.value == 0.0);
  CHECK(metric(out, "active_triplets") == 0.0);
  for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(out.grad.data<float>()[k] == 0.0f);
}

TEST_CASE("triplet: coincident anchor and positive give a finite gradient", "[plugins][triplet]") {
  // d(a,p) = 0 for both samples; negatives at distance 0.1 < m = 0.2, so all 8 triplets are active
  // with loss 0.1 (mean 0.1) and the gradient only comes from the negatives (none through d = 0).
  float data[] = {0, 0, 0.1f, 0, 0, 0, 0.1f, 0};
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings emb{contra::Tensor::wrap(data, {4, 2}, contra::DType::f32), &sample, nullptr, 2};
  for (bool listed : {false, true}) {
    Triplet loss = make({});
    contra::LossResult out;
    loss.compute(emb, listed ? explicit_all(sample) : all_pairs(), out);
    CHECK(out.value == Approx(0.1).margin(1e-6));
    for (std::int64_t k = 0; k < out.grad.numel(); ++k) CHECK(std::isfinite(out.grad.data<float>()[k]));
    // Row 0 is the anchor of (0,2,1) and (0,2,3): -(z0 - z_n)/0.1 = (1, 0) each; the negative of
    // (1,3,0) and (3,1,0): -(z0 - z_a)/0.1 = (1, 0) each; the positive of (2,0,1) and (2,0,3) at
    // d = 0: nothing. (4, 0) over 8 triplets = (0.5, 0).
    CHECK(out.grad.data<float>()[0] == Approx(0.5).margin(1e-5));
    CHECK(out.grad.data<float>()[1] == Approx(0.0).margin(1e-5));
  }
}

TEST_CASE("triplet: close rows far apart from the rest keep their distances", "[plugins][triplet]") {
  // Each sample's views lie within ~0.05 of a centre at distance ~1000 from the other centres, and
  // the margin is 1e3-scale: |x|^2 + |y|^2 - 2 x.y of two views cancels completely in float32.
  // Close pairs are recomputed from their difference, so all triplets agree with the listed ones
  // (computed from differences throughout).
  const std::int64_t n = 4, v = 2, d = 3;
  std::vector<std::int64_t> sample = samples(n, v);
  contra::Tensor centre = random_matrix(n, d, 12);
  contra::Tensor noise = random_matrix(n * v, d, 13);
  contra::Tensor z = contra::Tensor::empty({n * v, d}, contra::DType::f32);
  for (std::int64_t r = 0; r < n * v; ++r)
    for (std::int64_t k = 0; k < d; ++k)
      z.data<float>()[r * d + k] = 1000.0f * centre.data<float>()[(r % n) * d + k] + 0.05f * noise.data<float>()[r * d + k];
  contra::Pairs listed = explicit_all(sample);
  Options o;
  o.margin = 5000.0;
  Triplet loss = make(o);
  contra::LossResult a, b;
  loss.compute({z, &sample, nullptr, v}, all_pairs(), a);
  loss.compute({z, &sample, nullptr, v}, listed, b);
  CHECK(metric(a, "pos_dist") == Approx(metric(b, "pos_dist")).epsilon(1e-5));
  CHECK(a.value == Approx(reference(z, listed.triplets, o)).epsilon(1e-6));
  for (std::int64_t k = 0; k < z.numel(); ++k)
    CHECK(a.grad.data<float>()[k] == Approx(b.grad.data<float>()[k]).margin(1e-5));
}

TEST_CASE("triplet: reuses its buffers across steps of one shape", "[plugins][triplet]") {
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Tensor z = random_matrix(8, 4, 1);
  Options o;
  o.chunk = 3;
  Triplet loss = make(o);
  contra::LossResult out;
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  const void* first = out.grad.raw();
  loss.compute({z, &sample, nullptr, 2}, all_pairs(), out);
  CHECK(out.grad.raw() == first);
  CHECK(out.metrics.size() == 4);
}

TEST_CASE("triplet: refuses pairs without triplets with a usage error", "[plugins][triplet]") {
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Tensor z = random_matrix(4, 3, 2);
  Triplet loss = make({});
  contra::LossResult out;
  contra::Pairs pairs;
  pairs.positive.push_back({0, 2});
  pairs.negative.push_back({0, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, pairs, out),
                    "triplet: Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::triplets (a triplet miner)");
  contra::Pairs bad;
  bad.triplets.push_back({0, 2, 7});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, bad, out),
                    "triplet: triplet (0, 2, 7) is outside the 4 rows");
  contra::Pairs both = all_pairs();
  both.triplets.push_back({0, 2, 1});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, both, out),
                    "triplet: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the "
                    "other");
  contra::Pairs memory;
  memory.triplets.push_back({0, 2, 1});
  memory.memory_negative.push_back({0, 0});
  CHECK_THROWS_WITH(loss.compute({z, &sample, nullptr, 2}, memory, out),
                    "triplet: Pairs::memory_negative is not supported; it takes Pairs::all (the all_pairs miner), "
                    "or Pairs::triplets (a triplet miner)");
  std::vector<std::int64_t> one_view{0, 1, 2, 3};
  CHECK_THROWS_WITH(loss.compute({z, &one_view, nullptr, 1}, all_pairs(), out),
                    "triplet: the batch of 4 rows has no (anchor, positive, negative) triplet; it needs at least "
                    "2 views per sample and 2 samples");
}

TEST_CASE("triplet: a batch in which the miner found no triplet gives zero loss and gradient", "[plugins][triplet]") {
  contra::plugins::Triplet loss(contra::plugins::Triplet::schema().bind({}));
  contra::Tensor z = contra::Tensor::empty({4, 2}, contra::DType::f32);
  for (int i = 0; i < 8; ++i) z.data<float>()[i] = static_cast<float>(i);
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Pairs none;
  contra::LossResult out;
  loss.compute(contra::Embeddings{z, &sample, nullptr, 2}, none, out);
  CHECK(out.value == 0.0);
  REQUIRE(out.grad.shape() == z.shape());
  for (int i = 0; i < 8; ++i) CHECK(out.grad.data<float>()[i] == 0.0f);
}
