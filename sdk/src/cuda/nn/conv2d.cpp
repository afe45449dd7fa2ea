#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

namespace contra::cuda::nn {

using namespace detail;

namespace {

constexpr std::size_t max_plans = 4;             // input shapes kept (train, last partial batch, eval)
constexpr std::size_t max_workspace = 1ull << 30;  // algorithms needing more are passed over

bool strict() { return contra::cuda::math_mode() == contra::cuda::MathMode::strict_f32; }

bool tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// From cuDNN's heuristic ranking: the first result that succeeded, fits the
// math mode (no tensor cores in strict mode, never a conversion to f16) and
// the workspace limit, deterministic ones first.
template <class Perf>
const Perf& choose(const std::string& who, const char* what, const std::vector<Perf>& perf, int count,
                   bool allow_tensor_ops) {
  const Perf* any = nullptr;
  for (int i = 0; i < count; ++i) {
    const Perf& r = perf[i];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > max_workspace) continue;
    if (!allow_tensor_ops && tensor_op(r.mathType)) continue;
    if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;  // f16 inputs: coarser than TF32
    if (r.determinism == CUDNN_DETERMINISTIC) return r;
    if (!any) any = &r;
  }
  if (any) return *any;
  throw DeviceError(who + ": cuDNN offers no " + what + " algorithm for this shape" +
                    (allow_tensor_ops ? "" : " without tensor cores (math mode strict_f32)"));
}

}  // namespace

struct Conv2d::Impl {
  struct Plan {
    Shape in, out;
    bool tensor_ops = false;  // math mode the plan was made for
    std::uint64_t used = 0;
    TensorDesc x, y;
    ConvDesc conv;
    cudnnConvolutionFwdAlgo_t fwd{};
    cudnnConvolutionBwdDataAlgo_t bwd_data{};
    cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
    cudnnMathType_t fwd_math{}, data_math{}, filter_math{};
    bool bwd_chosen = false;
    std::size_t workspace = 0;
    explicit Plan(const std::string& who) : x(who), y(who), conv(who) {}
  };

  std::string who;
  FilterDesc w;                 // [out, in, k, k] in OHWI (cuDNN's NHWC filter layout)
  TensorDesc oihw, ohwi, bias;  // the weight as a tensor in either layout; the bias [1, out, 1, 1]
  std::vector<std::unique_ptr<Plan>> plans;
  std::uint64_t clock = 0;
  Plan* train = nullptr;  // plan of the last train-mode forward
  Tensor x;               // view of the last train-mode input
  Tensor w_ohwi, dw_ohwi, workspace, y, dx, none;

  explicit Impl(std::string name) : who(std::move(name)), w(who), oihw(who), ohwi(who), bias(who) {}

  void reserve(std::size_t bytes) {
    if (bytes > workspace.nbytes() || !workspace.defined())
      workspace.ensure({static_cast<std::int64_t>(bytes > 0 ? bytes : 1)}, DType::u8, Device::cuda);
  }
};

Conv2d::Conv2d(std::string name, std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride,
               int padding, bool bias, Rng& init, Precision precision)
    : name_(std::move(name)),
      in_(in_channels),
      out_(out_channels),
      kernel_(kernel),
      stride_(stride),
      padding_(padding),
      has_bias_(bias),
      precision_(precision) {
  if (in_ <= 0 || out_ <= 0 || kernel_ <= 0 || stride_ <= 0 || padding_ < 0)
    throw UsageError("conv2d '" + name_ +
                     "': in_channels, out_channels, kernel and stride must be positive and padding non-negative "
                     "(got " + std::to_string(in_) + ", " + std::to_string(out_) + ", " + std::to_string(kernel_) +
                     ", " + std::to_string(stride_) + ", " + std::to_string(padding_) + ")");
  contra::cuda::require("conv2d (cuda)");
  impl_ = std::make_unique<Impl>("conv2d '" + name_ + "' (cuda)");
  Impl& m = *impl_;
  // Drawn on the host exactly as the CPU layer draws them, then copied.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_ * kernel_ * kernel_));
  Tensor w = Tensor::empty({out_, in_, kernel_, kernel_}, DType::f32);
  contra::nn::fill_uniform(w, bound, init);
  weight_.name = name_ + ".weight";
  weight_.value = upload(w);
  weight_.grad = Tensor::zeros(w.shape(), DType::f32, Device::cuda);
  if (has_bias_) {
    Tensor b = Tensor::empty({out_}, DType::f32);
    contra::nn::fill_uniform(b, bound, init);
    bias_.name = name_ + ".bias";
    bias_.value = upload(b);
    bias_.grad = Tensor::zeros({out_}, DType::f32, Device::cuda);
    bias_.decay = false;
  }
  NN_CUDNN(m.who, cudnnSetFilter4dDescriptor(m.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, as_int(m.who, out_, "out"),
                                             as_int(m.who, in_, "in"), kernel_, kernel_));
  m.oihw.set(m.who, CUDNN_TENSOR_NCHW, out_, in_, kernel_, kernel_);
  m.ohwi.set(m.who, CUDNN_TENSOR_NHWC, out_, in_, kernel_, kernel_);
  m.bias.set(m.who, CUDNN_TENSOR_NHWC, 1, out_, 1, 1);
}

