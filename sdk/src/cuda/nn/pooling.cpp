// Pooling, ReLU, Flatten, the residual add and the NCHW/NHWC rearrangements
// on the GPU.
#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"

#include <utility>

namespace contra::cuda::nn {

using namespace detail;

namespace detail {

struct Pool {
  std::string who;  // "MaxPool2d (cuda)", ...
  std::string cpu_who;
  cudnnPoolingMode_t alg;
  int kernel, stride, padding;
  bool global = false;
  PoolDesc pool;
  TensorDesc x_desc, y_desc;
  Shape in, out;          // shapes the descriptors describe
  bool trained = false;   // the last forward ran in train mode
  Tensor x, y, dx, none;

  Pool(std::string name, cudnnPoolingMode_t a, int k, int s, int p)
      : who(name + " (cuda)"), cpu_who(std::move(name)), alg(a), kernel(k), stride(s), padding(p), pool(who),
        x_desc(who), y_desc(who) {
    if (k < 1) throw UsageError(cpu_who + ": kernel must be >= 1, got " + std::to_string(k));
    if (s < 1) throw UsageError(cpu_who + ": stride must be >= 1, got " + std::to_string(s));
    if (p < 0 || p > k / 2)
      throw UsageError(cpu_who + ": padding must be in [0, kernel/2] = [0, " + std::to_string(k / 2) + "], got " +
                       std::to_string(p));
  }

  void describe(const Shape& s) {
    if (s == in) return;
    const std::int64_t n = s[0], h = s[1], w = s[2], c = s[3];
    int kh = kernel, kw = kernel, st = stride, pd = padding;
    Shape o;
    if (global) {
      kh = as_int(who, h, "H");
      kw = as_int(who, w, "W");
      st = 1;
      pd = 0;
      o = Shape{n, c};
    } else {
      o = Shape{n, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1, c};
    }
    NN_CUDNN(who, cudnnSetPooling2dDescriptor(pool, alg, CUDNN_PROPAGATE_NAN, kh, kw, pd, pd, st, st));
    x_desc.set(who, CUDNN_TENSOR_NHWC, n, c, h, w);
    const std::int64_t oh = global ? 1 : o[1], ow = global ? 1 : o[2];
    y_desc.set(who, CUDNN_TENSOR_NHWC, n, c, oh, ow);  // for global: the same bytes as [N, C]
    int gn = 0, gc = 0, gh = 0, gw = 0;
    NN_CUDNN(who, cudnnGetPooling2dForwardOutputDim(pool, x_desc, &gn, &gc, &gh, &gw));
    if (gn != n || gc != c || gh != oh || gw != ow)
      throw DeviceError(who + ": cuDNN computes an output of [" + std::to_string(gn) + ", " + std::to_string(gh) +
                        ", " + std::to_string(gw) + ", " + std::to_string(gc) + "] for input " + s.str() +
                        ", expected [" + std::to_string(n) + ", " + std::to_string(oh) + ", " + std::to_string(ow) +
                        ", " + std::to_string(c) + "]");
    in = s;
    out = o;
  }

  const Tensor& forward(const Tensor& t, Mode mode) {
    if (t.rank() != 4 || t.dtype() != DType::f32 || t.device() != Device::cuda)
      throw UsageError(cpu_who + ": expected an f32 cuda NHWC tensor [N, H, W, C], got " + dtype_name(t.dtype()) +
                       " " + device_name(t.device()) + " " + t.shape().str());
    if (!global && (t.dim(1) + 2 * padding < kernel || t.dim(2) + 2 * padding < kernel))
      throw UsageError(cpu_who + ": input " + t.shape().str() +
                       " is smaller than the kernel: H + 2*padding and W + 2*padding must be >= " +
                       std::to_string(kernel));
    trained = false;
    describe(t.shape());
    y.ensure(out, DType::f32, Device::cuda);
    if (t.numel() == 0) return y;
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(who, cudnnPoolingForward(dnn(), pool, &one, x_desc, t.raw(), &zero, y_desc, y.raw()));
    if (mode == Mode::train) {
      x = view_of(t);
      trained = true;
    }
    return y;
  }

