#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"

#include <sstream>
#include <utility>

namespace contra::cuda::nn {

using namespace detail;

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

struct BatchNorm::Impl {
  std::string name, who;
  std::int64_t channels = 0;
  double momentum = 0.1, eps = 1e-5;
  Parameter weight, bias;
  Tensor running_mean, running_var;
  Tensor save_mean, save_inv_std;  // of the last train-mode forward (cuDNN's backward reads them)
  TensorDesc x_desc, stats_desc;   // x as [M, C, 1, 1] (see describe()); [1, C, 1, 1]
  Shape desc_shape;
  Shape last;                      // shape of the last forward; rank 0: none to differentiate
  Mode last_mode = Mode::train;
  Tensor x, y, dx, none;

  explicit Impl(std::string n) : name(std::move(n)), who("BatchNorm '" + name + "' (cuda)"), x_desc(who), stats_desc(who) {}

  void check_input(const Tensor& t) const {
    bool ok = t.dtype() == DType::f32 && t.device() == Device::cuda && (t.rank() == 2 || t.rank() == 4) &&
              t.dim(t.rank() - 1) == channels;
    if (!ok)
      throw UsageError("BatchNorm '" + name + "': expected an f32 cuda tensor [N, C] or [N, H, W, C] with C = " +
                       std::to_string(channels) + ", got " + dtype_name(t.dtype()) + " " + device_name(t.device()) +
                       " " + t.shape().str());
  }
  void describe(const Shape& s) {
    if (s == desc_shape) return;
    // The real shape, channels last: NHWC (N, C, H, W), or [N, C] as
    // (N, C, 1, 1). Folding N·H·W into one dimension (as NCHW [N·H·W, C, 1, 1]
    // or NHWC [1, C, N·H·W, 1]) meets cuDNN's caps on a dimension (65535 for
    // the batch in inference) at batch 64 of 32 × 32 images. Any split of the
    // M = N·H·W rows of C values is the same batch norm, so a batch over the
    // cap is described as (n, C, M / n, 1), n the largest divisor of M within it.
    constexpr std::int64_t batch_cap = 65535;
    if (s.rank() == 4 && s[0] <= batch_cap) {
      x_desc.set(who, CUDNN_TENSOR_NHWC, s[0], channels, s[1], s[2]);
    } else if (s.rank() == 2 && s[0] <= batch_cap) {
      x_desc.set(who, CUDNN_TENSOR_NHWC, s[0], channels, 1, 1);
    } else {
      const std::int64_t m = s.numel() / channels;
      std::int64_t n = batch_cap;
      while (m % n != 0) --n;
      x_desc.set(who, CUDNN_TENSOR_NHWC, n, channels, m / n, 1);
    }
    NN_CUDNN(who, cudnnDeriveBNTensorDescriptor(stats_desc, x_desc, CUDNN_BATCHNORM_SPATIAL));
    desc_shape = s;
  }
};

BatchNorm::BatchNorm(std::string name, std::int64_t channels, double momentum, double eps) {
  if (channels < 1)
    throw UsageError("BatchNorm '" + name + "': channels must be >= 1, got " + std::to_string(channels));
  if (!(momentum >= 0 && momentum <= 1))
    throw UsageError("BatchNorm '" + name + "': momentum must be in [0, 1], got " + num(momentum));
  if (!(eps > 0)) throw UsageError("BatchNorm '" + name + "': eps must be > 0, got " + num(eps));
  if (eps < CUDNN_BN_MIN_EPSILON)
    throw UsageError("BatchNorm '" + name + "': eps must be >= " + num(CUDNN_BN_MIN_EPSILON) + " for cuDNN, got " +
                     num(eps));
  contra::cuda::require("BatchNorm (cuda)");
  impl_ = std::make_unique<Impl>(std::move(name));
  Impl& m = *impl_;
  m.channels = channels;
  m.momentum = momentum;
  m.eps = eps;
  const std::string prefix = m.name.empty() ? "" : m.name + ".";
  const Shape c{channels};
  Tensor ones = Tensor::empty(c, DType::f32);
  for (std::int64_t i = 0; i < channels; ++i) ones.data<float>()[i] = 1.0f;
  m.weight.name = prefix + "weight";
  m.weight.value = upload(ones);
  m.weight.grad = Tensor::zeros(c, DType::f32, Device::cuda);
  m.weight.decay = false;
  m.bias.name = prefix + "bias";
  m.bias.value = Tensor::zeros(c, DType::f32, Device::cuda);
  m.bias.grad = Tensor::zeros(c, DType::f32, Device::cuda);
  m.bias.decay = false;
  m.running_mean = Tensor::zeros(c, DType::f32, Device::cuda);
  m.running_var = upload(ones);
  m.save_mean = Tensor::zeros(c, DType::f32, Device::cuda);
  m.save_inv_std = Tensor::zeros(c, DType::f32, Device::cuda);
}

BatchNorm::~BatchNorm() = default;

const Tensor& BatchNorm::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  m.check_input(x);
  const std::int64_t per_channel = x.numel() / m.channels;
  if (mode == Mode::train && per_channel < 2)
    throw UsageError("BatchNorm '" + m.name + "': train mode needs more than one value per channel, got input " +
                     x.shape().str());
  m.last = Shape();
  m.describe(x.shape());
  m.y.ensure(x.shape(), DType::f32, Device::cuda);
  const float one = 1.0f, zero = 0.0f;
  cudnnHandle_t h = dnn();
  if (mode == Mode::train) {
    // Normalises with the biased batch variance; updates running_var with the
    // unbiased one (× M/(M−1)), as PyTorch and the CPU layer do.
    NN_CUDNN(m.who, cudnnBatchNormalizationForwardTraining(
                        h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, m.x_desc, x.raw(), m.x_desc, m.y.raw(), m.stats_desc,
                        m.weight.value.raw(), m.bias.value.raw(), m.momentum, m.running_mean.raw(),
                        m.running_var.raw(), m.eps, m.save_mean.raw(), m.save_inv_std.raw()));
  } else {
    NN_CUDNN(m.who, cudnnBatchNormalizationForwardInference(
                        h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, m.x_desc, x.raw(), m.x_desc, m.y.raw(), m.stats_desc,
                        m.weight.value.raw(), m.bias.value.raw(), m.running_mean.raw(), m.running_var.raw(), m.eps));
  }
  m.x = view_of(x);
  m.last_mode = mode;
  m.last = x.shape();
  return m.y;
}

