#pragma once
// resnet18: ResNet-18 (He et al. 2016) in its CIFAR variant: 3x3 stem with
// no max pool, four stages of two BasicBlocks, global average pool.

#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <memory>

namespace contra::plugins {

/// conv3x3(stride) – BN – ReLU – conv3x3 – BN, plus the identity or a
/// 1x1 conv – BN projection shortcut, then ReLU of the sum.
class BasicBlock final : public contra::nn::Layer {
 public:
  BasicBlock(const std::string& name, std::int64_t in, std::int64_t out, int stride, contra::Rng& init,
             contra::Precision precision);
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<contra::Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;

 private:
  contra::nn::Sequential branch_;
  std::unique_ptr<contra::nn::Sequential> shortcut_;  // null: identity
  contra::nn::ReLU relu_;
  contra::Tensor sum_, dx_;
};

class ResNet18 final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit ResNet18(const contra::Params& p);

  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return 8 * width_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t width_;
  std::int64_t channels_ = 0;
  contra::nn::Sequential net_;
  contra::Tensor nhwc_, dx_;
  bool built_ = false;
};

}  // namespace contra::plugins
