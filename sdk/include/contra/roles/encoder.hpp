#pragma once
/// \file
/// Encoder: maps a batch of images (or feature vectors) to embeddings, and
/// back-propagates gradients into its parameters.

#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>
#include <contra/vocabulary.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra {

/// A trainable tensor and its gradient, owned by the encoder.
struct Parameter {
  std::string name;  ///< stable, unique within the encoder, e.g. "layer1.weight"
  Tensor value;      ///< f32
  Tensor grad;       ///< f32, same shape; the encoder accumulates into it
  bool decay = true; ///< false for biases and normalisation parameters
};

enum class Mode { train, eval };

/// Arithmetic of matrix products and convolutions. Parameters, gradients and
/// optimizer state stay f32 (master weights) in either case.
enum class Precision { f32, bf16 };

/// What an encoder is built for.
struct EncoderContext {
  Shape input;                            ///< per-sample input: [C, H, W], [D], or [L] tokens
  std::uint64_t seed = 0;                 ///< initialisation seed
  Precision precision = Precision::f32;
  /// A text tower's tokenizer (vocabulary.size > 0): the input is then i32
  /// token ids [N, L] (input = [L]), each row `bos`, the text's tokens, `eos`,
  /// then `pad` to the end. size == 0 for images and feature vectors. Since
  /// SDK ABI 4.
  Vocabulary vocabulary;
};

class Encoder : public Plugin {
 public:
  /// Create parameters for inputs of ctx.input = [C, H, W] (images) or [D]
  /// (feature vectors), initialised deterministically from ctx.seed. Called
  /// once, before anything else. Throws ConfigError for an input or precision
  /// it cannot take.
  virtual void build(const EncoderContext& ctx) = 0;
  /// Width D of the embeddings; valid after build().
  virtual std::int64_t output_dim() const = 0;
  /// Parameters, in a stable order; valid after build().
  virtual std::vector<Parameter*> parameters() = 0;

  /// Non-trainable state a checkpoint must keep (batch-norm running
  /// statistics), named and in a stable order; valid after build().
  virtual std::vector<std::pair<std::string, Tensor*>> buffers() { return {}; }

  /// x: [N, C, H, W] or [N, D] f32, or [N, L] i32 token ids. Returns [N, output_dim()] f32, valid until
  /// the next forward(). In train mode, keeps what backward() needs.
  virtual const Tensor& forward(const Tensor& x, Mode mode) = 0;

  /// dy: dL/d(output) of the last train-mode forward(). Adds dL/dθ into each
  /// parameter's grad. Returns dL/dx when `want_input_grad` (an undefined
  /// tensor otherwise), valid until the next call.
  virtual const Tensor& backward(const Tensor& dy, bool want_input_grad) = 0;
};

}  // namespace contra
