#include "clip.hpp"

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

using contra::plugins::Clip;
namespace tt = contra::test::two_tower;

namespace {

Clip make(double init_temperature = 0.07, bool learn = true, std::int64_t chunk = 1024, double max_scale = 100.0) {
  return Clip(Clip::schema().bind({{"init_temperature", init_temperature},
                                   {"learn_temperature", learn},
                                   {"chunk", chunk},
                                   {"max_scale", max_scale}}));
}

// CLIP's loss written as directly as possible, in long double: the mean of
// the rows' and the columns' cross-entropies of the logits s·C.
double reference_loss(const tt::Batch& b, std::int64_t first, std::int64_t second, long double s) {
  const std::int64_t n = b.samples();
  const std::vector<long double> c = tt::reference_cosines(b, first, second);
  long double total = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    long double row = 0, column = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      row += std::exp(s * c[i * n + j]);
      column += std::exp(s * c[j * n + i]);
    }
    total += -s * c[i * n + i] + std::log(row) - s * c[i * n + i] + std::log(column);
  }
  return static_cast<double>(total / (2 * n));
}

// The batch worked by hand below: N = 2, D = 2; norms differ, to exercise
// the normalisation.
tt::Batch hand_batch() {
  return tt::from_rows(2, 2,
                       {2, 0, 0, 3,     // view 0 (the images): (1, 0), (0, 1)
                        1, 1, 0, -2});  // view 1 (the texts):  (r, r), (0, -1), r = 1/sqrt(2)
}

}  // namespace

TEST_CASE("clip: schema declares its parameters and defaults", "[plugins][clip]") {
  contra::Schema s = Clip::schema();
  CHECK_NOTHROW(s.check_well_formed());
  const contra::Params p = s.bind({});
  CHECK(p.get<double>("init_temperature") == 0.07);
  CHECK(p.get<bool>("learn_temperature"));
  CHECK(p.get<double>("max_scale") == 100.0);
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"init_temperature", 0.0}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"max_scale", 0.5}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", 0}}), contra::ConfigError);
  auto r = contra::testing::check_schema<Clip>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("clip: a temperature that would start above max_scale is refused", "[plugins][clip]") {
  // 1/0.005 = 200 > 100: the scale would start clamped, t would get no gradient.
  CHECK_THROWS_AS(make(0.005), contra::ConfigError);
  CHECK_THROWS_WITH(make(0.005), Catch::Contains("init_temperature") &&
                                     Catch::Contains("a temperature of 0.005 scales the logits by 200.0, above "
                                                     "max_scale = 100.0"));
  CHECK_NOTHROW(make(0.005, true, 1024, 200.0));
  CHECK_NOTHROW(make(0.01));  // exactly 100: not clamped
}

TEST_CASE("clip: the temperature is one learnt f32 scalar logit_scale = log(1/T), without decay",
          "[plugins][clip]") {
  Clip loss = make(0.07);
  const std::vector<contra::Parameter*> params = loss.parameters();
  REQUIRE(params.size() == 1);
  const contra::Parameter& t = *params[0];
  CHECK(t.name == "logit_scale");
  CHECK(t.value.shape() == contra::Shape({1}));
  CHECK(t.value.dtype() == contra::DType::f32);
  CHECK(t.grad.shape() == contra::Shape({1}));
  CHECK(t.grad.dtype() == contra::DType::f32);
  CHECK_FALSE(t.decay);
  CHECK(t.value.data<float>()[0] == static_cast<float>(std::log(1.0 / 0.07)));  // 2.6592600
  CHECK(t.grad.data<float>()[0] == 0.0f);
  // Called again: the same parameter, at the same address (the optimizer keeps the pointer).
  CHECK(loss.parameters()[0] == params[0]);

  Clip fixed = make(0.07, false);
  CHECK(fixed.parameters().empty());
}

