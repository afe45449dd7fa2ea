#include <contra/cuda/nn.hpp>

#include <contra/batch_stats.hpp>

#include "nn_util.hpp"

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

namespace contra::cuda::nn {

using namespace detail;

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// A device tensor's values on the host, once the stream has reached them.
Tensor download(const Tensor& device) {
  Tensor host = Tensor::empty(device.shape(), device.dtype());
  contra::cuda::copy_to_host(host, device, contra::cuda::current_stream());
  contra::cuda::synchronize(contra::cuda::current_stream());
  return host;
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
  // Synchronised batch norm (contra/batch_stats.hpp): the last forward's
  // global mean and biased variance, its global count, and scratch.
  bool last_synced = false;
  double global_count = 0;
  Tensor sync_mean, sync_var, sums, dgamma_local, dbeta_local, global_terms;

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

  // The statistics of the global batch: local Σx, Σx² (a kernel, in double)
  // and count summed over the ranks on the host, then cuDNN's inference
  // forward with them. Running statistics as the unsynchronised layer.
  void forward_synchronised(const Tensor& x, BatchStatsReducer& reducer) {
    Impl& m = *this;
    const std::int64_t C = m.channels, rows = x.numel() / C;
    m.sums.ensure({4 * C}, DType::f32, Device::cuda);  // room for 2C doubles (tensors hold no f64)
    launch_bn_sums(static_cast<const float*>(x.raw()), rows, C, static_cast<double*>(m.sums.raw()), stream());
    std::vector<double> values(static_cast<std::size_t>(2 * C + 1));
    NN_CUDA(m.who, cudaMemcpyAsync(values.data(), m.sums.raw(), static_cast<std::size_t>(2 * C) * sizeof(double),
                                   cudaMemcpyDeviceToHost, stream()));
    NN_CUDA(m.who, cudaStreamSynchronize(stream()));
    values[static_cast<std::size_t>(2 * C)] = static_cast<double>(rows);
    reducer.sum(values.data(), values.size());
    const double count = values[static_cast<std::size_t>(2 * C)];
    if (count < 2)
      throw UsageError(m.who + ": train mode needs more than one value per channel over the ranks, got " +
                       std::to_string(count));
    Tensor mean = Tensor::empty({C}, DType::f32), var = Tensor::empty({C}, DType::f32);
    Tensor running_mean = download(m.running_mean), running_var = download(m.running_var);
    const float mom = static_cast<float>(m.momentum), unbias = static_cast<float>(count / (count - 1));
    for (std::int64_t c = 0; c < C; ++c) {
      const double mu = values[static_cast<std::size_t>(c)] / count;
      const double v = std::max(0.0, values[static_cast<std::size_t>(C + c)] / count - mu * mu);
      mean.data<float>()[c] = static_cast<float>(mu);
      var.data<float>()[c] = static_cast<float>(v);
      running_mean.data<float>()[c] = (1 - mom) * running_mean.data<float>()[c] + mom * static_cast<float>(mu);
      running_var.data<float>()[c] = (1 - mom) * running_var.data<float>()[c] + mom * static_cast<float>(v) * unbias;
    }
    m.sync_mean = upload(mean);
    m.sync_var = upload(var);
    contra::cuda::copy_to_device(m.running_mean, running_mean, stream());
    contra::cuda::copy_to_device(m.running_var, running_var, stream());
    m.global_count = count;
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(m.who, cudnnBatchNormalizationForwardInference(
                        dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, m.x_desc, x.raw(), m.x_desc, m.y.raw(),
                        m.stats_desc, m.weight.value.raw(), m.bias.value.raw(), m.sync_mean.raw(), m.sync_var.raw(),
                        m.eps));
  }

  // Through fixed global statistics (this rank's dγ, dβ into the parameters'
  // gradients, which the ranks sum), then the global batch's terms of dx from
  // Σdy and Σdy·x̂ summed over the ranks.
  void backward_synchronised(const Tensor& dy, bool want_input_grad) {
    Impl& m = *this;
    const std::int64_t C = m.channels, rows = m.last.numel() / C;
    BatchStatsReducer* reducer = want_input_grad ? batch_stats_reducer() : nullptr;
    if (want_input_grad && !reducer)
      throw UsageError(m.who + ": backward() of a forward() synchronised across ranks needs the batch-statistics "
                               "reducer installed on this thread");
    m.dgamma_local.ensure({C}, DType::f32, Device::cuda);
    m.dbeta_local.ensure({C}, DType::f32, Device::cuda);
    m.dgamma_local.zero();  // the kernel adds into them
    m.dbeta_local.zero();
    if (want_input_grad) m.dx.ensure(m.last, DType::f32, Device::cuda);
    launch_bn_frozen_backward(static_cast<const float*>(m.x.raw()), static_cast<const float*>(dy.raw()),
                              static_cast<const float*>(m.weight.value.raw()),
                              static_cast<const float*>(m.sync_mean.raw()), static_cast<const float*>(m.sync_var.raw()),
                              static_cast<float>(m.eps), rows, C,
                              want_input_grad ? static_cast<float*>(m.dx.raw()) : nullptr,
                              static_cast<float*>(m.dgamma_local.raw()), static_cast<float*>(m.dbeta_local.raw()),
                              stream());
    launch_add(static_cast<const float*>(m.weight.grad.raw()), static_cast<const float*>(m.dgamma_local.raw()),
               static_cast<float*>(m.weight.grad.raw()), C, stream());
    launch_add(static_cast<const float*>(m.bias.grad.raw()), static_cast<const float*>(m.dbeta_local.raw()),
               static_cast<float*>(m.bias.grad.raw()), C, stream());
    if (!want_input_grad) return;
    const Tensor g = download(m.dgamma_local), b = download(m.dbeta_local);
    std::vector<double> values(static_cast<std::size_t>(2 * C));
    for (std::int64_t c = 0; c < C; ++c) {
      values[static_cast<std::size_t>(c)] = g.data<float>()[c];
      values[static_cast<std::size_t>(C + c)] = b.data<float>()[c];
    }
    reducer->sum(values.data(), values.size());
    Tensor global = Tensor::empty({2 * C}, DType::f32);
    for (std::int64_t i = 0; i < 2 * C; ++i) global.data<float>()[i] = static_cast<float>(values[static_cast<std::size_t>(i)]);
    m.global_terms = upload(global);
    const float* sum_dy_xhat = static_cast<const float*>(m.global_terms.raw());
    launch_bn_global_terms(static_cast<const float*>(m.x.raw()), static_cast<const float*>(m.weight.value.raw()),
                           static_cast<const float*>(m.sync_mean.raw()), static_cast<const float*>(m.sync_var.raw()),
                           static_cast<float>(m.eps), sum_dy_xhat, sum_dy_xhat + C, m.global_count, rows, C,
                           static_cast<float*>(m.dx.raw()), stream());
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
  BatchStatsReducer* reducer = mode == Mode::train ? batch_stats_reducer() : nullptr;
  m.last_synced = reducer != nullptr;
  if (reducer) {
    m.forward_synchronised(x, *reducer);
  } else if (mode == Mode::train) {
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
  if (m.last_synced) {
    m.backward_synchronised(dy, want_input_grad);
  } else if (m.last_mode == Mode::train) {
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
