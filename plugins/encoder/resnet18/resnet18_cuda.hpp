#pragma once
// resnet18 on the GPU: the same network, names, schema and initialisation as
// the CPU build (resnet18.hpp, README.md), on the SDK's GPU layers
// (contra/cuda/nn.hpp), for images on Device::cuda.

#include "resnet18.hpp"

#include <contra/cuda/nn.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <memory>

namespace contra::plugins {

/// The GPU layer library of contra::cuda::nn, for resnet18_net.hpp.
struct CudaLayers {
  using Conv2d = contra::cuda::nn::Conv2d;
  using BatchNorm = contra::cuda::nn::BatchNorm;
  using BatchNormReLU = contra::cuda::nn::BatchNormReLU;
  using ReLU = contra::cuda::nn::ReLU;
  using GlobalAvgPool = contra::cuda::nn::GlobalAvgPool;
  static void add(const contra::Tensor& a, const contra::Tensor& b, contra::Tensor& out) {
    contra::cuda::nn::add(a, b, out);
  }
  static void configure(Conv2d&, contra::nn::ConvAlgorithm) {}  // cuDNN chooses
};

using BasicBlockCuda = BasicBlockOf<CudaLayers>;

class ResNet18Cuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return ResNet18::schema(); }
  explicit ResNet18Cuda(const contra::Params& p);

  /// The CPU build's checks and messages (ConfigError), then needs a usable
  /// GPU (DeviceError otherwise); parameters and buffers live on cuda.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return 8 * width_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  /// x: [N, C, H, W] f32 on cuda; returns [N, 8·width] on cuda; backward()
  /// returns dL/dx as [N, C, H, W] on cuda.
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
