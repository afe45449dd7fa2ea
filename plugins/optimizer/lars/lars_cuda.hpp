#pragma once
/// \file
/// lars on the GPU: the same update, parameters and state as the CPU build
/// (lars.hpp, README.md), for parameters on Device::cuda.

#include "lars.hpp"

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <vector>

namespace contra::plugins {

/// Per parameter marked decay: ‖w‖ and ‖g + wd·w‖ by a two-stage reduction
/// in double (fixed order: reproducible), the trust ratio computed on the
/// device, then one fused update kernel reading it; nothing comes back to the
/// host and nothing synchronises, except trust_ratio().
class LarsCuda final : public contra::Optimizer {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Lars::schema(); }
  /// The CPU build's checks (ConfigError when momentum >= 1).
  explicit LarsCuda(const contra::Params& p);

  /// Allocates the momentum buffers (zeroed, on cuda; none when momentum =
  /// 0). Parameters and gradients must be f32 on cuda (UsageError otherwise).
  void configure(const std::vector<contra::Parameter*>& params) override;
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.momentum_buffer" per parameter (with momentum; on cuda).
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

  /// Trust ratio of the last step for parameter i (1 for decay = false), for
  /// diagnostics and tests; waits for the current stream.
  double trust_ratio(std::size_t i) const;

 private:
  double lr_, momentum_, weight_decay_, trust_coefficient_, eps_;
  double last_lr_;
  bool configured_ = false;
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> buffers_;
  contra::Tensor partials_;    // [2, blocks] doubles (as i64): the reductions' per-block sums
  contra::Tensor ratios_;      // [P] doubles (as i64): trust ratio of the last step
  contra::Tensor scaled_lr_;   // [P] f32: lr · ratio, read by the update kernel
};

}  // namespace contra::plugins
