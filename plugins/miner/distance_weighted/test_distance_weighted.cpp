#include "distance_weighted.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::DistanceWeighted;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using Triple = std::tuple<int, int, int>;

DistanceWeighted make(Params p = {}) { return DistanceWeighted(DistanceWeighted::schema().bind(p)); }

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

std::vector<Triple> mine(DistanceWeighted& miner, const contra::Embeddings& z) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.positive.empty());
  CHECK(pairs.negative.empty());
  std::vector<Triple> t;
  for (const auto& x : pairs.triplets) t.emplace_back(x.anchor, x.positive, x.negative);
  return t;
}

// Euclidean distance of rows a and b after L2 normalisation, in double.
double sphere_distance(const contra::Tensor& x, int a, int b) {
  const std::int64_t d = x.dim(1);
  const float* p = x.data<float>();
  double ab = 0, aa = 0, bb = 0;
  for (std::int64_t k = 0; k < d; ++k) {
    ab += static_cast<double>(p[a * d + k]) * p[b * d + k];
    aa += static_cast<double>(p[a * d + k]) * p[a * d + k];
    bb += static_cast<double>(p[b * d + k]) * p[b * d + k];
  }
  return std::sqrt(std::max(2.0 - 2.0 * ab / std::sqrt(aa * bb), 0.0));
}

// q(d)⁻¹ of the paper, d clipped below at `cutoff`, written directly.
double inv_q(double d, double dim, double cutoff) {
  d = std::max(d, cutoff);
  return 1.0 / (std::pow(d, dim - 2.0) * std::pow(1.0 - d * d / 4.0, (dim - 3.0) / 2.0));
}

// Samples 0..k-1, `views` views each, all views of a sample at one point of the unit circle (in
// the first two of `dim` coordinates), sample i at chord distance chords[i] from sample 0's point.
contra::Tensor circle(const std::vector<double>& chords, std::int64_t dim, std::int64_t views = 2) {
  const auto n = static_cast<std::int64_t>(chords.size());
  contra::Tensor t = contra::Tensor::zeros({views * n, dim}, contra::DType::f32);
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) {
      const double angle = 2.0 * std::asin(chords[i] / 2.0);
      t.data<float>()[(v * n + i) * dim] = static_cast<float>(std::cos(angle));
      t.data<float>()[(v * n + i) * dim + 1] = static_cast<float>(std::sin(angle));
    }
  return t;
}

}  // namespace

TEST_CASE("distance_weighted: schema is well formed with its parameters and defaults",
          "[plugins][distance_weighted]") {
  contra::Schema s = DistanceWeighted::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "distance_weighted");
  contra::Params p = s.bind({});
  CHECK(p.get<double>("cutoff") == 0.5);
  CHECK(p.get<double>("nonzero_loss_cutoff") == 1.4);
  CHECK(p.get<std::int64_t>("negatives_per_anchor") == 1);
  CHECK(p.get<std::int64_t>("seed") == 0);
  CHECK_FALSE(p.get<bool>("use_labels"));
  CHECK_THROWS_AS(s.bind({{"negatives_per_anchor", std::int64_t(0)}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"nonzero_loss_cutoff", 2.5}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"distance", std::string("cosine")}}), contra::ConfigError);
}

TEST_CASE("distance_weighted: the same seed and call count give the same triplets",
          "[plugins][distance_weighted]") {
  std::vector<std::int64_t> sample = samples(40, 2);
  contra::Embeddings z{random_matrix(80, 3, 4), &sample, nullptr, 2};
  DistanceWeighted a = make({{"seed", std::int64_t(7)}});
  DistanceWeighted b = make({{"seed", std::int64_t(7)}});
  DistanceWeighted c = make({{"seed", std::int64_t(8)}});
  const std::vector<Triple> a1 = mine(a, z), b1 = mine(b, z), c1 = mine(c, z);
  CHECK(a1.size() == 80u);  // one triplet per (anchor, positive); every anchor has a near negative
  CHECK(a1 == b1);
  CHECK(a1 != c1);
  // The second call draws from another stream (the call counter is the Rng's epoch) ...
  const std::vector<Triple> a2 = mine(a, z);
  CHECK(a2 != a1);
  // ... and is the same for every miner on its second call.
  CHECK(mine(b, z) == a2);
}