Conv2d::~Conv2d() = default;

void Conv2d::parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
}

std::size_t Conv2d::cached_shapes() const noexcept { return impl_->plans.size(); }

Shape Conv2d::output_shape(const Shape& s) const {
  const std::string who = "conv2d '" + name_ + "': ";
  const std::string want = "[N, H, W, " + std::to_string(in_) + "]";
  if (s.rank() != 4)
    throw UsageError(who + "expected an NHWC input " + want + " of rank 4, got shape " + s.str());
  if (s[3] != in_)
    throw UsageError(who + "expected " + std::to_string(in_) + " input channels (NHWC " + want + "), got shape " +
                     s.str());
  if (s[0] <= 0) throw UsageError(who + "empty batch (input shape " + s.str() + ")");
  if (s[1] + 2 * padding_ < kernel_ || s[2] + 2 * padding_ < kernel_)
    throw UsageError(who + "input of shape " + s.str() + " is smaller than the " + std::to_string(kernel_) + "x" +
                     std::to_string(kernel_) + " kernel with padding " + std::to_string(padding_));
  return Shape{s[0], (s[1] + 2 * padding_ - kernel_) / stride_ + 1, (s[2] + 2 * padding_ - kernel_) / stride_ + 1,
               out_};
}

const Tensor& Conv2d::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  const Shape out = output_shape(x.shape());
  expect_device_f32(m.who, x, "the input");
  // Precision::bf16 has no cuDNN path for f32 tensors: it takes TF32 tensor cores.
  const bool tensor_ops = precision_ == Precision::bf16 || !strict();
  cudnnHandle_t h = dnn();

  Impl::Plan* p = nullptr;
  for (auto& q : m.plans)
    if (q->in == x.shape() && q->tensor_ops == tensor_ops) p = q.get();
  if (!p) {
    if (m.plans.size() >= max_plans) {
      auto victim = m.plans.end();
      for (auto it = m.plans.begin(); it != m.plans.end(); ++it)
        if (it->get() != m.train && (victim == m.plans.end() || (*it)->used < (*victim)->used)) victim = it;
      m.plans.erase(victim);
    }
    auto plan = std::make_unique<Impl::Plan>(m.who);
    plan->in = x.shape();
    plan->out = out;
    plan->tensor_ops = tensor_ops;
    plan->x.set(m.who, CUDNN_TENSOR_NHWC, x.dim(0), in_, x.dim(1), x.dim(2));
    plan->y.set(m.who, CUDNN_TENSOR_NHWC, out[0], out_, out[1], out[2]);
    NN_CUDNN(m.who, cudnnSetConvolution2dDescriptor(plan->conv, padding_, padding_, stride_, stride_, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    const cudnnMathType_t want = tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    NN_CUDNN(m.who, cudnnSetConvolutionMathType(plan->conv, want));
    int n = 0, c = 0, oh = 0, ow = 0;
    NN_CUDNN(m.who, cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, m.w, &n, &c, &oh, &ow));
    if (n != out[0] || c != out_ || oh != out[1] || ow != out[2])
      throw DeviceError(m.who + ": cuDNN computes an output of [" + std::to_string(n) + ", " + std::to_string(oh) +
                        ", " + std::to_string(ow) + ", " + std::to_string(c) + "], expected " + out.str());
    int max = 0, count = 0;
    NN_CUDNN(m.who, cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(max > 0 ? max : 1));
    NN_CUDNN(m.who, cudnnGetConvolutionForwardAlgorithm_v7(h, plan->x, m.w, plan->conv, plan->y, max, &count,
                                                           perf.data()));
    const auto& r = choose(m.who, "forward", perf, count, tensor_ops);
    plan->fwd = r.algo;
    plan->fwd_math = tensor_ops ? r.mathType : CUDNN_FMA_MATH;
    NN_CUDNN(m.who, cudnnSetConvolutionMathType(plan->conv, plan->fwd_math));
    std::size_t bytes = 0;
    NN_CUDNN(m.who, cudnnGetConvolutionForwardWorkspaceSize(h, plan->x, m.w, plan->conv, plan->y, plan->fwd, &bytes));
    plan->workspace = std::max(bytes, r.memory);
    m.reserve(plan->workspace);
    m.plans.push_back(std::move(plan));
    p = m.plans.back().get();
  }
  p->used = ++m.clock;

  // The weight changes between steps: rearrange it at every forward.
  const void* w = weight_.value.raw();
  if (kernel_ > 1) {
    m.w_ohwi.ensure({out_, kernel_, kernel_, in_}, DType::f32, Device::cuda);
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(m.who, cudnnTransformTensor(h, &one, m.oihw, weight_.value.raw(), &zero, m.ohwi, m.w_ohwi.raw()));
    w = m.w_ohwi.raw();
  }
  m.y.ensure(p->out, DType::f32, Device::cuda);
  const float one = 1.0f, zero = 0.0f;
  NN_CUDNN(m.who, cudnnSetConvolutionMathType(p->conv, p->fwd_math));
  NN_CUDNN(m.who, cudnnConvolutionForward(h, &one, p->x, x.raw(), m.w, w, p->conv, p->fwd,
                                          p->workspace ? m.workspace.raw() : nullptr, p->workspace, &zero, p->y,
                                          m.y.raw()));
  if (has_bias_) NN_CUDNN(m.who, cudnnAddTensor(h, &one, m.bias, bias_.value.raw(), &one, p->y, m.y.raw()));
  if (mode == Mode::train) {
    m.train = p;
    m.x = view_of(x);
  }
  return m.y;
}