TEST_CASE("clip: value and metrics match a case worked by hand", "[plugins][clip]") {
  // Unit rows: a0 = (1, 0), a1 = (0, 1) (images); b0 = (r, r), b1 = (0, -1) (texts).
  // Cosines C_ij = a_i·b_j:  C = [[r, 0], [r, -1]],  r = 1/sqrt(2) = 0.7071067812.
  // With s = 1 (T = 1) the logits are C:
  //   row 0 (image 0 -> texts): -r + log(e^r + e^0)          = 0.4008335265
  //   row 1 (image 1 -> texts): -(-1) + log(e^r + e^-1)      = 1.8737983525
  //   col 0 (text 0 -> images): -r + log(e^r + e^r) = log 2   = 0.6931471806
  //   col 1 (text 1 -> images): -(-1) + log(e^0 + e^-1)      = 1.3132616875
  //   loss = (rows + cols) / (2·2)                            = 1.0702601868
  // With s = 2 (T = 0.5), the same with 2C:
  //   rows 0.2176217216, 3.4465861421; cols log 2, 2.1269280110; loss = 1.6210707638.
  // Retrieval: row 0 matches (r > 0), row 1 does not (-1 < r): i2t = 1/2.
  // Column 0 ties (C_00 = C_10 = r) and ties are misses; column 1: -1 < 0: t2i = 0.
  // positive_similarity = (C_00 + C_11) / 2 = (r - 1) / 2 = -0.1464466094.
  const tt::Batch b = hand_batch();
  contra::LossResult out;

  Clip t1 = make(1.0, false);
  t1.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(out.value == Approx(1.0702601868).margin(1e-6));
  CHECK(tt::metric(out, "logit_scale") == Approx(1.0).margin(1e-6));
  CHECK(tt::metric(out, "i2t_accuracy") == 0.5);
  CHECK(tt::metric(out, "t2i_accuracy") == 0.0);
  CHECK(tt::metric(out, "positive_similarity") == Approx(-0.1464466094).margin(1e-6));
  REQUIRE(out.grad.shape() == contra::Shape({4, 2}));

  Clip t05 = make(0.5, false);
  out.metrics.clear();
  t05.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(out.value == Approx(1.6210707638).margin(1e-6));
  CHECK(tt::metric(out, "logit_scale") == Approx(2.0).margin(1e-6));
}

TEST_CASE("clip: value matches the definition on random batches, whatever the chunk", "[plugins][clip]") {
  auto [n, chunk] = GENERATE(std::make_tuple(1, 1024), std::make_tuple(3, 1024), std::make_tuple(7, 1),
                             std::make_tuple(7, 3), std::make_tuple(300, 64), std::make_tuple(300, 1024));
  const tt::Batch b = tt::random_batch(n, 16, 3 + static_cast<std::uint64_t>(n));
  for (double temperature : {0.07, 0.5}) {
    Clip loss = make(temperature, true, chunk);
    contra::LossResult out;
    loss.compute(b.embeddings(), tt::all_pairs(), out);
    const double s = tt::metric(out, "logit_scale");
    INFO("n = " << n << ", chunk = " << chunk << ", T = " << temperature);
    CHECK(out.value == Approx(reference_loss(b, 0, 1, s)).epsilon(1e-5).margin(1e-6));
    if (n == 1) CHECK(out.value == Approx(0.0).margin(1e-6));  // the only pair is its own softmax
  }
}

TEST_CASE("clip: gradients with respect to z and t match central finite differences", "[plugins][clip]") {
  // f32 throughout. Logits are up to s = 1/T in size, so a loss evaluation
  // carries up to ~1e-7·s of rounding, over a step of 2e-3 up to ~1e-3 at
  // s = 14 (T = 0.07) and ~1e-4 at s = 2; the truncation error (~eps²·s³/6)
  // is smaller. Observed: largest |numeric − analytic| about 2e-5 at T = 0.5,
  // 7e-5 at T = 0.07.
  auto [n, chunk, temperature, tolerance] =
      GENERATE(std::make_tuple(3, 1024, 0.5, 1e-4), std::make_tuple(4, 3, 0.5, 1e-4),
               std::make_tuple(3, 1024, 0.07, 1e-3), std::make_tuple(5, 2, 0.07, 1e-3));
  const tt::Batch b = tt::random_batch(n, 4, 17 + static_cast<std::uint64_t>(n));
  const contra::Embeddings emb = b.embeddings();
  Clip loss = make(temperature, true, chunk);
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::LossResult out, probe;
  loss.compute(emb, tt::all_pairs(), out);
  const contra::Tensor grad = out.grad.clone();
  const double dt = t.grad.data<float>()[0];
  auto f = [&]() {
    loss.compute(emb, tt::all_pairs(), probe);
    return probe.value;
  };
  INFO("n = " << n << ", chunk = " << chunk << ", T = " << temperature);
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
  const double numeric_dt = tt::parameter_derivative(f, t, 1e-3);
  CHECK(dt != 0.0);
  CHECK(dt == Approx(numeric_dt).margin(tolerance).epsilon(1e-2));
}

