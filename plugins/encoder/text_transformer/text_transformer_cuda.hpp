#pragma once
// text_transformer on the GPU: the same network, parameter names, schema,
// checks and initial values as the CPU build (text_transformer.hpp,
// README.md), on the SDK's GPU layers (contra/cuda/nn.hpp).

#include "text_transformer.hpp"

#include <contra/cuda/nn.hpp>
#include <contra/plugin.hpp>

#include <memory>
#include <vector>

namespace contra::plugins {

class TextTransformerCuda final : public contra::Encoder {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return TextTransformer::schema(); }
  explicit TextTransformerCuda(const contra::Params& p);
  ~TextTransformerCuda() override;

  /// Builds the CPU model first, on the host (its checks and messages, its
  /// memory check, its initial values, in f32 whatever ctx.precision says),
  /// then needs a usable GPU (DeviceError otherwise) and copies its values
  /// into the GPU layers, built with ctx.precision; the host model is
  /// dropped after. Parameters live on cuda.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;

  /// x: i32 token ids [N, L] on cpu or cuda (checked on the host as the CPU
  /// build checks them: the same DataError messages; ids on cuda are copied
  /// back for it). Returns [N, output] f32 on cuda.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  /// As the CPU build's: token ids have no gradient.
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  contra::Params params_;
  std::int64_t width_, layers_, heads_, mlp_ratio_, output_;
  bool mean_pooling_, causal_;

  bool built_ = false;
  std::int64_t length_ = 0;
  contra::Vocabulary vocabulary_;
  contra::Parameter token_embedding_, positional_embedding_;
  std::vector<std::unique_ptr<contra::cuda::nn::TransformerBlock>> blocks_;
  std::unique_ptr<contra::cuda::nn::LayerNorm> ln_final_;
  std::unique_ptr<contra::cuda::nn::Linear> projection_;

  std::int64_t rows_ = 0;
  std::vector<std::int32_t> valid_;       // host: per row, bos through eos
  contra::Tensor host_ids_;               // ids copied back from cuda
  contra::Tensor ids_, valid_device_;     // i32 on cuda
  contra::Tensor embedded_, pooled_, dhidden_;
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
