#pragma once
// projection_head on the GPU: the same layers, names, schema and
// initialisation as the CPU build (projection_head.hpp, README.md), on the
// SDK's GPU layers (contra/cuda/nn.hpp), for features on Device::cuda.

#include "projection_head.hpp"

#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

namespace contra::plugins {

class ProjectionHeadCuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return ProjectionHead::schema(); }
  explicit ProjectionHeadCuda(const contra::Params& p);

  /// The CPU build's checks and messages (ConfigError), then needs a usable
  /// GPU (DeviceError otherwise); parameters and buffers live on cuda.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  /// x: [N, D] f32 on cuda; returns [N, output] on cuda.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t hidden_, output_;
  bool batch_norm_;
  std::int64_t input_ = 0;
  contra::nn::Sequential net_;
  bool built_ = false;
};

}  // namespace contra::plugins
