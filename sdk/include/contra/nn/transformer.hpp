#pragma once
/// \file
/// A pre-LayerNorm transformer block (CLIP's ResidualAttentionBlock, ViT's
/// Block), from the SDK's layers.

#include <contra/nn/activation.hpp>
#include <contra/nn/attention.hpp>
#include <contra/nn/layer_norm.hpp>
#include <contra/nn/linear.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace contra::nn {

/// y = x' + MLP(LN₂(x')) with x' = x + Attn(LN₁(x)), where Attn is
/// MultiHeadSelfAttention and MLP(h) = GELU(h·W_fcᵀ + b_fc)·W_projᵀ + b_proj
/// (width → mlp_width → width).
///
/// - x, y: [B·L, width] f32 rows, sequence-major as MultiHeadSelfAttention
///   takes them; set_sequences() says how they form sequences.
/// - Parameters, in this order (CLIP's names): "<name>.ln_1.weight",
///   "<name>.ln_1.bias", "<name>.attn.in_proj.weight",
///   "<name>.attn.in_proj.bias", "<name>.attn.out_proj.weight",
///   "<name>.attn.out_proj.bias", "<name>.ln_2.weight", "<name>.ln_2.bias",
///   "<name>.mlp.c_fc.weight" [mlp_width, width], "<name>.mlp.c_fc.bias",
///   "<name>.mlp.c_proj.weight" [width, mlp_width], "<name>.mlp.c_proj.bias".
///   Initialised as each layer's PyTorch counterpart, drawn from `init` in
///   that order (the layer norms draw nothing).
/// - The block keeps a non-owning reference to x (its first layer norm's
///   input) until the next forward(): callers must keep x alive and
///   unchanged until backward(). backward() needs a train-mode forward() as
///   the last forward(). Buffers are sized once per shape and reused.
class TransformerBlock final : public Layer {
 public:
  /// Throws UsageError for a width, heads or mlp_width the layers refuse
  /// (heads must divide width); DeviceError for bf16 on a CPU without it.
  TransformerBlock(std::string name, std::int64_t width, std::int64_t heads, std::int64_t mlp_width, Rng& init,
                   Precision precision = Precision::f32, bool causal = false);
  ~TransformerBlock() override;

  /// Its parameters' values (weights and biases of the layer norms, the
  /// attention's projections and the MLP), counted without building one:
  /// what encoders check against the machine's memory before allocating.
  static std::uint64_t parameter_count(std::int64_t width, std::int64_t mlp_width) {
    const auto w = static_cast<std::uint64_t>(width), hidden = static_cast<std::uint64_t>(mlp_width);
    return 4 * w                    // two layer norms
           + 3 * w * w + 3 * w      // in_proj
           + w * w + w              // out_proj
           + hidden * w + hidden    // mlp.c_fc
           + w * hidden + w;        // mlp.c_proj
  }

  /// MultiHeadSelfAttention::set_sequences() of the attention.
  void set_sequences(std::int64_t length, std::span<const std::int32_t> valid = {});

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;

  LayerNorm& ln_1() noexcept { return ln_1_; }
  MultiHeadSelfAttention& attention() noexcept { return attn_; }
  LayerNorm& ln_2() noexcept { return ln_2_; }
  Linear& mlp_fc() noexcept { return fc_; }
  Linear& mlp_proj() noexcept { return proj_; }

 private:
  std::string name_;
  LayerNorm ln_1_;
  MultiHeadSelfAttention attn_;
  LayerNorm ln_2_;
  Linear fc_;
  Gelu gelu_;
  Linear proj_;
  Tensor mid_;       // x' = x + Attn(LN₁(x))
  Tensor y_;
  Tensor dmid_, dx_;  // dL/dx', dL/dx
  Tensor none_;
  bool trained_ = false;  // the last forward ran in train mode
};

}  // namespace contra::nn
