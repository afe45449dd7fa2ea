#include "siglip.hpp"

#include "../test_two_tower.hpp"
#include "test_support.hpp"

#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::Siglip;
namespace tt = contra::test::two_tower;

namespace {

Siglip make(double init_scale = 10.0, double init_bias = -10.0, bool learn_scale = true, bool learn_bias = true,
            std::int64_t chunk = 1024) {
  return Siglip(Siglip::schema().bind({{"init_scale", init_scale},
                                       {"init_bias", init_bias},
                                       {"learn_scale", learn_scale},
                                       {"learn_bias", learn_bias},
                                       {"chunk", chunk}}));
}

// SigLIP's loss written as directly as possible, in long double:
// −(1/N) Σ_ij log σ(y_ij (s·C_ij + b)), y = +1 on the diagonal, −1 elsewhere.
double reference_loss(const tt::Batch& b, std::int64_t first, std::int64_t second, long double s, long double bias) {
  const std::int64_t n = b.samples();
  const std::vector<long double> c = tt::reference_cosines(b, first, second);
  long double total = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const long double y = i == j ? 1 : -1;
      total += std::log1p(std::exp(-y * (s * c[i * n + j] + bias)));
    }
  return static_cast<double>(total / n);
}

}  // namespace

TEST_CASE("siglip: schema declares its parameters and defaults", "[plugins][siglip]") {
  contra::Schema s = Siglip::schema();
  CHECK_NOTHROW(s.check_well_formed());
  const contra::Params p = s.bind({});
  CHECK(p.get<double>("init_scale") == 10.0);
  CHECK(p.get<double>("init_bias") == -10.0);
  CHECK(p.get<bool>("learn_scale"));
  CHECK(p.get<bool>("learn_bias"));
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"init_scale", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
  auto r = contra::testing::check_schema<Siglip>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("siglip: scale and bias are learnt f32 scalars logit_scale = log 10 and logit_bias = -10, without decay",
          "[plugins][siglip]") {
  Siglip loss = make();
  const std::vector<contra::Parameter*> params = loss.parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0]->name == "logit_scale");
  CHECK(params[1]->name == "logit_bias");
  for (const contra::Parameter* p : params) {
    CHECK(p->value.shape() == contra::Shape({1}));
    CHECK(p->value.dtype() == contra::DType::f32);
    CHECK(p->grad.shape() == contra::Shape({1}));
    CHECK(p->grad.dtype() == contra::DType::f32);
    CHECK(p->grad.data<float>()[0] == 0.0f);
    CHECK_FALSE(p->decay);
  }
  CHECK(params[0]->value.data<float>()[0] == static_cast<float>(std::log(10.0)));  // 2.3025851
  CHECK(params[1]->value.data<float>()[0] == -10.0f);

  Siglip fixed_scale = make(10.0, -10.0, false, true);
  REQUIRE(fixed_scale.parameters().size() == 1);
  CHECK(fixed_scale.parameters()[0]->name == "logit_bias");
  Siglip fixed_bias = make(10.0, -10.0, true, false);
  REQUIRE(fixed_bias.parameters().size() == 1);
  CHECK(fixed_bias.parameters()[0]->name == "logit_scale");
  CHECK(make(10.0, -10.0, false, false).parameters().empty());
}

TEST_CASE("siglip: value and metrics match a case worked by hand", "[plugins][siglip]") {
  // Unit rows: a0 = (1, 0), a1 = (0, 1) (images); b0 = (r, r), b1 = (0, -1) (texts).
  // Cosines C = [[r, 0], [r, -1]], r = 1/sqrt(2) = 0.7071067812. Each pair's
  // term is −log σ(y·x) = log(1 + e^{−y·x}), y = +1 on the diagonal.
  // With s = 1, b = 0 (logits x = C):
  //   (0,0) y = +1, x = r:   log(1 + e^-r) = 0.4008335265
  //   (0,1) y = -1, x = 0:   log 2         = 0.6931471806
  //   (1,0) y = -1, x = r:   log(1 + e^r)  = 1.1079403077
  //   (1,1) y = +1, x = -1:  log(1 + e^1)  = 1.3132616875
  //   loss = sum / N = 3.5151826023 / 2    = 1.7575913511
  // With the defaults s = 10, b = -10 (x = 10·C − 10 = [[10r − 10, −10], [10r − 10, −20]]):
  //   (0,0) log(1 + e^{10 − 10r}) = 2.9810065597;  (0,1) log(1 + e^-10) = 0.0000453989
  //   (1,0) log(1 + e^{10r − 10}) = 0.0520743715;  (1,1) log(1 + e^20)  = 20.0000000021
  //   loss = 23.0331263322 / 2 = 11.5165631661.
  // Retrieval as for clip: i2t = 1/2 (row 0 matches, row 1 does not), t2i = 0
  // (column 0 ties, column 1 misses); positive_similarity = (r − 1)/2 = -0.1464466094.
  const tt::Batch b = tt::from_rows(2, 2, {2, 0, 0, 3, 1, 1, 0, -2});
  contra::LossResult out;

  Siglip plain = make(1.0, 0.0);
  plain.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(out.value == Approx(1.7575913511).margin(1e-6));
  CHECK(tt::metric(out, "logit_scale") == Approx(1.0).margin(1e-6));
  CHECK(tt::metric(out, "logit_bias") == 0.0);
  CHECK(tt::metric(out, "i2t_accuracy") == 0.5);
  CHECK(tt::metric(out, "t2i_accuracy") == 0.0);
  CHECK(tt::metric(out, "positive_similarity") == Approx(-0.1464466094).margin(1e-6));
  REQUIRE(out.grad.shape() == contra::Shape({4, 2}));

  Siglip defaults = make();
  out.metrics.clear();
  defaults.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(out.value == Approx(11.5165631661).epsilon(1e-6));
  CHECK(tt::metric(out, "logit_scale") == Approx(10.0).epsilon(1e-6));
  CHECK(tt::metric(out, "logit_bias") == -10.0);
}

