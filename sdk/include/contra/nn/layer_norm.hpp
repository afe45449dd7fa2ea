#pragma once
/// \file
/// Layer normalisation over the features of each row (PyTorch's
/// nn.LayerNorm(D)), on oneDNN's layer_normalization primitives.

#include <contra/nn/layer.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace contra::nn {

/// y = γ ⊙ (x − μ) / sqrt(σ² + eps) + β for each row of x [N, D] (f32, cpu),
/// μ and σ² (biased) the mean and variance of that row's D values.
///
/// - No mode: train and eval compute the same thing, and backward()
///   differentiates the last forward() of either mode.
/// - Parameters "<name>.weight" (γ [D], initially 1) and "<name>.bias"
///   (β [D], initially 0), both decay = false; no buffers.
/// - The layer keeps a non-owning reference to x until the next forward():
///   callers must keep x alive and unchanged until backward().
/// - Primitives are created once per row count and cached (a steady-state
///   step allocates nothing); oneDNN runs them on the calling thread's
///   OpenMP team.
class LayerNorm final : public Layer {
 public:
  /// Throws UsageError unless features >= 1 and eps > 0.
  LayerNorm(std::string name, std::int64_t features, double eps = 1e-5);
  ~LayerNorm() override;

  /// Throws UsageError for an input that is not f32 cpu [N, features], N > 0.
  const Tensor& forward(const Tensor& x, Mode mode) override;
  /// Adds dL/dγ and dL/dβ into the parameters' grad. Throws UsageError
  /// before any forward(), or for a dy whose shape is not the last output's.
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  /// The weight, then the bias.
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t features() const noexcept;
  double eps() const noexcept;
  Parameter& weight() noexcept;
  Parameter& bias() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