const Tensor& BatchNorm::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (m.last.rank() == 0)
    throw UsageError("BatchNorm '" + m.name + "': backward() called without a forward() to differentiate");
  dy.expect(m.last, DType::f32, ("BatchNorm '" + m.name + "' backward dy").c_str());
  expect_device_f32(m.who, dy, "the gradient");
  m.describe(m.last);
  if (m.last_mode == Mode::train) {
    // cuDNN always writes dx; the parameter gradients are added (beta = 1).
    m.dx.ensure(m.last, DType::f32, Device::cuda);
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(m.who, cudnnBatchNormalizationBackward(dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &one, m.x_desc,
                                                    m.x.raw(), m.x_desc, dy.raw(), m.x_desc, m.dx.raw(), m.stats_desc,
                                                    m.weight.value.raw(), m.weight.grad.raw(), m.bias.grad.raw(),
                                                    m.eps, m.save_mean.raw(), m.save_inv_std.raw()));
  } else {
    if (want_input_grad) m.dx.ensure(m.last, DType::f32, Device::cuda);
    launch_bn_frozen_backward(static_cast<const float*>(m.x.raw()), static_cast<const float*>(dy.raw()),
                              static_cast<const float*>(m.weight.value.raw()),
                              static_cast<const float*>(m.running_mean.raw()),
                              static_cast<const float*>(m.running_var.raw()), static_cast<float>(m.eps),
                              m.last.numel() / m.channels, m.channels,
                              want_input_grad ? static_cast<float*>(m.dx.raw()) : nullptr,
                              static_cast<float*>(m.weight.grad.raw()), static_cast<float*>(m.bias.grad.raw()),
                              stream());
  }
  return want_input_grad ? m.dx : m.none;
}

void BatchNorm::parameters(std::vector<Parameter*>& out) {
  out.push_back(&impl_->weight);
  out.push_back(&impl_->bias);
}

void BatchNorm::buffers(std::vector<std::pair<std::string, Tensor*>>& out) {
  const std::string prefix = impl_->name.empty() ? "" : impl_->name + ".";
  out.emplace_back(prefix + "running_mean", &impl_->running_mean);
  out.emplace_back(prefix + "running_var", &impl_->running_var);
}

std::int64_t BatchNorm::channels() const noexcept { return impl_->channels; }
double BatchNorm::momentum() const noexcept { return impl_->momentum; }
double BatchNorm::eps() const noexcept { return impl_->eps; }
Parameter& BatchNorm::weight() noexcept { return impl_->weight; }
Parameter& BatchNorm::bias() noexcept { return impl_->bias; }
Tensor& BatchNorm::running_mean() noexcept { return impl_->running_mean; }
Tensor& BatchNorm::running_var() noexcept { return impl_->running_var; }

BatchNormReLU::BatchNormReLU(std::string name, std::int64_t channels, double momentum, double eps)
    : bn_(std::move(name), channels, momentum, eps) {}
BatchNormReLU::~BatchNormReLU() = default;
const Tensor& BatchNormReLU::forward(const Tensor& x, Mode mode) { return relu_.forward(bn_.forward(x, mode), mode); }
const Tensor& BatchNormReLU::backward(const Tensor& dy, bool want_input_grad) {
  return bn_.backward(relu_.backward(dy, true), want_input_grad);
}
void BatchNormReLU::parameters(std::vector<Parameter*>& out) { bn_.parameters(out); }
void BatchNormReLU::buffers(std::vector<std::pair<std::string, Tensor*>>& out) { bn_.buffers(out); }

}  // namespace contra::cuda::nn
