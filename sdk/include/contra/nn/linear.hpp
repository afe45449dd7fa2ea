#pragma once
/// \file
/// Fully connected layer on oneDNN matmul primitives.

#include <contra/nn/layer.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace contra::nn {

/// y = x·Wᵀ + b (PyTorch's nn.Linear).
///
/// - x: [N, in_features] f32; y: [N, out_features] f32.
/// - Parameters: "<name>.weight" [out, in] f32 and, when `bias`,
///   "<name>.bias" [out] (decay = false).
/// - Initialisation: PyTorch's default for nn.Linear, kaiming_uniform with
///   a = sqrt(5), i.e. U(±1/sqrt(in_features)), for the weight and (the same
///   bound) the bias, drawn from `init` in that order.
/// - Precision::bf16: x, the weight and dL/dy are rounded to bf16 for the
///   products; y, dL/dx and the parameter gradients stay f32 (the bias
///   gradient is summed from the f32 dL/dy).
/// - Primitives and their buffers are built once per batch size (a few are
///   kept) and reused: a steady-state step allocates nothing.
/// - backward() adds dL/dW into the weight's grad inside the matrix product
///   (a sum post-op), so grad + dL/dW is exact up to float rounding, not bit
///   for bit equal to adding a separately computed dL/dW: the kernel, chosen
///   by the CPU, decides the order of the additions.
class Linear final : public Layer {
 public:
  /// Throws UsageError for a non-positive feature count.
  Linear(std::string name, std::int64_t in_features, std::int64_t out_features, bool bias, Rng& init,
         Precision precision = Precision::f32);
  ~Linear() override;

  /// Throws UsageError for an input that is not f32 [N, in_features], N > 0.
  const Tensor& forward(const Tensor& x, Mode mode) override;
  /// Throws UsageError before any train-mode forward(), or for a dy whose
  /// shape is not that of the last output.
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  /// The weight, then the bias (if any).
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  Parameter& weight() noexcept { return weight_; }
  /// Null without a bias.
  Parameter* bias() noexcept { return has_bias_ ? &bias_ : nullptr; }
  const std::string& name() const noexcept { return name_; }
  Precision precision() const noexcept { return precision_; }

  /// Number of batch sizes with cached primitives (for tests).
  std::size_t cached_shapes() const noexcept;

 private:
  struct Impl;
  std::string name_;
  std::int64_t in_, out_;
  bool has_bias_;
  Precision precision_;
  Parameter weight_, bias_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
