#pragma once
/// \file
/// Multi-head self-attention over batches of sequences stored as rows, with a
/// key padding mask and an optional causal mask.

#include <contra/nn/layer.hpp>
#include <contra/nn/linear.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace contra::nn {

/// PyTorch's nn.MultiheadAttention(width, heads) applied as self-attention
/// (query = key = value = x), with its key_padding_mask and, when `causal`,
/// the attn_mask that hides later positions (CLIP's text transformer).
///
/// - x: [B·L, width] f32 rows, sequence-major: row b·L + t is position t of
///   sample b (set_sequences() says L, and which positions are real).
///   y: [B·L, width].
/// - Per head h of dh = width / heads features, with Q, K, V the rows of the
///   fused input projection qkv = x·W_inᵀ + b_in ([B·L, 3·width]: Q, then K,
///   then V, each split into heads of dh consecutive features):
///   P = softmax(Q_h K_hᵀ / sqrt(dh)) over the keys a query may see (the
///   sample's valid positions, and with `causal` only those at or before
///   the query), O_h = P V_h; y = concat_h(O_h)·W_outᵀ + b_out.
/// - Padded positions (t >= valid[b]) are never attended to. They are not
///   computed as queries either: their attention output is zero, so their
///   row of y is b_out. (PyTorch computes them from the valid keys; no valid
///   row depends on them, and neither does anything downstream that reads
///   only valid rows.)
/// - Parameters: "<name>.in_proj.weight" [3·width, width] and
///   "<name>.in_proj.bias" [3·width] (PyTorch's in_proj_weight and
///   in_proj_bias), "<name>.out_proj.weight" [width, width] and
///   "<name>.out_proj.bias" [width]; biases decay = false. Initialisation
///   as PyTorch's: in_proj.weight Xavier-uniform (U(±sqrt(6 / (4·width)))),
///   out_proj.weight U(±1/sqrt(width)), both biases 0; drawn from `init`.
/// - Products: the projections are nn::Linear (oneDNN matmul; bf16 products
///   with Precision::bf16 where the CPU has them, else a DeviceError from the
///   constructor); the per-head products Q·Kᵀ and P·V are f32 sgemm calls,
///   one set per (sample, head), spread over the calling thread's OpenMP
///   team together with the softmax. Each (sample, head) is computed by one
///   thread: results do not depend on the thread count.
/// - Buffers are sized on the first call of a shape and reused.
class MultiHeadSelfAttention final : public Layer {
 public:
  /// Throws UsageError unless width >= 1, heads >= 1 and heads divides
  /// width; DeviceError for bf16 on a CPU without it.
  MultiHeadSelfAttention(std::string name, std::int64_t width, std::int64_t heads, Rng& init,
                         Precision precision = Precision::f32, bool causal = false);
  ~MultiHeadSelfAttention() override;

  /// How the rows of the following forward() calls form sequences: `length`
  /// positions each, and sample b's first valid[b] positions are real
  /// (1 <= valid[b] <= length; an empty `valid`: every position of every
  /// sample is real, whatever the batch size). Copied; kept until the next
  /// call. A train-mode forward() keeps its own copy for backward().
  /// Throws UsageError for length < 1 or a valid[b] out of range.
  void set_sequences(std::int64_t length, std::span<const std::int32_t> valid = {});

  /// Throws UsageError before set_sequences(), for an input that is not f32
  /// [N, width] with N a multiple of the length, or, when valid was given,
  /// N != valid.size() · length.
  const Tensor& forward(const Tensor& x, Mode mode) override;
  /// Differentiates the last forward(), which must have been in train mode
  /// (UsageError otherwise, or for a dy of another shape). Adds into the
  /// four parameters' grads.
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  /// in_proj.weight, in_proj.bias, out_proj.weight, out_proj.bias.
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t width() const noexcept { return width_; }
  std::int64_t heads() const noexcept { return heads_; }
  bool causal() const noexcept { return causal_; }
  Linear& in_proj() noexcept;
  Linear& out_proj() noexcept;

 private:
  struct Impl;
  std::string name_;
  std::int64_t width_, heads_;
  bool causal_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
