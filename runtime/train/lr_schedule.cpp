#include "lr_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace contra::runtime {

LrSchedule::LrSchedule(Kind kind, std::int64_t warmup_steps, std::int64_t total_steps, double final_scale)
    : kind_(kind), warmup_(std::max<std::int64_t>(0, warmup_steps)), total_(total_steps), final_(final_scale) {}

LrSchedule LrSchedule::over_epochs(Kind kind, double warmup_epochs, double final_scale, std::int64_t steps_per_epoch,
                                   std::int64_t total_steps) {
  auto warmup = static_cast<std::int64_t>(std::llround(warmup_epochs * static_cast<double>(steps_per_epoch)));
  return LrSchedule(kind, warmup, total_steps, final_scale);
}

double LrSchedule::scale(std::int64_t step) const {
  if (step < warmup_) return static_cast<double>(step + 1) / static_cast<double>(warmup_);
  if (kind_ == Kind::constant) return 1.0;
  const std::int64_t span = total_ - warmup_;
  if (span <= 1) return 1.0;
  // From 1 at the first step after warm-up to final_scale at the last step.
  double t = static_cast<double>(std::min(step - warmup_, span - 1)) / static_cast<double>(span - 1);
  return final_ + (1.0 - final_) * 0.5 * (1.0 + std::cos(M_PI * t));
}

}  // namespace contra::runtime