TEST_CASE("distance_weighted: every sampled negative is valid and within the cutoffs",
          "[plugins][distance_weighted]") {
  // 3 views of 120 samples (more rows than one block), in 3-D so that distances spread over
  // [0, 2]; labels in 6 classes.
  const int n = 120, v = 3, m = n * v;
  std::vector<std::int64_t> sample = samples(n, v);
  std::vector<std::int64_t> label(m);
  for (int r = 0; r < m; ++r) label[r] = sample[r] % 6;
  contra::Tensor x = random_matrix(m, 3, 12);
  for (bool use_labels : {false, true})
    for (double nlc : {1.4, 0.9}) {
      CAPTURE(use_labels, nlc);
      const std::vector<std::int64_t>& g = use_labels ? label : sample;
      DistanceWeighted miner = make({{"use_labels", use_labels}, {"nonzero_loss_cutoff", nlc},
                                     {"negatives_per_anchor", std::int64_t(3)}});
      contra::Embeddings z{x, &sample, &label, v};
      const std::vector<Triple> got = mine(miner, z);
      // Expected count: 3 per (anchor, positive) pair whose anchor has a negative nearer than nlc.
      std::size_t want = 0;
      int borderline = 0;
      for (int a = 0; a < m; ++a) {
        int positives = 0, eligible = 0;
        for (int j = 0; j < m; ++j) {
          if (j == a) continue;
          if (g[j] == g[a]) ++positives;
          else {
            const double d = sphere_distance(x, a, j);
            eligible += d < nlc;
            borderline += std::abs(d - nlc) < 1e-5;
          }
        }
        if (eligible > 0) want += 3u * static_cast<std::size_t>(positives);
      }
      CHECK(borderline == 0);
      CHECK(got.size() == want);
      CHECK(std::is_sorted(got.begin(), got.end(), [](const Triple& s, const Triple& t) {
        return std::tie(std::get<0>(s), std::get<1>(s)) < std::tie(std::get<0>(t), std::get<1>(t));
      }));
      int bad = 0;
      for (auto [a, p, neg] : got) {
        bad += a == p || g[a] != g[p] || g[a] == g[neg] || !(sphere_distance(x, a, neg) < nlc);
      }
      CHECK(bad == 0);
    }
}

TEST_CASE("distance_weighted: frequencies follow min(lambda, 1/q(d)) on a constructed case",
          "[plugins][distance_weighted]") {
  // Sample 0 (rows 0 and k) at angle 0; samples 1..3 at the given chord distances from it, both
  // views at one point; the last sample beyond nonzero_loss_cutoff = 1.4. In D = 4 the first
  // distance is below cutoff = 0.5 and weighs as 0.5 does.
  struct Case {
    std::int64_t dim;
    std::vector<double> chords;  // chords[0] = 0: sample 0
  };
  for (const Case& c : {Case{4, {0.0, 0.3, 0.6, 1.0, 1.6}}, Case{16, {0.0, 0.4, 0.55, 0.6, 1.5}},
                        Case{2, {0.0, 0.2, 1.0, 1.3, 1.45}}, Case{3, {0.0, 0.7, 1.1, 1.35, 1.9}}}) {
    CAPTURE(c.dim);
    const auto n = static_cast<std::int64_t>(c.chords.size());
    std::vector<std::int64_t> sample = samples(n, 2);
    contra::Embeddings z{circle(c.chords, c.dim), &sample, nullptr, 2};
    const std::int64_t draws = 40000;
    DistanceWeighted miner = make({{"negatives_per_anchor", draws}, {"seed", std::int64_t(3)}});
    std::vector<double> count(static_cast<std::size_t>(n), 0.0);
    for (auto [a, p, neg] : mine(miner, z))
      if (a == 0) {
        CHECK(p == n);
        count[static_cast<std::size_t>(sample[neg])] += 1;
      }
    // Expected: ∝ 1/q(max(d, .5)) for samples 1..n-2 (two rows each), 0 for sample 0 and the far one.
    std::vector<double> w(static_cast<std::size_t>(n), 0.0);
    double total = 0;
    for (std::int64_t i = 1; i + 1 < n; ++i) total += w[i] = inv_q(c.chords[i], static_cast<double>(c.dim), 0.5);
    CHECK(count[0] == 0);
    CHECK(count[n - 1] == 0);
    for (std::int64_t i = 1; i + 1 < n; ++i) {
      const double p = w[i] / total, f = count[i] / static_cast<double>(draws);
      const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(draws));
      CAPTURE(i, p, f);
      CHECK(std::abs(f - p) < 5 * sigma + 1e-9);
    }
  }
}

