#pragma once
// seed_resnet on the GPU: the same network, names, schema and initialisation
// as the CPU build (seed_resnet.hpp, README.md), on the SDK's GPU layers
// (contra/cuda/nn.hpp), for images on Device::cuda.

#include "seed_resnet.hpp"

#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

namespace contra::plugins {

class SeedResNetCuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return SeedResNet::schema(); }
  explicit SeedResNetCuda(const contra::Params& p);

  /// The CPU build's checks and messages (ConfigError), then needs a usable
  /// GPU (DeviceError otherwise); parameters and buffers live on cuda.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  /// x: [N, C, H, W] f32 on cuda (NCHW, as the CPU build takes it); returns
  /// [N, output] on cuda. backward() returns dL/dx as [N, C, H, W] on cuda.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t width_, output_, pool_grid_;
  std::int64_t channels_ = 0;
  contra::nn::Sequential net_;
  contra::Tensor nhwc_, dx_;
  bool built_ = false;
};

}  // namespace contra::plugins
