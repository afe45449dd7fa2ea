#include "config/pipeline_spec.hpp"
#include "train/lr_schedule.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace contra;
using namespace contra::runtime;

TEST_CASE("schedule: linear warm-up then cosine to final_scale", "[runtime][schedule]") {
  // 10 warm-up steps of 110; cosine over the remaining 100 steps.
  LrSchedule s(LrSchedule::Kind::cosine, 10, 110, 0.1);
  CHECK(s.scale(0) == Approx(0.1));
  CHECK(s.scale(4) == Approx(0.5));
  CHECK(s.scale(9) == Approx(1.0));
  CHECK(s.scale(10) == Approx(1.0));                                        // cosine starts at 1
  CHECK(s.scale(10 + 33) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 33 / 99.0))));
  CHECK(s.scale(10 + 99) == Approx(0.1));                                   // last step
  CHECK(s.scale(500) == Approx(0.1));                                       // past the end stays there
  for (int i = 11; i < 110; ++i) CHECK(s.scale(i) <= s.scale(i - 1));       // never increases after warm-up
}

TEST_CASE("schedule: constant with and without warm-up", "[runtime][schedule]") {
  LrSchedule flat(LrSchedule::Kind::constant, 0, 50, 0.0);
  CHECK(flat.scale(0) == 1.0);
  CHECK(flat.scale(49) == 1.0);
  LrSchedule warm(LrSchedule::Kind::constant, 4, 50, 0.0);
  CHECK(warm.scale(0) == Approx(0.25));
  CHECK(warm.scale(3) == Approx(1.0));
  CHECK(warm.scale(20) == 1.0);
}

TEST_CASE("schedule: warmup_epochs in the pipeline become steps", "[runtime][schedule]") {
  LrSchedule s = LrSchedule::over_epochs(LrSchedule::Kind::cosine, 0.5, 0.0, 234, 2340);
  CHECK(s.warmup_steps() == 117);
  CHECK(s.scale(116) == Approx(1.0));
  CHECK(s.scale(2339) == Approx(0.0).margin(1e-12));
}
