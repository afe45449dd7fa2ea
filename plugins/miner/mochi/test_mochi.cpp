// mochi: the hardest negatives and the mixtures on a hand-made batch, the
// lists as all_pairs would select them (with no mixtures, info_nce gives the
// loss of Pairs::all), draws keyed by the step's context (the same at any
// thread count, another at another step), negatives from a memory, and
// info_nce over synthetic negatives against a value worked by hand and
// central differences.
#include "mochi.hpp"

#include "../../loss/info_nce/info_nce.hpp"

#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

using contra::plugins::InfoNce;
using contra::plugins::Mochi;
namespace ct = contra::testing;

namespace {

Mochi make(std::int64_t hardest, std::int64_t mixes, std::int64_t query_mixes) {
  return Mochi(Mochi::schema().bind({{"hardest", hardest}, {"mixes", mixes}, {"query_mixes", query_mixes}}));
}

double dot(const float* a, const float* b, std::int64_t d) {
  double s = 0;
  for (std::int64_t k = 0; k < d; ++k) s += static_cast<double>(a[k]) * b[k];
  return s;
}

// Three samples × two views on the unit circle (D = 2): sample 0 at 0° and
// 10°, sample 1 at 30° and 40°, sample 2 at 180° and 190°.
ct::EmbeddingBatch circle() {
  ct::EmbeddingBatch b = ct::random_embeddings(3, 2, 2, 1);
  const double degrees[6] = {0, 30, 180, 10, 40, 190};  // row v·3 + i
  float* z = b.z.data<float>();
  for (int r = 0; r < 6; ++r) {
    z[2 * r] = static_cast<float>(std::cos(degrees[r] * M_PI / 180));
    z[2 * r + 1] = static_cast<float>(std::sin(degrees[r] * M_PI / 180));
  }
  return b;
}

}  // namespace