TEST_CASE("clip: above max_scale the scale is clamped and dL/dt is 0", "[plugins][clip]") {
  const tt::Batch b = tt::random_batch(4, 6, 9);
  const contra::Embeddings emb = b.embeddings();
  Clip loss = make();
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::LossResult out, fixed_out;

  // t = log 200: exp(t) = 200 is clamped to 100, the loss is that of a fixed
  // scale 100 (T = 0.01), and t gets no gradient.
  t.value.data<float>()[0] = static_cast<float>(std::log(200.0));
  loss.compute(emb, tt::all_pairs(), out);
  CHECK(tt::metric(out, "logit_scale") == 100.0);
  CHECK(t.grad.data<float>()[0] == 0.0f);
  Clip fixed = make(0.01, false);
  fixed.compute(emb, tt::all_pairs(), fixed_out);
  CHECK(out.value == Approx(fixed_out.value).epsilon(1e-5).margin(1e-9));
  CHECK(out.value == Approx(reference_loss(b, 0, 1, 100.0L)).epsilon(1e-5).margin(1e-9));
  for (std::int64_t k = 0; k < out.grad.numel(); ++k)
    CHECK(out.grad.data<float>()[k] == Approx(fixed_out.grad.data<float>()[k]).margin(1e-6));
  // Clamped, the loss does not move with t.
  auto f = [&]() {
    contra::LossResult probe;
    loss.compute(emb, tt::all_pairs(), probe);
    return probe.value;
  };
  CHECK(tt::parameter_derivative(f, t, 1e-2) == 0.0);

  // Just below the clamp (exp(t) = 90), t has its gradient again.
  t.value.data<float>()[0] = static_cast<float>(std::log(90.0));
  t.grad.zero();
  out.metrics.clear();
  loss.compute(emb, tt::all_pairs(), out);
  CHECK(tt::metric(out, "logit_scale") == Approx(90.0).epsilon(1e-6));
  const double dt = t.grad.data<float>()[0];
  CHECK(dt != 0.0);
  CHECK(dt == Approx(tt::parameter_derivative(f, t, 1e-3)).margin(1e-2).epsilon(1e-2));
}

TEST_CASE("clip: view_tower decides which view is the image, and the loss is symmetric", "[plugins][clip]") {
  const tt::Batch b = tt::random_batch(5, 8, 21);
  Clip loss = make();
  contra::LossResult out, swapped_out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const std::int64_t n = 5, d = 8;

  SECTION("views swapped with their towers: the same pairing, value, metrics and gradient") {
    const tt::Batch s = tt::swapped(b);  // towers {1, 0}: view 1 is now the image
    loss.compute(s.embeddings(), tt::all_pairs(), swapped_out);
    CHECK(swapped_out.value == Approx(out.value).epsilon(1e-6));
    for (const char* name : {"i2t_accuracy", "t2i_accuracy", "positive_similarity", "logit_scale"})
      CHECK(tt::metric(swapped_out, name) == Approx(tt::metric(out, name)).epsilon(1e-6));
    // Row v·N + i of the swapped batch is row (1 − v)·N + i of the original.
    for (std::int64_t r = 0; r < 2 * n; ++r)
      for (std::int64_t k = 0; k < d; ++k)
        CHECK(swapped_out.grad.data<float>()[((r + n) % (2 * n)) * d + k] ==
              Approx(out.grad.data<float>()[r * d + k]).margin(1e-6));
  }
  SECTION("views swapped without towers: view 0 is the image, the value is the same (symmetric loss)") {
    tt::Batch s = tt::swapped(b);
    s.with_towers = false;
    loss.compute(s.embeddings(), tt::all_pairs(), swapped_out);
    CHECK(swapped_out.value == Approx(out.value).epsilon(1e-6));
    CHECK(tt::metric(swapped_out, "i2t_accuracy") == tt::metric(out, "t2i_accuracy"));
    CHECK(tt::metric(swapped_out, "t2i_accuracy") == tt::metric(out, "i2t_accuracy"));
    CHECK(swapped_out.value == Approx(reference_loss(b, 1, 0, tt::metric(out, "logit_scale"))).epsilon(1e-5));
  }
}

