#pragma once
/// \file
/// The GPU twins of the layers in contra/nn/ (implemented in libcontra_cuda,
/// built only with CUDA; for `*_cuda` encoder plugins). No CUDA header is
/// included here.
///
/// Each class has the same constructor arguments, parameter names, layouts
/// and initialisation as its CPU twin: the initial values are drawn on the
/// host from the same Rng, in the same order, then copied to the GPU, so a CPU
/// and a GPU model built from the same seed start with identical weights.
/// Forward and backward follow the CPU semantics documented in contra/nn/;
/// the differences are listed per class.
///
/// - Tensors (inputs, outputs, parameters, gradients, buffers) are f32 on
///   Device::cuda. Image activations are NHWC, as on the CPU; cuDNN runs on
///   NHWC descriptors directly, so nothing is transposed between layers.
/// - Every call is queued on contra::cuda::current_stream() (cuDNN and cuBLAS
///   through that stream's handles) and returns without
///   synchronising; results are valid in stream order.
/// - Matrix products and convolutions follow contra::cuda::math_mode() at the
///   time of the call: strict_f32 uses FMA kernels only (no tensor cores),
///   tf32 and bf16 allow TF32 tensor cores. A layer built with
///   Precision::bf16 uses bf16 products (Linear) or TF32 convolutions
///   (Conv2d: cuDNN has no bf16-input path for f32 tensors) in every mode.
/// - Constructors call contra::cuda::require(): without a usable GPU they throw
///   DeviceError("no usable GPU: ..."). Wrong inputs throw UsageError naming
///   the layer, what was found and what was expected; a failing CUDA, cuDNN
///   or cuBLAS call throws DeviceError naming the call and its status.
/// - Layers keep non-owning views of the inputs backward() needs (Conv2d,
///   Linear, BatchNorm, MaxPool2d, AvgPool2d, GlobalAvgPool): callers keep x
///   alive and unchanged until backward(), as the layers of an encoder do.
///
/// Sequential needs no twin: contra::nn::Sequential (contra/nn/sequential.hpp)
/// only calls its layers, and works the same with these.
///
/// Threads: a layer is used by one thread at a time.

#include <contra/nn/layer.hpp>
#include <contra/rng.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace contra::cuda::nn {

/// contra::nn::Conv2d on cuDNN: same arguments, parameters ("<name>.weight"
/// [out, in, k, k] OIHW, "<name>.bias" [out]) and initialisation. For each
/// input shape and math mode (a few are kept) the forward, backward-data and
/// backward-filter algorithms are chosen once with cuDNN's heuristics
/// (deterministic ones preferred) and their workspace is taken from the
/// caching allocator. The OIHW weight is rearranged to OHWI (cuDNN's NHWC
/// filter layout) at each forward, and the OHWI weight gradient added back
/// into the OIHW grad (for 1x1 kernels the two layouts coincide).
class Conv2d final : public contra::nn::Layer {
 public:
  /// Throws UsageError like the CPU layer; DeviceError without a usable GPU.
  Conv2d(std::string name, std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride,
         int padding, bool bias, Rng& init, Precision precision = Precision::f32);
  ~Conv2d() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;

  /// Output shape for an NHWC input shape (throws like forward()).
  Shape output_shape(const Shape& nhwc) const;
  Parameter& weight() noexcept { return weight_; }
  Parameter* bias() noexcept { return has_bias_ ? &bias_ : nullptr; }
  const std::string& name() const noexcept { return name_; }
  Precision precision() const noexcept { return precision_; }
  /// Input shapes (per math mode) with chosen algorithms (for tests).
  std::size_t cached_shapes() const noexcept;

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

/// contra::nn::Linear on cuBLAS (cublasGemmEx; f32 in and out): same
/// arguments, parameters ("<name>.weight" [out, in], "<name>.bias" [out]) and
/// initialisation. Precision::bf16: the products round x, the weight and dL/dy
/// to bf16 with f32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF), as the CPU
/// layer does; the bias gradient is summed from the f32 dL/dy.
class Linear final : public contra::nn::Layer {
 public:
  Linear(std::string name, std::int64_t in_features, std::int64_t out_features, bool bias, Rng& init,
         Precision precision = Precision::f32);
  ~Linear() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  Parameter& weight() noexcept { return weight_; }
  Parameter* bias() noexcept { return has_bias_ ? &bias_ : nullptr; }
  const std::string& name() const noexcept { return name_; }
  Precision precision() const noexcept { return precision_; }