TEST_CASE("siglip: value matches the definition on random batches, whatever the chunk", "[plugins][siglip]") {
  auto [n, chunk] = GENERATE(std::make_tuple(1, 1024), std::make_tuple(3, 1024), std::make_tuple(7, 1),
                             std::make_tuple(7, 3), std::make_tuple(300, 64), std::make_tuple(300, 1024));
  const tt::Batch b = tt::random_batch(n, 16, 3 + static_cast<std::uint64_t>(n));
  for (auto [scale, bias] : {std::make_pair(10.0, -10.0), std::make_pair(2.0, 0.5)}) {
    Siglip loss = make(scale, bias, true, true, chunk);
    contra::LossResult out;
    loss.compute(b.embeddings(), tt::all_pairs(), out);
    INFO("n = " << n << ", chunk = " << chunk << ", s = " << scale << ", b = " << bias);
    CHECK(out.value ==
          Approx(reference_loss(b, 0, 1, tt::metric(out, "logit_scale"), bias)).epsilon(1e-5).margin(1e-6));
  }
}

TEST_CASE("siglip: gradients with respect to z, t and b match central finite differences", "[plugins][siglip]") {
  // f32 throughout: logits up to s + |b| in size carry ~1e-7·(s + |b|) of
  // rounding, over a step of 2e-3 up to ~1e-3 for s = 10, b = −10.
  // Observed: largest |numeric − analytic| up to 2e-4 there, 5e-5 at s = 2.
  auto [n, chunk, scale, bias, tolerance] =
      GENERATE(std::make_tuple(3, 1024, 2.0, 0.5, 2e-4), std::make_tuple(4, 3, 2.0, 0.5, 2e-4),
               std::make_tuple(3, 1024, 10.0, -10.0, 1e-3), std::make_tuple(5, 2, 10.0, -10.0, 1e-3));
  const tt::Batch b = tt::random_batch(n, 4, 17 + static_cast<std::uint64_t>(n));
  const contra::Embeddings emb = b.embeddings();
  Siglip loss = make(scale, bias, true, true, chunk);
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::Parameter& bias_parameter = tt::parameter(loss, "logit_bias");
  contra::LossResult out, probe;
  loss.compute(emb, tt::all_pairs(), out);
  const contra::Tensor grad = out.grad.clone();
  const double dt = t.grad.data<float>()[0], db = bias_parameter.grad.data<float>()[0];
  auto f = [&]() {
    loss.compute(emb, tt::all_pairs(), probe);
    return probe.value;
  };
  INFO("n = " << n << ", chunk = " << chunk << ", s = " << scale << ", b = " << bias);
  contra::Tensor z = b.z;  // shares storage: perturbing it perturbs what the loss sees
  double worst = 0;
  for (std::int64_t k = 0; k < z.numel(); ++k) {
    const double numeric = contra::test::numeric_derivative(f, z.data<float>(), k, 1e-3);
    const double analytic = grad.data<float>()[k];
    worst = std::max(worst, std::abs(numeric - analytic));
    CHECK(analytic == Approx(numeric).margin(tolerance).epsilon(1e-2));
  }
  INFO("largest |numeric - analytic| of dL/dz = " << worst);
  CHECK(worst < tolerance);
  CHECK(dt != 0.0);
  CHECK(db != 0.0);
  CHECK(dt == Approx(tt::parameter_derivative(f, t, 1e-3)).margin(tolerance).epsilon(1e-2));
  CHECK(db == Approx(tt::parameter_derivative(f, bias_parameter, 1e-3)).margin(tolerance).epsilon(1e-2));
}