const Tensor& Conv2d::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.train) throw UsageError("conv2d '" + name_ + "': backward() called before any train-mode forward()");
  Impl::Plan& p = *m.train;
  expect_device_f32(m.who, dy, "the gradient");
  if (dy.shape() != p.out)
    throw UsageError("conv2d '" + name_ + "': gradient of shape " + dy.shape().str() +
                     " does not match the output shape " + p.out.str() + " of the last train-mode forward()");
  cudnnHandle_t h = dnn();
  if (!p.bwd_chosen) {
    const cudnnMathType_t want = p.tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    int max = 0, count = 0;
    std::size_t bytes = 0;

    NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, want));
    NN_CUDNN(m.who, cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> dperf(static_cast<std::size_t>(max > 0 ? max : 1));
    NN_CUDNN(m.who, cudnnGetConvolutionBackwardDataAlgorithm_v7(h, m.w, p.y, p.conv, p.x, max, &count, dperf.data()));
    const auto& d = choose(m.who, "backward-data", dperf, count, p.tensor_ops);
    p.bwd_data = d.algo;
    p.data_math = p.tensor_ops ? d.mathType : CUDNN_FMA_MATH;
    NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, p.data_math));
    NN_CUDNN(m.who, cudnnGetConvolutionBackwardDataWorkspaceSize(h, m.w, p.y, p.conv, p.x, p.bwd_data, &bytes));
    p.workspace = std::max({p.workspace, bytes, d.memory});

    NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, want));
    NN_CUDNN(m.who, cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> fperf(static_cast<std::size_t>(max > 0 ? max : 1));
    NN_CUDNN(m.who,
             cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, m.w, max, &count, fperf.data()));
    const auto& f = choose(m.who, "backward-filter", fperf, count, p.tensor_ops);
    p.bwd_filter = f.algo;
    p.filter_math = p.tensor_ops ? f.mathType : CUDNN_FMA_MATH;
    NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, p.filter_math));
    NN_CUDNN(m.who,
             cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, m.w, p.bwd_filter, &bytes));
    p.workspace = std::max({p.workspace, bytes, f.memory});
    p.bwd_chosen = true;
  }
  m.reserve(p.workspace);
  void* ws = p.workspace ? m.workspace.raw() : nullptr;
  const float one = 1.0f, zero = 0.0f;
  // The OHWI weight of the train-mode forward (the weight has not changed since).
  const void* w = kernel_ > 1 ? m.w_ohwi.raw() : weight_.value.raw();
  if (want_input_grad) {
    m.dx.ensure(p.in, DType::f32, Device::cuda);
    NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, p.data_math));
    NN_CUDNN(m.who, cudnnConvolutionBackwardData(h, &one, m.w, w, p.y, dy.raw(), p.conv, p.bwd_data, ws, p.workspace,
                                                 &zero, p.x, m.dx.raw()));
  }
  NN_CUDNN(m.who, cudnnSetConvolutionMathType(p.conv, p.filter_math));
  if (kernel_ > 1) {
    // dL/dW in OHWI, then added into the OIHW grad.
    m.dw_ohwi.ensure({out_, kernel_, kernel_, in_}, DType::f32, Device::cuda);
    NN_CUDNN(m.who, cudnnConvolutionBackwardFilter(h, &one, p.x, m.x.raw(), p.y, dy.raw(), p.conv, p.bwd_filter, ws,
                                                   p.workspace, &zero, m.w, m.dw_ohwi.raw()));
    NN_CUDNN(m.who, cudnnTransformTensor(h, &one, m.ohwi, m.dw_ohwi.raw(), &one, m.oihw, weight_.grad.raw()));
  } else {
    NN_CUDNN(m.who, cudnnConvolutionBackwardFilter(h, &one, p.x, m.x.raw(), p.y, dy.raw(), p.conv, p.bwd_filter, ws,
                                                   p.workspace, &one, m.w, weight_.grad.raw()));
  }
  if (has_bias_)
    NN_CUDNN(m.who, cudnnConvolutionBackwardBias(h, &one, p.y, dy.raw(), &one, m.bias, bias_.grad.raw()));
  return want_input_grad ? m.dx : m.none;
}

}  // namespace contra::cuda::nn