TEST_CASE("distance_weighted: hand-worked weights in D = 4", "[plugins][distance_weighted]") {
  // 1/q(d) = d^-2 (1 - d²/4)^-1/2: d = .5 -> 4 / √.9375 = 4.1312; d = 1 -> 1 / √.75 = 1.1547.
  CHECK(inv_q(0.3, 4, 0.5) == Approx(4.1312).epsilon(1e-4));
  CHECK(inv_q(1.0, 4, 0.5) == Approx(1.1547).epsilon(1e-4));
  // Two negatives at .3 (clipped to .5) and 1.0: P(near) = 4.1312 / 5.2859 = .7816.
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Embeddings z{circle({0.0, 0.3, 1.0}, 4), &sample, nullptr, 2};
  DistanceWeighted miner = make({{"negatives_per_anchor", std::int64_t(20000)}});
  double near = 0, all = 0;
  for (auto [a, p, neg] : mine(miner, z))
    if (a == 0) {
      all += 1;
      near += sample[neg] == 1;
    }
  CHECK(all == 20000);
  CHECK(near / all == Approx(0.7816).margin(5 * std::sqrt(0.7816 * 0.2184 / 20000)));
}

TEST_CASE("distance_weighted: anchors with every negative beyond nonzero_loss_cutoff are skipped",
          "[plugins][distance_weighted]") {
  // Two samples at opposite points of the circle (d = 1.93 for chord 2·sin 75°).
  std::vector<std::int64_t> sample = samples(2, 2);
  const double chord = 2.0 * std::sin(75.0 * 3.14159265358979323846 / 180.0);
  contra::Embeddings z{circle({0.0, chord}, 3), &sample, nullptr, 2};
  DistanceWeighted miner = make();
  CHECK(mine(miner, z).empty());
  DistanceWeighted wide = make({{"nonzero_loss_cutoff", 2.0}});
  const std::vector<Triple> got = mine(wide, z);
  REQUIRE(got.size() == 4u);
  for (int a = 0; a < 4; ++a) {
    CHECK(std::get<0>(got[a]) == a);
    CHECK(std::get<1>(got[a]) == (a + 2) % 4);
    CHECK(sample[std::get<2>(got[a])] != sample[a]);
  }
  // One view per sample without labels: no positives, nothing.
  std::vector<std::int64_t> single = samples(2, 1);
  contra::Embeddings z1{circle({0.0, chord}, 3, 1), &single, nullptr, 1};
  CHECK(mine(wide, z1).empty());
}

TEST_CASE("distance_weighted: use_labels", "[plugins][distance_weighted]") {
  // One view of six samples on the circle; classes 0 0 1 1 2 2. Row 1 is a positive of row 0.
  std::vector<std::int64_t> sample = samples(6, 1);
  std::vector<std::int64_t> label = {0, 0, 1, 1, 2, 2};
  contra::Embeddings z{circle({0.0, 0.1, 0.5, 0.7, 0.9, 1.1}, 4, 1), &sample, &label, 1};
  DistanceWeighted miner = make({{"use_labels", true}, {"negatives_per_anchor", std::int64_t(50)}});
  const std::vector<Triple> got = mine(miner, z);
  CHECK(got.size() == 6u * 50u);
  for (auto [a, p, neg] : got) {
    CHECK(label[a] == label[p]);
    CHECK(label[a] != label[neg]);
  }
  DistanceWeighted no_labels = make({{"use_labels", true}});
  contra::Embeddings unlabelled{z.z, &sample, nullptr, 1};
  contra::Pairs pairs;
  CHECK_THROWS_WITH(no_labels.mine(unlabelled, pairs),
                    "distance_weighted: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}