TEST_CASE("siglip: the two views play the same part, whichever tower is which", "[plugins][siglip]") {
  // The labels are symmetric, so exchanging the views transposes C and
  // leaves the loss as it is; with the towers exchanged too, nothing changes.
  const tt::Batch b = tt::random_batch(5, 8, 21);
  Siglip loss = make();
  contra::LossResult out, swapped_out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const std::int64_t n = 5, d = 8;

  SECTION("views swapped with their towers: the same pairing, value, metrics and gradient") {
    const tt::Batch s = tt::swapped(b);
    loss.compute(s.embeddings(), tt::all_pairs(), swapped_out);
    CHECK(swapped_out.value == Approx(out.value).epsilon(1e-6));
    for (const char* name : {"i2t_accuracy", "t2i_accuracy", "positive_similarity", "logit_scale", "logit_bias"})
      CHECK(tt::metric(swapped_out, name) == Approx(tt::metric(out, name)).epsilon(1e-6));
    for (std::int64_t r = 0; r < 2 * n; ++r)
      for (std::int64_t k = 0; k < d; ++k)
        CHECK(swapped_out.grad.data<float>()[((r + n) % (2 * n)) * d + k] ==
              Approx(out.grad.data<float>()[r * d + k]).margin(1e-6));
  }
  SECTION("views swapped without towers: view 0 is the image, the value is the same") {
    tt::Batch s = tt::swapped(b);
    s.with_towers = false;
    loss.compute(s.embeddings(), tt::all_pairs(), swapped_out);
    CHECK(swapped_out.value == Approx(out.value).epsilon(1e-6));
    CHECK(tt::metric(swapped_out, "i2t_accuracy") == tt::metric(out, "t2i_accuracy"));
    CHECK(tt::metric(swapped_out, "t2i_accuracy") == tt::metric(out, "i2t_accuracy"));
  }
}

TEST_CASE("siglip: refuses what it cannot contrast, with messages", "[plugins][siglip]") {
  Siglip loss = make();
  tt::check_refusals(loss, "siglip");
}

TEST_CASE("siglip: compute() adds dL/dt and dL/db into the parameters' gradients, and writes dL/dz",
          "[plugins][siglip]") {
  const tt::Batch b = tt::random_batch(4, 6, 2);
  Siglip loss = make();
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::Parameter& bias = tt::parameter(loss, "logit_bias");
  contra::LossResult out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const float dt = t.grad.data<float>()[0], db = bias.grad.data<float>()[0];
  const contra::Tensor dz = out.grad.clone();
  REQUIRE(dt != 0.0f);
  REQUIRE(db != 0.0f);

  t.grad.data<float>()[0] = 0.25f;
  bias.grad.data<float>()[0] = -0.5f;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(t.grad.data<float>()[0] == Approx(0.25f + dt).epsilon(1e-6));
  CHECK(bias.grad.data<float>()[0] == Approx(-0.5f + db).epsilon(1e-6));
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(t.grad.data<float>()[0] == Approx(0.25f + 2 * dt).epsilon(1e-6));
  CHECK(bias.grad.data<float>()[0] == Approx(-0.5f + 2 * db).epsilon(1e-6));
  for (std::int64_t k = 0; k < dz.numel(); ++k) CHECK(out.grad.data<float>()[k] == dz.data<float>()[k]);

  // Fixed scale and bias give the same loss, with no parameter to add to.
  Siglip fixed = make(10.0, -10.0, false, false);
  contra::LossResult fixed_out;
  fixed.compute(b.embeddings(), tt::all_pairs(), fixed_out);
  CHECK(fixed_out.value == out.value);
}

TEST_CASE("siglip: contra::testing::check_loss and check_loss_gradient pass", "[plugins][siglip]") {
  const tt::Batch b = tt::random_batch(6, 8, 4);
  Siglip loss = make(2.0, 0.0);
  auto r = contra::testing::check_loss(loss, b.embeddings(), tt::all_pairs());
  INFO(r.message);
  CHECK(r.ok);
  auto g = contra::testing::check_loss_gradient(loss, b.embeddings(), tt::all_pairs());
  INFO(g.message << "\n" << g.notes);
  CHECK(g.ok);
}

TEST_CASE("siglip: matches PyTorch autograd (open_clip's SigLipLoss) in float64", "[plugins][siglip][torch]") {
  if (!contra::test::torch_oracle_ready()) return;
  auto [n, towers] = GENERATE(std::make_tuple(6, std::vector<std::int32_t>{0, 1}),
                              std::make_tuple(9, std::vector<std::int32_t>{1, 0}));
  tt::Batch b = tt::random_batch(n, 5, 31 + static_cast<std::uint64_t>(n));
  b.towers = towers;
  Siglip loss = make(10.0, -10.0, true, true, 4);  // more than one block for N > 4
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::Parameter& bias = tt::parameter(loss, "logit_bias");
  contra::LossResult out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const std::int64_t first = towers[0] == 0 ? 0 : 1;
  const nlohmann::json r =
      tt::torch_figures("siglip", b, first, 1 - first, t.value.data<float>()[0], bias.value.data<float>()[0], 0.0, out,
                        t.grad.data<float>()[0], bias.grad.data<float>()[0]);
  INFO(r.dump());
  CHECK(r.at("value").get<double>() < 2e-6 * std::max(1.0, r.at("torch_value").get<double>()));
  CHECK(r.at("grad").get<double>() < 1e-5 * std::max(1.0, r.at("grad_scale").get<double>()));
  CHECK(r.at("dt").get<double>() < 1e-5 * std::max(1.0, std::abs(r.at("torch_dt").get<double>())));
  CHECK(r.at("db").get<double>() < 1e-5 * std::max(1.0, std::abs(r.at("torch_db").get<double>())));
}
