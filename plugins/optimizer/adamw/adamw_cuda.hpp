#pragma once
/// \file
/// adamw on the GPU: the same update, parameters and state as the CPU build
/// (adamw.hpp, README.md), for parameters on Device::cuda.

#include "adamw.hpp"

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <vector>

namespace contra::plugins {

/// Adam with decoupled weight decay: one fused kernel per parameter (moments and update), on
/// contra::cuda::current_stream(); never synchronises. The scalars (bias
/// corrections) are computed on the host exactly as the CPU build does.
class AdamWCuda final : public contra::Optimizer {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return AdamW::schema(); }
  explicit AdamWCuda(const contra::Params& p);

  /// Allocates the moments (zeroed, on cuda) and restarts t. Parameters and
  /// gradients must be f32 on cuda (UsageError otherwise).
  void configure(const std::vector<contra::Parameter*>& params) override;
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.exp_avg", "<param>.exp_avg_sq" per parameter (on cuda), and
  /// "step" (t, on the CPU), as the CPU build names them.
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, beta1_, beta2_, eps_, weight_decay_;
  double last_lr_;
  bool configured_ = false;
  contra::Tensor t_ = contra::Tensor::zeros({1}, contra::DType::i64);
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> m_, v_;
};

}  // namespace contra::plugins
