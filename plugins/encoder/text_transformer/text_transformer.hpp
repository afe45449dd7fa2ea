#pragma once
/// \file
/// text_transformer: CLIP's text encoder (Radford et al. 2021) on the SDK's
/// transformer layers.

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

/// Checks token ids [rows, length] (each row bos, tokens, eos, pad) against
/// the vocabulary and returns each row's valid positions (bos through its
/// first eos). Throws DataError naming the row, for an id outside the
/// vocabulary or a row without eos (the messages of both builds).
std::vector<std::int32_t> text_valid_lengths(const std::int32_t* ids, std::int64_t rows, std::int64_t length,
                                             const contra::Vocabulary& vocabulary);

/// Token ids [N, L] (i32; each row bos, the text's tokens, eos, then pad) →
/// embeddings [N, output]:
///
///     h = token_embedding[x] + positional_embedding          [N·L, width]
///     h = block_{layers-1}(... block_0(h))                  (pre-LN TransformerBlocks)
///     y = ln_final(pool(h)) · text_projectionᵀ              [N, output]
///
/// pool takes each row's eos position (CLIP) or the mean over its valid
/// positions (bos through eos). Positions after eos are padding: no position
/// attends to them, so they change nothing. With `causal` (CLIP's default)
/// a position attends only to itself and earlier ones.
///
/// Parameters (stable names and order): "token_embedding.weight" [V, width],
/// "positional_embedding" [L, width], then per block i "blocks.<i>.ln_1.*",
/// "blocks.<i>.attn.in_proj.*", "blocks.<i>.attn.out_proj.*",
/// "blocks.<i>.ln_2.*", "blocks.<i>.mlp.c_fc.*", "blocks.<i>.mlp.c_proj.*"
/// (weight, then bias), then "ln_final.weight", "ln_final.bias" and
/// "text_projection.weight" [output, width] (CLIP's text_projection
/// transposed). No buffers. Initialised as CLIP's initialize_parameters()
/// from ctx.seed (see README.md).
class TextTransformer final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit TextTransformer(const contra::Params& p);
  ~TextTransformer() override;

  /// Throws ConfigError for an input that is not token ids (ctx.vocabulary
  /// empty, or ctx.input not [L]), a width that heads does not divide, or
  /// weights that do not fit in this machine's memory (before allocating
  /// them); DeviceError for bf16 on a CPU without it; UsageError when built
  /// twice.
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;

  /// Throws UsageError before build() or for an input that is not i32 cpu
  /// [N, L]; DataError for a token id outside the vocabulary or a row
  /// without eos, naming the row. A train-mode forward copies the token ids:
  /// the caller may reuse x before backward().
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  /// Adds into every parameter's grad. Token ids have no gradient: throws
  /// UsageError when want_input_grad, or without a train-mode forward()
  /// since the last backward(), or for a dy that is not [N, output].
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  enum class Pooling { eos, mean };

  void require_memory() const;
  void initialise(std::uint64_t seed);
  void read_tokens(const contra::Tensor& x);
  void embed();
  void pool(const contra::Tensor& h);
  void unpool(const contra::Tensor& dpooled);
  void embedding_backward(const contra::Tensor& dh);

  // Schema values.
  std::int64_t width_, layers_, heads_, mlp_ratio_, output_;
  Pooling pooling_;
  bool causal_;
  std::string key_prefix_;  // "encoder.": how messages name the keys

  // What build() made.
  bool built_ = false;
  std::int64_t length_ = 0;  // L, positions per row
  contra::Vocabulary vocabulary_;
  contra::Parameter token_embedding_, positional_embedding_;
  std::vector<std::unique_ptr<contra::nn::TransformerBlock>> blocks_;
  std::unique_ptr<contra::nn::LayerNorm> ln_final_;
  std::unique_ptr<contra::nn::Linear> projection_;

  // The last forward: its token ids and, per row, the valid positions
  // (bos through eos); activations and gradients, sized once per batch.
  std::int64_t rows_ = 0;
  std::vector<std::int32_t> tokens_, valid_;
  contra::Tensor embedded_, pooled_, dhidden_;
  bool backward_ready_ = false;
};

}  // namespace contra::plugins
