#pragma once
/// \file
/// 2-D convolution on NHWC activations, on oneDNN convolution primitives.

#include <contra/nn/layer.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace contra::nn {

/// How a Conv2d computes. `automatic` (the default) takes Winograd where it
/// applies and pays: 3×3 kernel, stride 1, padding ≤ 2, f32, at least 16
/// input and 16 output channels and 1024 channel pairs (in × out); `direct`
/// is oneDNN's convolution kernels everywhere; `winograd` asks for it (where
/// it applies).
enum class ConvAlgorithm { automatic, direct, winograd };

/// y = conv(x, W) + b with a square kernel, equal stride and symmetric zero
/// padding in both spatial dimensions (PyTorch's nn.Conv2d with groups = 1,
/// dilation = 1).
///
/// - x: [N, H, W, in_channels] f32 (NHWC); y: [N, H', W', out_channels] f32
///   with H' = (H + 2·padding − kernel) / stride + 1 (floor), W' likewise.
/// - Parameters: "<name>.weight" [out, in, kernel, kernel] f32 (PyTorch's
///   OIHW layout) and, when `bias`, "<name>.bias" [out] (decay = false).
/// - Initialisation: PyTorch's default for nn.Conv2d, kaiming_uniform with
///   a = sqrt(5), i.e. U(±1/sqrt(fan_in)) with fan_in = in·kernel², for the
///   weight and (the same bound) the bias, drawn from `init` in that order.
/// - Precision::bf16: the input, the weight and dL/dy are rounded to bf16
///   for the primitives; y, dL/dx and the parameter gradients stay f32.
/// - Primitives, reorders and their buffers are built once per input shape
///   (a few shapes are kept) and reused: a steady-state step allocates
///   nothing.
/// - Winograd F(2×2, 3×3) (Lavin & Gray 2016; see ConvAlgorithm): 2×2 output
///   blocks from 4×4 input patches with 16 instead of 36 multiplications per
///   channel pair, as 16 matrix products over channels; forward, dL/dx and
///   dL/dW. On two AVX2 cores it halves a 128→128 channel 3×3 layer's time
///   (200 → 91 ms forward at [512, 14, 14, 128], build/bench/layers). Results differ from the
///   direct kernels by rounding only (relative 1e-6, checked against PyTorch
///   autograd in float64 by the tests).
class Conv2d final : public Layer {
 public:
  /// Throws UsageError for a non-positive channel count, kernel or stride, or
  /// a negative padding.
  Conv2d(std::string name, std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride,
         int padding, bool bias, Rng& init, Precision precision = Precision::f32);
  ~Conv2d() override;

  /// Throws UsageError for an input that is not f32 [N, H, W, in_channels]
  /// or is smaller than the (padded) kernel.
  const Tensor& forward(const Tensor& x, Mode mode) override;
  /// Throws UsageError before any train-mode forward(), or for a dy whose
  /// shape is not that of the last output.
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  /// The weight, then the bias (if any).
  void parameters(std::vector<Parameter*>& out) override;

  /// Output shape for an NHWC input shape (throws like forward()).
  Shape output_shape(const Shape& nhwc) const;

  Parameter& weight() noexcept { return weight_; }
  /// Null without a bias.
  Parameter* bias() noexcept { return has_bias_ ? &bias_ : nullptr; }
  const std::string& name() const noexcept { return name_; }
  Precision precision() const noexcept { return precision_; }

  /// Number of input shapes with cached primitives (for tests).
  std::size_t cached_shapes() const noexcept;

  /// Chooses the algorithm (default: automatic) for the following calls.
  /// Throws UsageError for `winograd` where it does not apply (naming what is
  /// missing). Call it between a backward() and the next forward().
  void set_algorithm(ConvAlgorithm a);
  /// True when forward() runs by Winograd with the current setting.
  bool uses_winograd() const noexcept;
  /// True when Winograd can compute this layer: 3×3 kernel, stride 1,
  /// padding ≤ 2, f32.
  bool winograd_applies() const noexcept;

 private:
  struct Impl;
  std::string name_;
  std::int64_t in_, out_;
  int kernel_, stride_, padding_;
  bool has_bias_;
  Precision precision_;
  Parameter weight_, bias_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::nn