TEST_CASE("mochi: schema is well formed", "[plugins][mochi]") {
  const auto r = ct::check_schema<Mochi>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("mochi: the hardest negative and the mixtures, by hand", "[plugins][mochi]") {
  const ct::EmbeddingBatch b = circle();
  Mochi m = make(1, 2, 1);
  contra::Pairs p;
  m.mine(b.embeddings(), p);
  // Every anchor: the 4 rows of the other two samples, as all_pairs selects them.
  REQUIRE(p.negative.size() == 6 * 4);
  CHECK(p.negative[0] == std::pair<std::int32_t, std::int32_t>{0, 1});
  CHECK(p.negative[3] == std::pair<std::int32_t, std::int32_t>{0, 5});
  REQUIRE(p.synthetic.shape() == contra::Shape{6 * 3, 2});
  REQUIRE(p.synthetic_negative.size() == 18);
  REQUIRE(p.synthetic_origin.size() == 18);
  // Row 0 (0°): its hardest negative is row 1 (30°). Mixing it with itself
  // gives it back; the query mix lies between 0° and 30°, nearer 30°.
  const float* s = p.synthetic.data<float>();
  const float* z = b.z.data<float>();
  for (int k = 0; k < 2; ++k) {
    const auto& o = p.synthetic_origin[static_cast<std::size_t>(k)];
    CHECK(o.first == 1);
    CHECK(o.second == 1);
    CHECK(o.first_kind == contra::SyntheticOrigin::Kind::row);
    CHECK(s[2 * k] == Approx(z[2]).margin(1e-6));
    CHECK(s[2 * k + 1] == Approx(z[3]).margin(1e-6));
  }
  const auto& q = p.synthetic_origin[2];
  CHECK(q.first == 0);
  CHECK(q.second == 1);
  CHECK(q.weight >= 0.0f);
  CHECK(q.weight <= 0.5f);
  const double angle = std::atan2(s[5], s[4]) * 180 / M_PI;
  CHECK(angle >= 15.0 - 1e-4);  // β ≤ 0.5: at least halfway to the negative
  CHECK(angle <= 30.0 + 1e-4);
  CHECK(std::hypot(s[4], s[5]) == Approx(1.0).epsilon(1e-6));
  // Row 2 (180°): of rows 0 (0°), 1 (30°), 3 (10°) and 4 (40°), row 4 is the
  // nearest (140° away): its hardest negative.
  CHECK(p.synthetic_origin[2 * 3].first == 4);
  CHECK(p.synthetic_negative[5] == std::pair<std::int32_t, std::int32_t>{1, 5});
}

TEST_CASE("mochi: without mixtures, info_nce gives the loss of Pairs::all", "[plugins][mochi]") {
  const ct::EmbeddingBatch b = ct::random_embeddings(8, 2, 6, 3);
  Mochi m = make(4, 0, 0);
  contra::Pairs mined, all;
  m.mine(b.embeddings(), mined);
  CHECK(!mined.synthetic.defined());
  all.all = true;
  InfoNce loss(InfoNce::schema().bind({{"temperature", 0.3}}));
  contra::LossResult a, c;
  loss.compute(b.embeddings(), mined, a);
  loss.compute(b.embeddings(), all, c);
  CHECK(a.value == Approx(c.value).epsilon(1e-6));
  for (std::int64_t i = 0; i < a.grad.numel(); ++i) CHECK(a.grad.data<float>()[i] == Approx(c.grad.data<float>()[i]).margin(1e-6));
}

TEST_CASE("mochi: the draws are the step's: the same at any thread count, others at another step",
          "[plugins][mochi]") {
  ct::EmbeddingBatch b = ct::random_embeddings(16, 2, 8, 5);
  Mochi m = make(8, 6, 2);
  auto synthetic = [&](int threads) {
    omp_set_num_threads(threads);
    contra::Pairs p;
    m.mine(b.embeddings(), p);
    return p.synthetic.clone();
  };
  const contra::Tensor one = synthetic(1), two = synthetic(2);
  CHECK(ct::check_deterministic([&] { return synthetic(2); }).ok);
  CHECK(std::memcmp(one.raw(), two.raw(), one.nbytes()) == 0);
  b.context.step = 7;
  const contra::Tensor later = synthetic(2);
  CHECK(std::memcmp(one.raw(), later.raw(), one.nbytes()) != 0);
  omp_set_num_threads(omp_get_num_procs());
  // Without the context there is nothing to draw from.
  contra::Embeddings bare = b.embeddings();
  bare.context = nullptr;
  contra::Pairs p;
  CHECK_THROWS_WITH(m.mine(bare, p), "mochi: needs the step's context (Embeddings::context) to draw its mixtures "
                                     "from; the runtime gives one at every step");
}

TEST_CASE("mochi: with a memory, the negatives are its keys of other samples", "[plugins][mochi]") {
  ct::EmbeddingBatch b = ct::random_embeddings(4, 2, 6, 9);
  // Key 0 holds row 1's sample; key 5 is an empty slot.
  b.with_memory(8, 4, {{0, 1}}, {5});
  Mochi m = make(3, 2, 1);
  contra::Pairs p;
  m.mine(b.embeddings(), p);
  CHECK(p.negative.empty());
  // Rows 1 and 5 (sample 1) lose key 0; every row loses key 5.
  CHECK(p.memory_negative.size() == 8 * 7 - 2);
  for (const auto& [a, k] : p.memory_negative) {
    CHECK(k != 5);
    if (a == 1 || a == 5) CHECK(k != 0);
  }
  for (const auto& o : p.synthetic_origin) CHECK(o.second_kind == contra::SyntheticOrigin::Kind::memory_key);
  REQUIRE_NOTHROW(contra::check_pair_indices("test", p, b.embeddings()));
}

TEST_CASE("info_nce: synthetic negatives enter each anchor's denominator as constants", "[plugins][mochi]") {
  // Two samples × two views, D = 2, one synthetic negative for row 0 only.
  ct::EmbeddingBatch b = circle();
  contra::Pairs p;
  for (std::int32_t a = 0; a < 6; ++a)
    for (std::int32_t n = 0; n < 6; ++n)
      if ((*b.embeddings().sample)[a] != (*b.embeddings().sample)[n]) p.negative.emplace_back(a, n);
  p.synthetic = contra::Tensor::empty({1, 2}, contra::DType::f32);
  p.synthetic.data<float>()[0] = static_cast<float>(std::cos(20 * M_PI / 180));
  p.synthetic.data<float>()[1] = static_cast<float>(std::sin(20 * M_PI / 180));
  p.synthetic_negative.emplace_back(0, 0);
  const double T = 0.5;
  InfoNce loss(InfoNce::schema().bind({{"temperature", T}}));
  contra::LossResult out;
  loss.compute(b.embeddings(), p, out);
  // By hand: mean over the 6 anchors of −log(e^{s_ip} / (e^{s_ip} + Σ_n e^{s_in})),
  // row 0's sum with the synthetic row at 20°.
  const float* z = b.z.data<float>();
  double expected = 0;
  for (int i = 0; i < 6; ++i) {
    const int positive = (i + 3) % 6;
    double denominator = std::exp(dot(z + 2 * i, z + 2 * positive, 2) / T);
    const double numerator = denominator;
    for (int n = 0; n < 6; ++n)
      if (n % 3 != i % 3) denominator += std::exp(dot(z + 2 * i, z + 2 * n, 2) / T);
    if (i == 0) denominator += std::exp(dot(z, p.synthetic.data<float>(), 2) / T);
    expected += -std::log(numerator / denominator);
  }
  CHECK(out.value == Approx(expected / 6).epsilon(1e-6));
  const ct::GradientReport g = ct::check_loss_gradient(loss, b.embeddings(), p);
  INFO(g.message);
  CHECK(g.ok);
  // The cuda build and the other losses refuse them, as their forms say.
  CHECK(contra::pairs_mismatch(contra::plugins::pairs_forms::all_or_listed_negatives(), make(4, 2, 1).mined_lists()) ==
        "Pairs::synthetic_negative is not supported; it takes Pairs::all (the all_pairs miner), or Pairs::negative "
        "and/or Pairs::memory_negative with optional Pairs::positive");
  CHECK(contra::pairs_mismatch(loss.pairs_forms(), make(4, 2, 1).mined_lists()).empty());
}
