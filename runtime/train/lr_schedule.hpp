#pragma once
// Learning-rate schedule: a multiplier of the optimizer's base rate per step.
// Linear warm-up (step s of W gets (s + 1) / W), then constant or cosine decay
// to final_scale at the last step (Loshchilov & Hutter 2017, as SimCLR uses).

#include <cstdint>

namespace contra::runtime {

class LrSchedule {
 public:
  enum class Kind { constant, cosine };
  LrSchedule(Kind kind, std::int64_t warmup_steps, std::int64_t total_steps, double final_scale);
  /// With the warm-up given in epochs ([schedule] warmup_epochs), rounded
  /// to steps.
  static LrSchedule over_epochs(Kind kind, double warmup_epochs, double final_scale, std::int64_t steps_per_epoch,
                                std::int64_t total_steps);

  /// Multiplier at 0-based global step `step`.
  double scale(std::int64_t step) const;
  std::int64_t warmup_steps() const { return warmup_; }

 private:
  Kind kind_;
  std::int64_t warmup_, total_;
  double final_;
};

}  // namespace contra::runtime
