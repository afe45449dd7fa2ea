#pragma once
/// \file
/// Loss: value and gradient with respect to the embeddings.

#include <contra/pairs_check.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/roles/miner.hpp>
#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <string>
#include <utility>
#include <vector>

namespace contra {

struct LossResult {
  double value = 0.0;
  Tensor grad;  ///< dL/dz, same shape as z; reuse across steps with ensure()
  /// Extra figures to log per step (name, value), e.g. positive similarity.
  std::vector<std::pair<std::string, double>> metrics;
};

class Loss : public Plugin {
 public:
  /// Loss over the mined pairs, and dL/dz into out.grad. Called from one thread.
  /// Throws UsageError when `pairs` is of a form the loss cannot use.
  virtual void compute(const Embeddings& z, const Pairs& pairs, LossResult& out) = 0;
  /// The forms of Pairs compute() takes; declared, a miner whose lists it
  /// cannot use is refused before a run (Miner::mined_lists()). The default
  /// says nothing.
  virtual PairsForms pairs_forms() const {
    PairsForms f;
    f.declared = false;
    return f;
  }
  /// Parameters the loss learns (CLIP's temperature), in a stable order:
  /// the optimizer updates them with the encoder's, checkpoints keep them,
  /// and compute() adds dL/dθ into their grads (the runtime zeroes them
  /// before each step). Valid after construction; none by default. Since
  /// SDK ABI 4.
  virtual std::vector<Parameter*> parameters() { return {}; }
};

}  // namespace contra