  const Tensor& backward(const Tensor& dy, bool want_input_grad) {
    if (!trained) throw UsageError(cpu_who + ": backward() without a train-mode forward()");
    dy.expect(out, DType::f32, (cpu_who + " backward dy").c_str());
    expect_device_f32(who, dy, "the gradient");
    if (!want_input_grad) return none;
    dx.ensure(in, DType::f32, Device::cuda);
    if (dx.numel() == 0) return dx;
    describe(in);
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(who, cudnnPoolingBackward(dnn(), pool, &one, y_desc, y.raw(), y_desc, dy.raw(), x_desc, x.raw(), &zero,
                                       x_desc, dx.raw()));
    return dx;
  }
};

}  // namespace detail

MaxPool2d::MaxPool2d(int kernel, int stride, int padding) {
  auto p = std::make_unique<detail::Pool>("MaxPool2d", CUDNN_POOLING_MAX_DETERMINISTIC, kernel, stride, padding);
  contra::cuda::require("MaxPool2d (cuda)");
  impl_ = std::move(p);
}
MaxPool2d::~MaxPool2d() = default;
const Tensor& MaxPool2d::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& MaxPool2d::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

AvgPool2d::AvgPool2d(int kernel, int stride, int padding, bool count_include_pad) {
  auto p = std::make_unique<detail::Pool>("AvgPool2d",
                                          count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                                            : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                                          kernel, stride, padding);
  contra::cuda::require("AvgPool2d (cuda)");
  impl_ = std::move(p);
}
AvgPool2d::~AvgPool2d() = default;
const Tensor& AvgPool2d::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& AvgPool2d::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

GlobalAvgPool::GlobalAvgPool() {
  contra::cuda::require("GlobalAvgPool (cuda)");
  impl_ = std::make_unique<detail::Pool>("GlobalAvgPool", CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING, 1, 1, 0);
  impl_->global = true;
}
GlobalAvgPool::~GlobalAvgPool() = default;
const Tensor& GlobalAvgPool::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& GlobalAvgPool::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

// ReLU ----------------------------------------------------------------------

struct ReLU::Impl {
  std::string who = "ReLU (cuda)";
  ActDesc act{who};
  TensorDesc desc{who};  // the tensor as [1, 1, 1, numel]
  std::int64_t desc_n = -1;
  bool trained = false;
  Tensor y, dx, none;

  void describe(std::int64_t n) {
    if (n == desc_n) return;
    desc.set(who, CUDNN_TENSOR_NCHW, 1, 1, 1, n);
    desc_n = n;
  }
};

ReLU::ReLU() {
  contra::cuda::require("ReLU (cuda)");
  impl_ = std::make_unique<Impl>();
  NN_CUDNN(impl_->who, cudnnSetActivationDescriptor(impl_->act, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
}
ReLU::~ReLU() = default;

const Tensor& ReLU::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  if (x.dtype() != DType::f32 || x.device() != Device::cuda || !x.defined())
    throw UsageError(std::string("ReLU: expected an f32 cuda tensor, got ") + dtype_name(x.dtype()) + " " +
                     device_name(x.device()) + " " + x.shape().str());
  m.trained = false;
  m.y.ensure(x.shape(), DType::f32, Device::cuda);
  if (x.numel() > 0) {
    m.describe(x.numel());
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(m.who, cudnnActivationForward(dnn(), m.act, &one, m.desc, x.raw(), &zero, m.desc, m.y.raw()));
  }
  m.trained = mode == Mode::train;
  return m.y;
}

const Tensor& ReLU::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.trained) throw UsageError("ReLU: backward() without a train-mode forward()");
  dy.expect(m.y.shape(), DType::f32, "ReLU backward dy");
  expect_device_f32(m.who, dy, "the gradient");
  if (!want_input_grad) return m.none;
  m.dx.ensure(m.y.shape(), DType::f32, Device::cuda);
  // From y alone (y > 0 exactly where x > 0), so x need not be kept.
  launch_relu_backward(static_cast<const float*>(m.y.raw()), static_cast<const float*>(dy.raw()),
                       static_cast<float*>(m.dx.raw()), m.y.numel(), stream());
  return m.dx;
}

// Flatten -------------------------------------------------------------------

Flatten::~Flatten() = default;

