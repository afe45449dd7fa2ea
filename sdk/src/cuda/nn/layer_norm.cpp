// LayerNorm and Gelu on the GPU: kernels of this library
// (transformer_kernels.cu), queued on the current stream.
#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"
#include "transformer_kernels.hpp"

#include <sstream>
#include <utility>

namespace contra::cuda::nn {

using namespace detail;

namespace {

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

const float* f32(const Tensor& t) { return static_cast<const float*>(t.raw()); }
float* f32(Tensor& t) { return static_cast<float*>(t.raw()); }

}  // namespace

// LayerNorm ---------------------------------------------------------------------

struct LayerNorm::Impl {
  std::string name, who;  // who: how DeviceErrors name the layer
  std::int64_t features = 0;
  double eps = 1e-5;
  Parameter weight, bias;
  Tensor mean, rstd;  // per row, of the last forward
  Tensor y, dx, scratch, none;
  Tensor x;           // the last forward's input (non-owning)
  bool have_last = false;

  std::string label() const { return "LayerNorm '" + name + "'"; }
};

LayerNorm::LayerNorm(std::string name, std::int64_t features, double eps) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = std::move(name);
  // The CPU layer's checks and messages, before anything needs the GPU.
  if (features < 1)
    throw UsageError(m.label() + ": features must be >= 1, got " + std::to_string(features));
  if (!(eps > 0)) throw UsageError(m.label() + ": eps must be > 0, got " + num(eps));
  contra::cuda::require("LayerNorm (cuda)");
  m.who = m.label() + " (cuda)";
  m.features = features;
  m.eps = eps;
  const std::string prefix = m.name.empty() ? "" : m.name + ".";
  const Shape d{features};
  Tensor ones = Tensor::empty(d, DType::f32);
  for (std::int64_t i = 0; i < features; ++i) ones.data<float>()[i] = 1.0f;
  m.weight.name = prefix + "weight";
  m.weight.value = upload(ones);
  m.weight.grad = Tensor::zeros(d, DType::f32, Device::cuda);
  m.weight.decay = false;
  m.bias.name = prefix + "bias";
  m.bias.value = Tensor::zeros(d, DType::f32, Device::cuda);
  m.bias.grad = Tensor::zeros(d, DType::f32, Device::cuda);
  m.bias.decay = false;
}

LayerNorm::~LayerNorm() = default;

const Tensor& LayerNorm::forward(const Tensor& x, Mode) {
  Impl& m = *impl_;
  if (x.dtype() != DType::f32 || x.device() != Device::cuda || x.rank() != 2 || x.dim(1) != m.features ||
      x.dim(0) <= 0)
    throw UsageError(m.label() + ": expected an f32 cuda tensor [N, " + std::to_string(m.features) +
                     "], N > 0, got " + dtype_name(x.dtype()) + " " + device_name(x.device()) + " " +
                     x.shape().str());
  m.have_last = false;
  const std::int64_t rows = x.dim(0);
  m.y.ensure(x.shape(), DType::f32, Device::cuda);
  m.mean.ensure({rows}, DType::f32, Device::cuda);
  m.rstd.ensure({rows}, DType::f32, Device::cuda);
  // No mode: the statistics are kept either way, so backward() also
  // differentiates an eval-mode forward, as on the CPU.
  launch_layer_norm_forward(f32(x), f32(m.weight.value), f32(m.bias.value), static_cast<float>(m.eps), rows,
                            m.features, f32(m.y), f32(m.mean), f32(m.rstd), stream());
  m.x = view_of(x);
  m.have_last = true;
  return m.y;
}

const Tensor& LayerNorm::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.have_last) throw UsageError(m.label() + ": backward() called without a forward() to differentiate");
  dy.expect(m.x.shape(), DType::f32, (m.label() + " backward dy").c_str());
  expect_device_f32(m.who, dy, "the gradient");
  const std::int64_t rows = m.x.dim(0);
  if (want_input_grad) {
    m.dx.ensure(m.x.shape(), DType::f32, Device::cuda);
    launch_layer_norm_backward_input(f32(m.x), f32(dy), f32(m.weight.value), f32(m.mean), f32(m.rstd), rows,
                                     m.features, f32(m.dx), stream());
  }
  // The parameters' gradients are added, as the CPU layer adds them.
  m.scratch.ensure({layer_norm_params_scratch(rows, m.features)}, DType::f32, Device::cuda);
  launch_layer_norm_backward_params(f32(m.x), f32(dy), f32(m.mean), f32(m.rstd), rows, m.features, f32(m.scratch),
                                    f32(m.weight.grad), f32(m.bias.grad), stream());
  return want_input_grad ? m.dx : m.none;
}

void LayerNorm::parameters(std::vector<Parameter*>& out) {
  out.push_back(&impl_->weight);
  out.push_back(&impl_->bias);
}

std::int64_t LayerNorm::features() const noexcept { return impl_->features; }
double LayerNorm::eps() const noexcept { return impl_->eps; }
Parameter& LayerNorm::weight() noexcept { return impl_->weight; }
Parameter& LayerNorm::bias() noexcept { return impl_->bias; }

// Gelu --------------------------------------------------------------------------

struct Gelu::Impl {
  Tensor x;  // the last train-mode forward's input (non-owning)
  Tensor y, dx, none;
  Shape shape;
  bool trained = false;
};

Gelu::Gelu() {
  contra::cuda::require("GELU (cuda)");
  impl_ = std::make_unique<Impl>();
}

Gelu::~Gelu() = default;

const Tensor& Gelu::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  if (x.dtype() != DType::f32 || x.device() != Device::cuda || !x.defined())
    throw UsageError(std::string("GELU: expected an f32 cuda tensor, got ") + dtype_name(x.dtype()) + " " +
                     device_name(x.device()) + " " + x.shape().str());
  m.trained = false;
  m.shape = x.shape();
  m.y.ensure(x.shape(), DType::f32, Device::cuda);
  if (x.numel() == 0) return m.y;  // as the CPU layer: nothing to differentiate
  launch_gelu_forward(f32(x), f32(m.y), x.numel(), stream());
  if (mode == Mode::train) {
    m.x = view_of(x);
    m.trained = true;
  }
  return m.y;
}

const Tensor& Gelu::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.trained) throw UsageError("GELU: backward() without a train-mode forward()");
  dy.expect(m.shape, DType::f32, "GELU backward dy");
  expect_device_f32("GELU (cuda)", dy, "the gradient");
  if (!want_input_grad) return m.none;
  m.dx.ensure(m.shape, DType::f32, Device::cuda);
  launch_gelu_backward(f32(m.x), f32(dy), f32(m.dx), m.shape.numel(), stream());
  return m.dx;
}

}  // namespace contra::cuda::nn
