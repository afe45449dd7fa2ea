#include "train/mining_diagnostics.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace contra;
using namespace contra::runtime;

namespace {
// 4 samples × 2 views in 2-D, row r = v*4 + i; sample i's views point at
// angle i·90°, so cos between samples i and j is cos((i − j)·90°).
Tensor square() {
  Tensor z = Tensor::empty({8, 2}, DType::f32);
  for (int r = 0; r < 8; ++r) {
    double a = (r % 4) * M_PI / 2;
    z.data<float>()[2 * r] = static_cast<float>(std::cos(a));
    z.data<float>()[2 * r + 1] = static_cast<float>(std::sin(a));
  }
  return z;
}
const std::vector<std::int64_t> sample{0, 1, 2, 3, 0, 1, 2, 3};
const std::vector<std::int64_t> label{0, 0, 1, 1, 0, 0, 1, 1};
const std::vector<std::int64_t> ids{10, 11, 12, 13, 10, 11, 12, 13};
}  // namespace

TEST_CASE("mining diagnostics: all pairs, exact false-negative rate and similarities", "[runtime][diagnostics]") {
  Tensor z = square();
  Embeddings e{z, &sample, &label, 2, &ids};
  Pairs p;
  p.all = true;
  MiningDiagnostics d = diagnose_mining(e, p, 0);
  // Each anchor has 8 − 2 = 6 negatives, 2 of them (the other sample with its
  // label, both views) share its label: 2/6.
  CHECK(d.negatives_per_anchor == 6.0);
  CHECK(d.false_negative_rate == Approx(1.0 / 3.0));
  CHECK(d.negative_pairs == 48);
  CHECK(d.positive_pairs == 8);
  CHECK(d.pos_sim_mean == Approx(1.0));  // views coincide
  // Negatives of an anchor: cos 90° (×2 samples ×2 views) and cos 180° (×2): mean −1/3.
  CHECK(d.neg_sim_mean == Approx(-1.0 / 3.0).margin(0.02));  // from a sample of pairs
  CHECK(d.neg_sim_max == Approx(0.0).margin(1e-6));
}

TEST_CASE("mining diagnostics: explicit pairs and triplets, exact", "[runtime][diagnostics]") {
  Tensor z = square();
  Embeddings e{z, &sample, &label, 2, &ids};
  Pairs p;
  p.negative = {{0, 1}, {0, 2}, {1, 3}};   // labels: same, other, other
  p.triplets = {{2, 6, 3}};                // negative 3 shares anchor 2's label
  p.positive = {{0, 4}};
  MiningDiagnostics d = diagnose_mining(e, p, 0);
  CHECK(d.negative_pairs == 4);
  CHECK(d.positive_pairs == 2);
  CHECK(d.false_negative_rate == Approx(2.0 / 4.0));
  CHECK(d.negatives_per_anchor == Approx(4.0 / 3.0));  // anchors 0, 1, 2
  // cos(0,1) = 0, cos(0,2) = −1, cos(1,3) = −1, cos(2,3) = 0
  CHECK(d.neg_sim_mean == Approx(-0.5).margin(1e-6));
  CHECK(d.pos_sim_mean == Approx(1.0));
}

TEST_CASE("mining diagnostics: listed negatives without listed positives take the sample's other views",
          "[runtime][diagnostics]") {
  // What hardest_k and mochi hand info_nce: negatives only; the loss's
  // positives are the anchor's other views, and so are the figures'.
  Tensor z = square();
  Embeddings e{z, &sample, &label, 2, &ids};
  Pairs p;
  p.negative = {{0, 1}, {0, 2}, {5, 3}};
  MiningDiagnostics d = diagnose_mining(e, p, 0);
  CHECK(d.positive_pairs == 2);          // (0, 4) and (5, 1): anchors 0 and 5 only
  CHECK(d.pos_sim_mean == Approx(1.0));  // the views coincide
}

TEST_CASE("mining diagnostics: memory negatives count labels of keys and skip empty slots", "[runtime][diagnostics]") {
  Tensor z = square();
  Tensor keys = Tensor::empty({3, 2}, DType::f32);
  float k[6] = {1, 0, 0, 1, 1, 0};
  std::copy(k, k + 6, keys.data<float>());
  std::vector<std::int64_t> key_ids{20, 21, -1}, key_labels{0, 1, 0};
  MemoryView mem{keys, &key_ids, &key_labels};
  Embeddings e{z, &sample, &label, 2, &ids, Tensor(), &mem};
  Pairs p;
  p.memory_negative = {{0, 0}, {0, 1}, {2, 0}};  // anchor labels 0, 0, 1 vs key labels 0, 1, 0
  MiningDiagnostics d = diagnose_mining(e, p, 0);
  CHECK(d.false_negative_rate == Approx(1.0 / 3.0));
  CHECK(d.neg_sim_mean == Approx((1.0 + 0.0 + -1.0) / 3.0).margin(1e-6));

  Pairs all;
  all.all = true;
  MiningDiagnostics da = diagnose_mining(e, all, 0);
  // 6 batch negatives + 2 valid keys per anchor; same-label: 2 batch rows + 1 key
  // (labels 0 and 1 each appear once among valid keys).
  CHECK(da.negatives_per_anchor == 8.0);
  CHECK(da.false_negative_rate == Approx(3.0 / 8.0));
}

TEST_CASE("mining diagnostics: no labels, no false-negative rate", "[runtime][diagnostics]") {
  Tensor z = square();
  Embeddings e{z, &sample, nullptr, 2, &ids};
  Pairs p;
  p.all = true;
  MiningDiagnostics d = diagnose_mining(e, p, 3);
  CHECK(d.false_negative_rate == -1);
  std::vector<std::pair<std::string, double>> m;
  d.append_to(m);
  for (const auto& [k, v] : m) CHECK(k != "mining.false_negative_rate");
}
