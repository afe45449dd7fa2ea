#pragma once
/// \file
/// vit: a Vision Transformer image encoder (Dosovitskiy et al. 2021, as
/// CLIP's image tower builds it) on the SDK's transformer layers.

#include <contra/nn/layer_norm.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/transformer.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace contra::plugins {

/// Images [N, C, H, W] (f32) → embeddings [N, output]:
///
///     p = patches of p × p pixels, flattened (c, y, x)        [N·P, C·p·p]
///     h = [class_embedding; p · patch_embeddingᵀ] + positional_embedding
///                                                             [N·(P+1), width]
///     h = block_{layers-1}(... block_0(ln_pre(h)))          (pre-LN TransformerBlocks)
///     y = ln_post(pool(h)) · projectionᵀ                     [N, output]
///
/// pool takes each image's class token (CLIP, ViT) or the mean over its
/// P + 1 positions. Every position attends to every other (no mask).
///
/// Parameters (stable names and order): "patch_embedding.weight" [width,
/// C·p·p] (CLIP's conv1 flattened, no bias), "class_embedding" [width],
/// "positional_embedding" [P + 1, width], "ln_pre.*", then per block i
/// "blocks.<i>.*" (TransformerBlock's names), "ln_post.*" and
/// "projection.weight" [output, width] (CLIP's proj transposed). No buffers.
/// Initialised as CLIP's VisionTransformer from ctx.seed (see README.md).
class VisionTransformer final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit VisionTransformer(const contra::Params& p);
  ~VisionTransformer() override;

  /// Throws ConfigError for an input that is not images [C, H, W] whose
  /// sides `patch` divides, a width that heads does not divide, or weights
  /// that do not fit in this machine's memory; DeviceError for bf16 on a CPU
  /// without it; UsageError when built twice.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;

  /// Throws UsageError before build() or for an input that is not f32 cpu
  /// [N, C, H, W] of the built shape.
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  /// Adds into every parameter's grad; dL/dx [N, C, H, W] when
  /// want_input_grad. Throws UsageError without a train-mode forward() since
  /// the last backward(), or for a dy that is not [N, output].
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  enum class Pooling { cls, mean };

  void require_memory() const;
  void initialise(std::uint64_t seed);
  void extract_patches(const contra::Tensor& x);
  void fold_patches(const contra::Tensor& dpatches);
  void assemble_tokens(const contra::Tensor& embedded_patches);
  void pool(const contra::Tensor& h);
  void unpool(const contra::Tensor& dpooled);
  void token_backward(const contra::Tensor& dtokens);

  // Schema values.
  std::int64_t patch_, width_, layers_, heads_, mlp_ratio_, output_;
  Pooling pooling_;
  std::string key_prefix_;  // "encoder.": how messages name the keys

  // What build() made.
  bool built_ = false;
  std::int64_t channels_ = 0, height_ = 0, image_width_ = 0;
  std::int64_t grid_h_ = 0, grid_w_ = 0, length_ = 0;  // patches down and across; P + 1 positions
  contra::Parameter class_embedding_, positional_embedding_;
  std::unique_ptr<contra::nn::Linear> patch_embedding_;
  std::unique_ptr<contra::nn::LayerNorm> ln_pre_, ln_post_;
  std::vector<std::unique_ptr<contra::nn::TransformerBlock>> blocks_;
  std::unique_ptr<contra::nn::Linear> projection_;

  // The last forward's activations and the backward's gradients, sized once
  // per batch.
  std::int64_t rows_ = 0;
  contra::Tensor patches_, tokens_, pooled_, dhidden_, dpatch_rows_, dx_;
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
