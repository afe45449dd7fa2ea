#pragma once
// seed_resnet: the ResNetEncoder of the classic contrastive-learning tutorial,
// layer for layer (see README.md), on the SDK's oneDNN layers.

#include <contra/nn/conv2d.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <string>

namespace contra::plugins {

class SeedResNet final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit SeedResNet(const contra::Params& p);

  /// Throws ConfigError for inputs other than images [C, H, W], a pool_grid
  /// that does not divide the feature map, or a `width` (or `output`) whose
  /// weights and gradients need more memory than this machine has (before
  /// allocating; contra/memory_budget.hpp).
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;

 private:
  std::int64_t width_, output_, pool_grid_;
  contra::nn::ConvAlgorithm conv_algorithm_;
  std::string key_prefix_;  // "encoder.": how messages name the keys
  std::int64_t channels_ = 0;
  contra::nn::Sequential net_;
  contra::Tensor nhwc_, dx_;
  bool built_ = false;
};

}  // namespace contra::plugins
