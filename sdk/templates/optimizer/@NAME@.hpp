#pragma once
// @NAME@: a contra optimizer plugin (plain stochastic gradient descent with weight decay).

#include <contra/roles/optimizer.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Optimizer {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  void configure(const std::vector<contra::Parameter*>& params) override;
  void step(const contra::OptimizerStep& s) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, weight_decay_, last_lr_ = 0.0;
  std::vector<contra::Parameter*> params_;
};
