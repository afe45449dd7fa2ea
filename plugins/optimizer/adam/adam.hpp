#pragma once
/// \file
/// adam: Adam with bias-corrected moments and optional L2 weight decay added
/// to the gradient (skipped for parameters with decay = false), following
/// PyTorch's torch.optim.Adam (amsgrad off).

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

class Adam final : public contra::Optimizer {
 public:
  static contra::Schema schema();
  /// The schema's inclusive ranges already keep beta1 and beta2 below 1.
  explicit Adam(const contra::Params& p);

  /// Allocates the first and second moment estimates (zeroed) and restarts
  /// the step count t.
  void configure(const std::vector<contra::Parameter*>& params) override;
  /// One Adam update at lr * s.lr_scale (see README); t counts this
  /// optimizer's own steps from 1, whatever s.step says. Throws UsageError
  /// before configure() or when a gradient's shape differs from its
  /// parameter's.
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.exp_avg", "<param>.exp_avg_sq" per parameter, and "step" (t).
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, beta1_, beta2_, eps_, weight_decay_;
  double last_lr_;
  bool configured_ = false;
  contra::Tensor t_ = contra::Tensor::zeros({1}, contra::DType::i64);  // steps taken since configure()
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> m_;  // first moment estimates, one per parameter
  std::vector<contra::Tensor> v_;  // second moment estimates, one per parameter
};

}  // namespace contra::plugins
