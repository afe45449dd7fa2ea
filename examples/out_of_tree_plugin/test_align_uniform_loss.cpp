// Tests of align_uniform_loss: conformance checks from contra/testing.hpp, a value
// worked by hand, and finite differences.
#include "align_uniform_loss.hpp"

#include <contra/testing.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>  // Catch2 v3
#else
#include <catch2/catch.hpp>  // Catch2 v2
#endif

#include <cmath>
#include <string>

namespace ct = contra::testing;

namespace {
contra::Pairs all_pairs() {
  contra::Pairs p;
  p.all = true;
  return p;
}
double metric(const contra::LossResult& r, const std::string& name) {
  for (const auto& [k, v] : r.metrics)
    if (k == name) return v;
  return NAN;
}
}  // namespace

TEST_CASE("align_uniform_loss: schema is well formed and the defaults construct the loss") {
  auto r = ct::check_schema<AlignUniformLoss>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("align_uniform_loss: the built library loads as contra loads it") {
  auto r = ct::check_library(PLUGIN_FILE);
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("align_uniform_loss: two samples, identical views, at right angles") {
  // View 0 and view 1 of sample 0 are (1, 0), of sample 1 (0, 2) (the norm does
  // not matter): align = 0; each view has one pair at squared distance 2, so
  // uniform = log(exp(−2·2)) = −4.
  ct::EmbeddingBatch b = ct::random_embeddings(2, 2, 2, 1);
  const float rows[4][2] = {{1, 0}, {0, 2}, {1, 0}, {0, 2}};
  for (int r = 0; r < 4; ++r)
    for (int d = 0; d < 2; ++d) b.z.data<float>()[r * 2 + d] = rows[r][d];
  AlignUniformLoss loss(AlignUniformLoss::schema().bind({}));
  contra::LossResult out;
  loss.compute(b.embeddings(), all_pairs(), out);
  CHECK(std::abs(metric(out, "align")) < 1e-12);
  CHECK(std::abs(metric(out, "uniform") + 4.0) < 1e-9);
  CHECK(std::abs(out.value + 4.0) < 1e-9);
}

TEST_CASE("align_uniform_loss: value and gradient are finite, deterministic and match finite differences") {
  ct::EmbeddingBatch b = ct::random_embeddings(8, 2, 6, 3);
  for (double alpha : {2.0, 1.5}) {
    AlignUniformLoss loss(AlignUniformLoss::schema().bind({{"alpha", alpha}, {"t", 2.0}, {"uniform_weight", 0.5}}));
    auto r = ct::check_loss(loss, b.embeddings(), all_pairs());
    INFO("alpha " << alpha << ": " << r.message);
    CHECK(r.ok);
    auto g = ct::check_loss_gradient(loss, b.embeddings(), all_pairs());
    INFO("alpha " << alpha << ": " << g.message);
    CHECK(g.ok);
  }
}

TEST_CASE("align_uniform_loss: explicit positive pairs are used as given; negatives are refused") {
  ct::EmbeddingBatch b = ct::random_embeddings(4, 2, 5, 2);
  AlignUniformLoss loss(AlignUniformLoss::schema().bind({}));
  contra::Pairs listed;
  for (std::int32_t i = 0; i < 4; ++i) listed.positive.push_back({i, i + 4});
  contra::LossResult a, c;
  loss.compute(b.embeddings(), listed, a);
  loss.compute(b.embeddings(), all_pairs(), c);
  CHECK(std::abs(a.value - c.value) < 1e-9);  // the same pairs as Pairs::all with two views
  contra::Pairs negatives;
  negatives.negative.push_back({0, 1});
  CHECK_THROWS_AS(loss.compute(b.embeddings(), negatives, a), contra::UsageError);
}
