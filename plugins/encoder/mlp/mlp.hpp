#pragma once
/// \file
/// mlp: a multilayer perceptron encoder, Linear → ReLU → ... → Linear.

#include <contra/nn/sequential.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Flattens each input row ([N, C, H, W] or [N, D]) and applies
/// `hidden.size() + 1` fully connected layers, with ReLU after all but the
/// last. Layer l has parameters "fc<l>.weight" [out, in] and "fc<l>.bias"
/// [out] (decay = false), initialised like PyTorch's nn.Linear:
/// uniform(±1/sqrt(in)), drawn from Rng(seed, 0, l, 0, 0). The layers are
/// contra::nn::Linear, so bf16 precision works where the CPU runs bf16.
class Mlp final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit Mlp(const contra::Params& p);

  /// Throws ConfigError for an empty input shape, or for layers whose weights
  /// and gradients need more memory than this machine has (naming `hidden`
  /// or `output` and the figure, before allocating any;
  /// contra/memory_budget.hpp), UsageError when built twice (and, from the
  /// first forward(), for bf16 on a CPU without it).
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;

  /// Throws UsageError before build(), or when a row of x does not hold the
  /// built input size. Allocates only when the batch size grows.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  /// Throws UsageError without a train-mode forward() since the last
  /// backward(), or when dy is not [N, output_dim()].
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  void require_memory(const std::vector<std::int64_t>& widths) const;

  std::vector<std::int64_t> hidden_;
  std::int64_t output_;
  std::string key_prefix_;    // "encoder." or "head.": how messages name the keys
  bool built_ = false;
  contra::Shape input_;       // per-row input shape given to build()
  std::int64_t in_dim_ = 0;   // its element count
  contra::nn::Sequential net_;
  contra::Tensor rows_;       // train: a copy of the input, [N, in_dim_]
  contra::Tensor dx_;         // dL/dx viewed with the input's shape
  contra::Tensor none_;       // returned when no input gradient is wanted
  contra::Shape x_shape_;     // shape of the last train-mode input
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
