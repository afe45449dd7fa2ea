#pragma once
// resnet18: ResNet-18 (He et al. 2016) in its CIFAR variant: 3x3 stem with
// no max pool, four stages of two BasicBlocks, global average pool.

#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/pooling.hpp>
#include <contra/nn/residual.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include "resnet18_net.hpp"
#include "../conv_algorithm.hpp"

#include <memory>
#include <string>

namespace contra::plugins {

/// The CPU layer library of contra::nn, for resnet18_net.hpp.
struct CpuLayers {
  using Conv2d = contra::nn::Conv2d;
  using BatchNorm = contra::nn::BatchNorm;
  using BatchNormReLU = contra::nn::BatchNormReLU;  // fused in oneDNN
  using ReLU = contra::nn::ReLU;
  using GlobalAvgPool = contra::nn::GlobalAvgPool;
  static void add(const contra::Tensor& a, const contra::Tensor& b, contra::Tensor& out) { contra::nn::add(a, b, out); }
  static void configure(Conv2d& conv, contra::nn::ConvAlgorithm a) { apply_conv_algorithm(conv, a); }
};

using BasicBlock = BasicBlockOf<CpuLayers>;

class ResNet18 final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit ResNet18(const contra::Params& p);

  /// Throws ConfigError for inputs other than images [C, H, W], or for a
  /// `width` whose weights and gradients need more memory than this machine
  /// has (before allocating; contra/memory_budget.hpp).
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return 8 * width_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t width_;
  contra::nn::ConvAlgorithm conv_algorithm_;
  std::string key_prefix_;  // "encoder.": how messages name the keys
  std::int64_t channels_ = 0;
  contra::nn::Sequential net_;
  contra::Tensor nhwc_, dx_;
  bool built_ = false;
};

}  // namespace contra::plugins
