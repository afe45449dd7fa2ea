#pragma once
/// \file
/// Layers for encoder plugins, on oneDNN primitives (forward and backward),
/// created once per input shape and cached. Image activations are NHWC
/// ([N, H, W, C], channels last: oneDNN's fast layout here, and PyTorch's
/// `channels_last`); feature activations are [N, D]. Parameters keep
/// PyTorch's layouts (conv weight [O, I, kH, kW], linear weight [O, I]) so
/// that checkpoints read naturally in Python.
///
/// Threads: a layer is used by one thread at a time; oneDNN runs each call on
/// that thread's OpenMP team.

#include <contra/rng.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/tensor.hpp>

#include <string>
#include <vector>

namespace contra::nn {

class Layer {
 public:
  virtual ~Layer();
  Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  /// y = f(x). The result stays valid until the next forward(). In train mode
  /// the layer keeps what backward() needs (it may keep a reference to x:
  /// callers must not overwrite x before backward()).
  virtual const Tensor& forward(const Tensor& x, Mode mode) = 0;

  /// Given dL/dy of the last train-mode forward(), adds dL/dθ into each
  /// parameter's grad and returns dL/dx (undefined when !want_input_grad),
  /// valid until the next call.
  virtual const Tensor& backward(const Tensor& dy, bool want_input_grad = true) = 0;

  /// Appends this layer's parameters, named prefix + "weight", ... .
  virtual void parameters(std::vector<Parameter*>& out) { (void)out; }

  /// Non-trainable state that a checkpoint must keep (running statistics).
  virtual void buffers(std::vector<std::pair<std::string, Tensor*>>& out) { (void)out; }
};

/// Kaiming-uniform bound for a weight with `fan_in` inputs followed by ReLU
/// (gain sqrt(2)): sqrt(6 / fan_in).
double kaiming_uniform_bound(std::int64_t fan_in);

/// Fill an f32 tensor with U(-bound, bound) drawn from `rng`.
void fill_uniform(Tensor& t, double bound, Rng& rng);

/// Fill an f32 tensor with N(0, std²) drawn from `rng` (torch.nn.init.normal_).
void fill_normal(Tensor& t, double std, Rng& rng);

}  // namespace contra::nn
