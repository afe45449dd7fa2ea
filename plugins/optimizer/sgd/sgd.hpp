#pragma once
/// \file
/// sgd: stochastic gradient descent with momentum, Nesterov momentum and L2
/// weight decay (skipped for parameters with decay = false), following
/// PyTorch's torch.optim.SGD (dampening 0).

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <vector>

namespace contra::plugins {

class Sgd final : public contra::Optimizer {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when nesterov is set without momentum > 0, or when
  /// momentum is not below 1.
  explicit Sgd(const contra::Params& p);

  void configure(const std::vector<contra::Parameter*>& params) override;
  /// w -= lr * s.lr_scale * update (see README). Throws UsageError before
  /// configure() or when a gradient's shape differs from its parameter's.
  void step(const contra::OptimizerStep& s) override;
  /// "<param>.momentum_buffer" per parameter (with momentum), and "step".
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, momentum_, weight_decay_;
  bool nesterov_;
  double last_lr_;
  bool configured_ = false;
  // Steps taken; the momentum buffers hold a first gradient once it is > 0.
  contra::Tensor steps_ = contra::Tensor::zeros({1}, contra::DType::i64);
  std::vector<contra::Parameter*> params_;
  std::vector<contra::Tensor> buffers_;  // momentum buffers, one per parameter
};

}  // namespace contra::plugins
