#pragma once
/// \file
/// Optimizer: updates parameters from their gradients.

#include <contra/roles/encoder.hpp>
#include <contra/roles/plugin.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra {

struct OptimizerStep {
  std::int64_t step = 0;  ///< 0-based global step
  double lr_scale = 1.0;  ///< multiplier from the learning-rate schedule
};

class Optimizer : public Plugin {
 public:
  /// The parameters to optimise, once, before the first step. The pointers
  /// stay valid for the optimizer's lifetime.
  virtual void configure(const std::vector<Parameter*>& params) = 0;
  /// One update from the gradients now in the parameters. Does not zero them.
  virtual void step(const OptimizerStep& s) = 0;
  /// Learning rate the last step used (base rate × schedule), for logging.
  virtual double learning_rate() const = 0;

  /// Named tensors of its state (moment estimates, step counts), valid after
  /// configure(), for checkpoints: a resumed run restores them in place, so
  /// that it continues exactly. Scalars are one-element tensors.
  virtual void state(std::vector<std::pair<std::string, Tensor*>>& out) { (void)out; }
};

}  // namespace contra