TEST_CASE("clip: refuses what it cannot contrast, with messages", "[plugins][clip]") {
  Clip loss = make();
  tt::check_refusals(loss, "clip");
}

TEST_CASE("clip: compute() adds dL/dt into the parameter's gradient, and writes dL/dz", "[plugins][clip]") {
  const tt::Batch b = tt::random_batch(4, 6, 2);
  Clip loss = make();
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  contra::LossResult out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const float dt = t.grad.data<float>()[0];
  const contra::Tensor dz = out.grad.clone();
  REQUIRE(dt != 0.0f);

  t.grad.data<float>()[0] = 0.25f;  // e.g. another term of the step
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(t.grad.data<float>()[0] == Approx(0.25f + dt).epsilon(1e-6));
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  CHECK(t.grad.data<float>()[0] == Approx(0.25f + 2 * dt).epsilon(1e-6));
  // dL/dz is the loss's own output: the same each call, not summed.
  for (std::int64_t k = 0; k < dz.numel(); ++k) CHECK(out.grad.data<float>()[k] == dz.data<float>()[k]);

  // A fixed temperature gives the same loss, with no parameter to add to.
  Clip fixed = make(0.07, false);
  contra::LossResult fixed_out;
  fixed.compute(b.embeddings(), tt::all_pairs(), fixed_out);
  CHECK(fixed_out.value == out.value);
}

TEST_CASE("clip: contra::testing::check_loss and check_loss_gradient pass", "[plugins][clip]") {
  const tt::Batch b = tt::random_batch(6, 8, 4);
  Clip loss = make(0.2);
  auto r = contra::testing::check_loss(loss, b.embeddings(), tt::all_pairs());
  INFO(r.message);
  CHECK(r.ok);
  auto g = contra::testing::check_loss_gradient(loss, b.embeddings(), tt::all_pairs());
  INFO(g.message << "\n" << g.notes);
  CHECK(g.ok);
}

TEST_CASE("clip: matches PyTorch autograd (open_clip's ClipLoss) in float64", "[plugins][clip][torch]") {
  if (!contra::test::torch_oracle_ready()) return;
  auto [n, log_scale, towers] = GENERATE(std::make_tuple(6, std::log(1 / 0.07), std::vector<std::int32_t>{0, 1}),
                                         std::make_tuple(9, std::log(1 / 0.07), std::vector<std::int32_t>{1, 0}),
                                         std::make_tuple(6, std::log(150.0), std::vector<std::int32_t>{0, 1}));
  tt::Batch b = tt::random_batch(n, 5, 31 + static_cast<std::uint64_t>(n));
  b.towers = towers;
  Clip loss = make(0.07, true, 4);  // more than one block for N > 4
  contra::Parameter& t = tt::parameter(loss, "logit_scale");
  t.value.data<float>()[0] = static_cast<float>(log_scale);
  contra::LossResult out;
  loss.compute(b.embeddings(), tt::all_pairs(), out);
  const std::int64_t first = towers[0] == 0 ? 0 : 1;
  const nlohmann::json r = tt::torch_figures("clip", b, first, 1 - first, t.value.data<float>()[0], 0.0, 100.0, out,
                                             t.grad.data<float>()[0], 0.0);
  INFO(r.dump());
  // Observed: about 3e-7 (value), 1e-7 (dL/dz and dL/dt).
  CHECK(r.at("value").get<double>() < 2e-6 * std::max(1.0, r.at("torch_value").get<double>()));
  CHECK(r.at("grad").get<double>() < 1e-5 * std::max(1.0, r.at("grad_scale").get<double>()));
  CHECK(r.at("dt").get<double>() < 1e-5 * std::max(1.0, std::abs(r.at("torch_dt").get<double>())));
  if (log_scale > std::log(100.0)) CHECK(r.at("torch_dt").get<double>() == 0.0);  // torch's clamp agrees
}
