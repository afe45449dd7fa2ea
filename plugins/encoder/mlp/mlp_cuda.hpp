#pragma once
// mlp on the GPU: the same layers, names, schema and initialisation as the
// CPU build (mlp.hpp, README.md), on the SDK's GPU layers
// (contra/cuda/nn.hpp), for inputs on Device::cuda.

#include "mlp.hpp"

#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

namespace contra::plugins {

class MlpCuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Mlp::schema(); }
  explicit MlpCuda(const contra::Params& p);

  /// The CPU build's checks and messages (ConfigError), then needs a usable
  /// GPU (DeviceError otherwise). Layer l draws its weight, then its bias,
  /// from Rng(seed, 0, l, 0, 0), as the CPU build does.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  /// x: [N, ...] f32 on cuda with the built input's values per row (flattened
  /// as stored); returns [N, output] on cuda.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  /// dL/dx has x's shape, on cuda.
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::vector<std::int64_t> hidden_;
  std::int64_t output_;
  contra::Shape input_;
  std::int64_t in_dim_ = 0;
  contra::nn::Sequential net_;
  contra::Tensor rows_, dx_, none_;
  contra::Shape x_shape_;
  bool built_ = false;
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
