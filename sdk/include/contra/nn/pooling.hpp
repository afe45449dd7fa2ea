#pragma once
/// \file
/// Pooling on NHWC images ([N, H, W, C] f32, cpu) and Flatten. Max pooling is
/// written out (vectorised over channels, OpenMP over output rows); average
/// pooling runs on oneDNN's pooling primitives. Output size per spatial axis,
/// as PyTorch's (ceil_mode = false): floor((H + 2·padding − kernel) / stride)
/// + 1.
///
/// backward() needs a train-mode forward() as the last forward(): max pooling
/// records the positions of its maxima only in train mode. Pooling backward
/// needs neither x nor y, so x may be overwritten after forward().
/// Primitives, workspaces and scratch memory are created once per input shape
/// and cached; steady-state calls allocate no tensors.

#include <contra/nn/layer.hpp>

#include <memory>

namespace contra::nn {

namespace detail {
struct Pool;  // shared implementation, in pooling.cpp
}

/// PyTorch's MaxPool2d(kernel, stride, padding): padded positions never win,
/// the first maximum of a window wins ties (and takes the whole gradient), and
/// a NaN in a window makes its output NaN.
/// Throws UsageError unless kernel >= 1, stride >= 1, 0 <= padding <= kernel/2
/// (PyTorch's limit: no window lies wholly in the padding).
class MaxPool2d final : public Layer {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0);
  ~MaxPool2d() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// PyTorch's AvgPool2d(kernel, stride, padding, ceil_mode = false,
/// count_include_pad). With count_include_pad = true (PyTorch's default, and
/// ours) every window divides by kernel²: the zeros of the padding count;
/// with false, a window divides by the number of its positions inside the
/// image. Same argument limits as MaxPool2d.
class AvgPool2d final : public Layer {
 public:
  AvgPool2d(int kernel, int stride, int padding = 0, bool count_include_pad = true);
  ~AvgPool2d() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// Mean over H and W: [N, H, W, C] → [N, C]. backward() spreads dy / (H·W).
class GlobalAvgPool final : public Layer {
 public:
  GlobalAvgPool();
  ~GlobalAvgPool() override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;

 private:
  std::unique_ptr<detail::Pool> impl_;
};

/// [N, d1, d2, ...] → [N, d1·d2·...] (rank >= 2, any dtype). forward() returns
/// a non-owning view of x (valid while x is) and backward() a non-owning view
/// of dy reshaped to x's shape: nothing is copied.
class Flatten final : public Layer {
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

}  // namespace contra::nn