 private:
  struct Impl;
  std::string name_;
  std::int64_t in_, out_;
  bool has_bias_;
  Precision precision_;
  Parameter weight_, bias_;
  std::unique_ptr<Impl> impl_;
};

/// contra::nn::BatchNorm on cuDNN's spatial batch normalisation, for
/// [N, H, W, C] (NHWC) or [N, C]: same arguments, parameters, buffers
/// ("<name>.running_mean", "<name>.running_var", on cuda) and running
/// statistics update (momentum, unbiased variance). backward() after an
/// eval-mode forward() differentiates through the fixed running statistics
/// (a frozen batch norm), as on the CPU, with a kernel of this library.
class BatchNorm final : public contra::nn::Layer {
 public:
  BatchNorm(std::string name, std::int64_t channels, double momentum = 0.1, double eps = 1e-5);
  ~BatchNorm() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, Tensor*>>& out) override;

  std::int64_t channels() const noexcept;
  double momentum() const noexcept;
  double eps() const noexcept;
  Parameter& weight() noexcept;
  Parameter& bias() noexcept;
  Tensor& running_mean() noexcept;  ///< [C] f32 on cuda
  Tensor& running_var() noexcept;   ///< [C] f32 on cuda

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// y = max(x, 0) on cuDNN (any shape). backward() (a kernel of this library:
/// dL/dx = dL/dy where y > 0, else 0, the CPU layer's rule) uses the saved
/// output, so x may be overwritten after forward().
class ReLU final : public contra::nn::Layer {
 public:
  ReLU();
  ~ReLU() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// contra::nn::BatchNormReLU on cuDNN: the BatchNorm, then the ReLU (two
/// passes here; one on the CPU). Same arguments, parameters, buffers and
/// names as BatchNorm.
class BatchNormReLU final : public contra::nn::Layer {
 public:
  BatchNormReLU(std::string name, std::int64_t channels, double momentum = 0.1, double eps = 1e-5);
  ~BatchNormReLU() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, Tensor*>>& out) override;

  /// The normalisation: parameters, statistics, momentum and eps.
  BatchNorm& batch_norm() noexcept { return bn_; }

