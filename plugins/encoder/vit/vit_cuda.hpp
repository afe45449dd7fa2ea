#pragma once
// vit on the GPU: the same network, parameter names, schema, checks and
// initial values as the CPU build (vit.hpp, README.md), on the SDK's GPU
// layers (contra/cuda/nn.hpp).

#include "vit.hpp"

#include <contra/cuda/nn.hpp>
#include <contra/plugin.hpp>

#include <memory>
#include <vector>

namespace contra::plugins {

class VisionTransformerCuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return VisionTransformer::schema(); }
  explicit VisionTransformerCuda(const contra::Params& p);
  ~VisionTransformerCuda() override;

  /// Builds the CPU model first, on the host (its checks, messages, memory
  /// check and initial values, in f32), then needs a usable GPU
  /// (DeviceError otherwise) and copies its values into the GPU layers,
  /// built with ctx.precision. Parameters live on cuda.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;

  /// x: f32 images [N, C, H, W] on cuda; returns [N, output] on cuda, and
  /// backward() dL/dx [N, C, H, W] on cuda.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  contra::Params params_;
  std::int64_t patch_, width_, layers_, heads_, mlp_ratio_, output_;
  bool mean_pooling_;

  bool built_ = false;
  std::int64_t channels_ = 0, height_ = 0, image_width_ = 0, length_ = 0;
  contra::Parameter class_embedding_, positional_embedding_;
  std::unique_ptr<contra::cuda::nn::Linear> patch_embedding_;
  std::unique_ptr<contra::cuda::nn::LayerNorm> ln_pre_, ln_post_;
  std::vector<std::unique_ptr<contra::cuda::nn::TransformerBlock>> blocks_;
  std::unique_ptr<contra::cuda::nn::Linear> projection_;

  std::int64_t rows_ = 0;
  contra::Tensor patches_, tokens_, pooled_, dhidden_, dpatch_rows_, dx_;
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