const Tensor& Flatten::forward(const Tensor& x, Mode mode) {
  if (x.rank() < 2)
    throw UsageError("Flatten: expected a tensor of rank >= 2 [N, ...], got " + std::string(dtype_name(x.dtype())) +
                     " " + device_name(x.device()) + " " + x.shape().str());
  in_ = x.shape();
  std::int64_t rest = 1;
  for (int i = 1; i < x.rank(); ++i) rest *= x.dim(i);
  y_ = Tensor::wrap(const_cast<void*>(x.raw()), Shape{x.dim(0), rest}, x.dtype(), x.device());
  trained_ = mode == Mode::train;
  return y_;
}

const Tensor& Flatten::backward(const Tensor& dy, bool want_input_grad) {
  if (!trained_) throw UsageError("Flatten: backward() without a train-mode forward()");
  dy.expect(y_.shape(), y_.dtype(), "Flatten backward dy");
  if (!want_input_grad) {
    static const Tensor none;
    return none;
  }
  dx_ = Tensor::wrap(const_cast<void*>(dy.raw()), in_, dy.dtype(), dy.device());
  return dx_;
}

// Residual add ----------------------------------------------------------------

namespace {

bool overlaps(const Tensor& a, const Tensor& b) {
  const char* pa = static_cast<const char*>(a.raw());
  const char* pb = static_cast<const char*>(b.raw());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  expect_device_f32("add (cuda)", a, "a");
  expect_device_f32("add (cuda)", b, "b");
  if (a.shape() != b.shape())
    throw UsageError("add: shapes differ: a is " + a.shape().str() + ", b is " + b.shape().str());
  // Read the operands' addresses before ensure(): out may be one of them.
  const Tensor va = view_of(a), vb = view_of(b);
  out.ensure(a.shape(), DType::f32, Device::cuda);
  if ((out.raw() != va.raw() && overlaps(out, va)) || (out.raw() != vb.raw() && overlaps(out, vb)))
    throw UsageError("add: out overlaps a or b without being the same tensor");
  launch_add(static_cast<const float*>(va.raw()), static_cast<const float*>(vb.raw()),
             static_cast<float*>(out.raw()), va.numel(), stream());
}

void accumulate(Tensor& into, const Tensor& from) {
  expect_device_f32("accumulate (cuda)", into, "into");
  expect_device_f32("accumulate (cuda)", from, "from");
  if (into.shape() != from.shape())
    throw UsageError("accumulate: shapes differ: into is " + into.shape().str() + ", from is " + from.shape().str());
  if (into.raw() != from.raw() && overlaps(into, from))
    throw UsageError("accumulate: into and from overlap without being the same tensor");
  launch_add(static_cast<const float*>(into.raw()), static_cast<const float*>(from.raw()),
             static_cast<float*>(into.raw()), into.numel(), stream());
}

// Layouts -----------------------------------------------------------------------

namespace {

void transform(const char* who, const Tensor& x, cudnnTensorFormat_t from, cudnnTensorFormat_t to, std::int64_t n,
               std::int64_t c, std::int64_t h, std::int64_t w, Tensor& out, const Shape& out_shape) {
  expect_device_f32(who, x, "the input");
  out.ensure(out_shape, DType::f32, Device::cuda);
  if (x.numel() == 0) return;
  TensorDesc src(who), dst(who);
  src.set(who, from, n, c, h, w);
  dst.set(who, to, n, c, h, w);
  const float one = 1.0f, zero = 0.0f;
  NN_CUDNN(who, cudnnTransformTensor(dnn(), &one, src, x.raw(), &zero, dst, out.raw()));
}

}  // namespace

void nchw_to_nhwc(const Tensor& x, Tensor& out) {
  if (x.rank() != 4) throw UsageError("nchw_to_nhwc: expected [N, C, H, W], got " + x.shape().str());
  const std::int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (c == 1) {
    expect_device_f32("nchw_to_nhwc (cuda)", x, "the input");
    out = x.reshape({n, h, w, 1});
    return;
  }
  transform("nchw_to_nhwc (cuda)", x, CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NHWC, n, c, h, w, out, Shape{n, h, w, c});
}

void nhwc_to_nchw(const Tensor& x, Tensor& out) {
  if (x.rank() != 4) throw UsageError("nhwc_to_nchw: expected [N, H, W, C], got " + x.shape().str());
  const std::int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  transform("nhwc_to_nchw (cuda)", x, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NCHW, n, c, h, w, out, Shape{n, c, h, w});
}

}  // namespace contra::cuda::nn
