#pragma once
/// \file
/// Element-wise activations on oneDNN's eltwise primitives.

#include <contra/nn/layer.hpp>

#include <memory>

namespace contra::nn {

/// y = max(x, 0) for an f32 cpu tensor of any shape. backward() uses the saved
/// output (dL/dx = dL/dy where y > 0, else 0), so x may be overwritten after
/// forward(); it needs a train-mode forward() as the last forward().
/// Primitives are created once per element count and cached.
class ReLU final : public Layer {
 public:
  ReLU();
  ~ReLU() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
