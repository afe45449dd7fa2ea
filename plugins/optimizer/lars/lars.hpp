#pragma once
/// \file
/// lars: layer-wise adaptive rate scaling with momentum (You, Gitman and
/// Ginsburg, 2017), as SimCLR uses it: each parameter tensor's step is scaled
/// by trust_coefficient * ||w|| / ||g||; parameters with decay = false are
/// neither decayed nor adapted.

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <vector>

namespace contra::plugins {

class Lars final : public contra::Optimizer {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when momentum is not below 1.
  explicit Lars(const contra::Params& p);

  /// Allocates the momentum buffers (zeroed; none when momentum = 0).
  void configure(const std::vector<contra::Parameter*>& params) override;
  /// One LARS update at lr * s.lr_scale (see README). Throws UsageError
  /// before configure() or when a gradient's shape differs from its
  /// parameter's.
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.momentum_buffer" per parameter (with momentum).
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

  /// Trust ratio of the last step for parameter i (1 for decay = false), for
  /// diagnostics and tests.
  double trust_ratio(std::size_t i) const { return ratios_.at(i); }

 private:
  double lr_, momentum_, weight_decay_, trust_coefficient_, eps_;
  double last_lr_;
  bool configured_ = false;
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> buffers_;  // momentum buffers v, one per parameter
  std::vector<double> ratios_;           // trust ratio of the last step, one per parameter
};

}  // namespace contra::plugins
