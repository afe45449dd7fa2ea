#pragma once
/// \file
/// sgd on the GPU: the same update, parameters and state as the CPU build
/// (sgd.hpp, README.md), for parameters on Device::cuda.

#include "sgd.hpp"

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <vector>

namespace contra::plugins {

/// One fused kernel per parameter (decay, momentum or Nesterov, the update),
/// on contra::cuda::current_stream(); never synchronises.
class SgdCuda final : public contra::Optimizer {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Sgd::schema(); }
  /// The CPU build's checks (ConfigError for nesterov without momentum, momentum >= 1).
  explicit SgdCuda(const contra::Params& p);

  /// Parameters and gradients must be f32 on cuda (UsageError otherwise).
  void configure(const std::vector<contra::Parameter*>& params) override;
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.momentum_buffer" per parameter (with momentum; on cuda), and
  /// "step" (on the CPU), as the CPU build names them.
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, momentum_, weight_decay_;
  bool nesterov_;
  double last_lr_;
  bool configured_ = false;
  contra::Tensor steps_ = contra::Tensor::zeros({1}, contra::DType::i64);
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> buffers_;
};

}  // namespace contra::plugins
