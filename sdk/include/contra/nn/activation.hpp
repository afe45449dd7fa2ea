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

/// y = x · Φ(x) = x/2 · (1 + erf(x/√2)), the exact GELU (PyTorch's nn.GELU()
/// default, approximate = "none"), for an f32 cpu tensor of any shape.
/// backward() differentiates at the saved input: the layer keeps a
/// non-owning reference to x, which callers must keep alive and unchanged
/// until backward(); it needs a train-mode forward() as the last forward().
/// Primitives are created once per element count and cached.
class Gelu final : public Layer {
 public:
  Gelu();
  ~Gelu() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