 private:
  BatchNorm bn_;
  ReLU relu_;
};

namespace detail {
struct Pool;  // shared implementation, in pooling.cpp
}

/// contra::nn::MaxPool2d on cuDNN (deterministic max pooling; padded positions
/// never win). Unlike the CPU layer, backward() reads x again (cuDNN keeps no
/// record of the maxima): keep x unchanged until backward().
class MaxPool2d final : public contra::nn::Layer {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0);
  ~MaxPool2d() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// contra::nn::AvgPool2d on cuDNN (count_include_pad as on the CPU).
class AvgPool2d final : public contra::nn::Layer {
 public:
  AvgPool2d(int kernel, int stride, int padding = 0, bool count_include_pad = true);
  ~AvgPool2d() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// contra::nn::GlobalAvgPool on cuDNN: [N, H, W, C] → [N, C].
class GlobalAvgPool final : public contra::nn::Layer {
 public:
  GlobalAvgPool();
  ~GlobalAvgPool() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// contra::nn::Flatten for device tensors: [N, d1, ...] → [N, d1·...] as a
/// non-owning view (nothing is copied or queued).
class Flatten final : public contra::nn::Layer {
 public:
  Flatten() = default;
  ~Flatten() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  Shape in_;
  Tensor y_, dx_;
  bool trained_ = false;
};

/// contra::nn::LayerNorm with kernels of this library: same arguments,
/// parameters ("<name>.weight" γ [D], initially 1; "<name>.bias" β [D],
/// initially 0; both decay = false) and semantics (biased row variance, no
/// mode). One block per row (two-pass mean and variance in f32); backward
/// sums dγ and dβ over rows in a second kernel (no atomics: results do not
/// depend on scheduling). Keeps a non-owning view of x until backward().
class LayerNorm final : public contra::nn::Layer {
 public:
  /// Throws UsageError unless features >= 1 and eps > 0 (the CPU layer's
  /// messages); DeviceError without a usable GPU.
  LayerNorm(std::string name, std::int64_t features, double eps = 1e-5);
  ~LayerNorm() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t features() const noexcept;
  double eps() const noexcept;
  Parameter& weight() noexcept;
  Parameter& bias() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// contra::nn::Gelu (the exact, erf-based GELU) as a kernel of this library,
/// for an f32 cuda tensor of any shape. Keeps a non-owning view of x until
/// backward(); backward() needs a train-mode forward() as the last one.
class Gelu final : public contra::nn::Layer {
 public:
  Gelu();
  ~Gelu() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// contra::nn::MultiHeadSelfAttention on the GPU: same arguments, parameter
/// names, initialisation, masks and row layout (x, y: [B·L, width],
/// sequence-major; padded queries give b_out). The projections are this
/// library's Linear; Q·Kᵀ and P·V are strided-batched cuBLAS products over
/// (sample, head) in the math mode of the call (Precision::bf16: bf16
/// products with f32 accumulation); the masked softmax and its backward are
/// kernels of this library. set_sequences() takes the valid lengths on the
/// host and copies them to the device.
class MultiHeadSelfAttention final : public contra::nn::Layer {
 public:
  MultiHeadSelfAttention(std::string name, std::int64_t width, std::int64_t heads, Rng& init,
                         Precision precision = Precision::f32, bool causal = false);
  ~MultiHeadSelfAttention() override;

  /// As the CPU layer's (same checks and messages).
  void set_sequences(std::int64_t length, std::span<const std::int32_t> valid = {});
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  /// in_proj.weight, in_proj.bias, out_proj.weight, out_proj.bias.
  void parameters(std::vector<Parameter*>& out) override;

  std::int64_t width() const noexcept;
  std::int64_t heads() const noexcept;
  bool causal() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// contra::nn::TransformerBlock from the GPU layers above: same arguments,
/// parameters (names, order, initial draws), semantics and row layout.
class TransformerBlock final : public contra::nn::Layer {
 public:
  TransformerBlock(std::string name, std::int64_t width, std::int64_t heads, std::int64_t mlp_width, Rng& init,
                   Precision precision = Precision::f32, bool causal = false);
  ~TransformerBlock() override;

  void set_sequences(std::int64_t length, std::span<const std::int32_t> valid = {});
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;

 private:
  std::string name_;
  LayerNorm ln_1_;
  MultiHeadSelfAttention attn_;
  LayerNorm ln_2_;
  Linear fc_;
  Gelu gelu_;
  Linear proj_;
  Tensor mid_, y_, dmid_, dx_, none_;
  bool trained_ = false;
};

/// out = a + b for f32 cuda tensors of the same shape (contra::nn::add): out
/// is ensure()d to it, and may be a or b itself; any other overlap is a
/// UsageError.
void add(const Tensor& a, const Tensor& b, Tensor& out);
/// into += from (contra::nn::accumulate), f32 cuda tensors of the same shape.
void accumulate(Tensor& into, const Tensor& from);

/// [N, C, H, W] → [N, H, W, C] into `out` (reused) on the current stream; for
/// C = 1 the layouts coincide and `out` becomes a view of x.
void nchw_to_nhwc(const Tensor& x, Tensor& out);
/// [N, H, W, C] → [N, C, H, W] into `out` (reused) on the current stream.
void nhwc_to_nchw(const Tensor& x, Tensor& out);

}  // namespace contra::cuda::nn
