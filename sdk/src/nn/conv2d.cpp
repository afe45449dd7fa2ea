#include <contra/nn/conv2d.hpp>
#include <contra/gradient_ready.hpp>

#include "dnnl_util.hpp"
#include "staging.hpp"
#include "winograd.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::nn {

namespace {

using namespace detail;
using dnnl::memory;

constexpr std::size_t max_plans = 4;  // input shapes kept (e.g. train, last partial batch, eval)

// Reorder that adds its source into its destination (sum post-op, beta = 1).
dnnl::reorder accumulating_reorder(const memory& from, const memory& to) {
  dnnl::post_ops po;
  po.append_sum(1.f);
  dnnl::primitive_attr a;
  a.set_post_ops(po);
  return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from.get_desc(), engine(), to.get_desc(), a));
}

// oneDNN 2.6's 1x1 backward-weights kernels (`jit_1x1:<isa>`) go wrong on a
// strided NHWC convolution whose input channels are fewer than the kernel's
// channel block (8 on AVX2, 16 on AVX-512): the strided source is copied into
// a workspace they overrun, giving weight gradients off by tens of percent
// with two or more threads, heap corruption or a hang (oneDNN issue #6035,
// still open). The forward and backward-data kernels are right. Such layers
// (a narrow network's strided shortcut) take oneDNN's next implementation,
// the direct JIT kernel: same results as the reference, a few such layers.
constexpr std::int64_t max_1x1_channel_block = 16;

void skip_1x1_kernels(dnnl::convolution_backward_weights::primitive_desc& pd) {
  while (std::string(pd.impl_info_str()).find("1x1") != std::string::npos)
    if (!pd.next_impl())
      throw UsageError("oneDNN offers only 1x1 kernels for a strided 1x1 weight gradient with few input channels, "
                       "which it computes wrongly (oneDNN issue #6035)");
}

}  // namespace

struct Conv2d::Impl {
  struct Fwd {
    bool built = false;
    dnnl::convolution_forward::primitive_desc pd;
    Staged src, wei;
    memory bias, dst;
    Prim prim;
  };

  struct Plan {
    Shape in, out;
    std::uint64_t used = 0;
    std::unique_ptr<Winograd3x3> winograd;  // set: this shape runs by Winograd, not oneDNN
    const float* x = nullptr;               // Winograd: the last train-mode input
    Fwd fwd[2];  // [0] train, [1] eval

    bool bwd_built = false;
    Staged dy;                      // dL/dy, f32 NHWC -> compute type
    Prim bwd_data;                  // dL/dx
    bool bwd_data_shares_wei = false;
    Staged bwd_wei;                 // weight in bwd-data's layout (unless shared)
    memory dx;
    Prim bwd_weights;               // dL/dW, dL/db into scratch buffers
    memory dw, db, gw, gb;          // scratch results, parameter grads
    Tensor dw_buf, db_buf;
    dnnl::reorder acc_w, acc_b;     // grad += scratch
  };

  std::vector<std::unique_ptr<Plan>> plans;
  ConvAlgorithm algorithm = ConvAlgorithm::automatic;
  std::uint64_t clock = 0;
  Plan* train = nullptr;  // plan of the last train-mode forward
  Tensor pad;             // scratchpad shared by every primitive of the layer
  Tensor y, dx;
  Tensor none;

  void reserve_pad(std::size_t bytes) {
    if (pad.nbytes() < bytes || !pad.defined())
      pad.ensure({static_cast<std::int64_t>(bytes == 0 ? 64 : bytes)}, DType::u8);
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
      precision_(precision),
      impl_(std::make_unique<Impl>()) {
  if (in_ <= 0 || out_ <= 0 || kernel_ <= 0 || stride_ <= 0 || padding_ < 0)
    throw UsageError("conv2d '" + name_ +
                     "': in_channels, out_channels, kernel and stride must be positive and padding non-negative "
                     "(got " + std::to_string(in_) + ", " + std::to_string(out_) + ", " + std::to_string(kernel_) +
                     ", " + std::to_string(stride_) + ", " + std::to_string(padding_) + ")");
  require_precision("conv2d '" + name_ + "'", precision_);
  // PyTorch's default for nn.Conv2d (reset_parameters): kaiming_uniform_ with
  // a = sqrt(5), which is U(±1/sqrt(fan_in)), and the same bound for the bias.
  // Chosen over Kaiming-for-ReLU so that results compare with PyTorch's.
  const std::int64_t fan_in = in_ * kernel_ * kernel_;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight_.name = name_ + ".weight";
  weight_.value = Tensor::empty({out_, in_, kernel_, kernel_}, DType::f32);
  weight_.grad = Tensor::zeros(weight_.value.shape(), DType::f32);
  fill_uniform(weight_.value, bound, init);
  if (has_bias_) {
    bias_.name = name_ + ".bias";
    bias_.value = Tensor::empty({out_}, DType::f32);
    bias_.grad = Tensor::zeros({out_}, DType::f32);
    bias_.decay = false;
    fill_uniform(bias_.value, bound, init);
  }
}

Conv2d::~Conv2d() = default;

void Conv2d::parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
}

std::size_t Conv2d::cached_shapes() const noexcept { return impl_->plans.size(); }

bool Conv2d::winograd_applies() const noexcept {
  return kernel_ == 3 && stride_ == 1 && padding_ <= 2 && precision_ == Precision::f32;
}

bool Conv2d::uses_winograd() const noexcept {
  switch (impl_->algorithm) {
    case ConvAlgorithm::direct: return false;
    case ConvAlgorithm::winograd: return true;
    case ConvAlgorithm::automatic: break;
  }
  // Measured on two AVX2 cores at [512, 28, 28]: 16→16 and 24→24 channels
  // run faster (or as fast) direct, 32→32, 16→64 and 64→16 by Winograd
  // (the transforms cost per channel, the products per channel pair).
  return winograd_applies() && in_ >= 16 && out_ >= 16 && in_ * out_ >= 32 * 32;
}

void Conv2d::set_algorithm(ConvAlgorithm a) {
  if (a == ConvAlgorithm::winograd && !winograd_applies())
    throw UsageError("conv2d '" + name_ + "': Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, padding <= 2 and "
                     "f32 precision (got kernel " + std::to_string(kernel_) + ", stride " + std::to_string(stride_) +
                     ", padding " + std::to_string(padding_) + ", " +
                     (precision_ == Precision::f32 ? "f32" : "bf16") + ")");
  if (a == impl_->algorithm) return;
  impl_->algorithm = a;
  impl_->plans.clear();  // built for the other algorithm
  impl_->train = nullptr;
}

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
  const Shape out = output_shape(x.shape());
  if (x.dtype() != DType::f32)
    throw UsageError("conv2d '" + name_ + "': expected an f32 input, got " + dtype_name(x.dtype()));
  Impl& m = *impl_;
  const dt ct = compute_type(precision_);
  const memory::dims strides{stride_, stride_}, pad{padding_, padding_};
  const memory::desc oihw({out_, in_, kernel_, kernel_}, dt::f32, tag::oihw);
  const memory::desc bias_md({out_}, dt::f32, tag::a);

  try {
    // Find or build the plan of this shape (least recently used one evicted,
    // never the one a pending backward needs).
    Impl::Plan* p = nullptr;
    for (auto& q : m.plans)
      if (q->in == x.shape()) p = q.get();
    if (!p) {
      if (m.plans.size() >= max_plans) {
        auto victim = m.plans.end();
        for (auto it = m.plans.begin(); it != m.plans.end(); ++it)
          if (it->get() != m.train && (victim == m.plans.end() || (*it)->used < (*victim)->used)) victim = it;
        m.plans.erase(victim);
      }
      m.plans.push_back(std::make_unique<Impl::Plan>());
      p = m.plans.back().get();
      p->in = x.shape();
      p->out = out;
    }
    p->used = ++m.clock;

    if (uses_winograd()) {
      if (!p->winograd)
        p->winograd = std::make_unique<Winograd3x3>(p->in[0], p->in[1], p->in[2], in_, out_, padding_);
      m.y.ensure(p->out, DType::f32);
      p->winograd->forward(x.data<float>(), weight_.value.data<float>(), has_bias_ ? bias_.value.data<float>() : nullptr,
                           m.y.data<float>());
      if (mode == Mode::train) {
        p->x = x.data<float>();
        m.train = p;
      }
      return m.y;
    }

    Impl::Fwd& f = p->fwd[mode == Mode::train ? 0 : 1];
    if (!f.built) {
      const memory::desc src_md = nhwc_desc(p->in, ct), dst_md = nhwc_desc(p->out, dt::f32);
      const memory::desc wei_any({out_, in_, kernel_, kernel_}, ct, tag::any);
      const auto pk = mode == Mode::train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
      const auto alg = dnnl::algorithm::convolution_direct;
      auto d = has_bias_ ? dnnl::convolution_forward::desc(pk, alg, src_md, wei_any, bias_md, dst_md, strides, pad, pad)
                         : dnnl::convolution_forward::desc(pk, alg, src_md, wei_any, dst_md, strides, pad, pad);
      f.pd = dnnl::convolution_forward::primitive_desc(d, user_scratchpad(), engine());
      f.src.init(nhwc_desc(p->in), f.pd.src_desc());
      f.wei.init(oihw, f.pd.weights_desc());
      f.dst = memory(f.pd.dst_desc(), engine(), DNNL_MEMORY_NONE);
      f.prim.args = {{DNNL_ARG_SRC, f.src.used}, {DNNL_ARG_WEIGHTS, f.wei.used}, {DNNL_ARG_DST, f.dst}};
      if (has_bias_) {
        f.bias = memory(bias_md, engine(), DNNL_MEMORY_NONE);
        f.prim.args[DNNL_ARG_BIAS] = f.bias;
      }
      f.prim.set(dnnl::convolution_forward(f.pd), f.pd.scratchpad_desc());
      m.reserve_pad(f.pd.scratchpad_desc().get_size());
      f.built = true;
    }

    m.y.ensure(p->out, DType::f32);
    f.src.run(x.raw());
    f.wei.run(weight_.value.raw());
    if (has_bias_) f.bias.set_data_handle(bias_.value.raw());
    f.dst.set_data_handle(m.y.raw());
    f.prim.run(m.pad);
    stream().wait();

    // The train plan's source memory keeps pointing at x (f32) or at its bf16
    // copy: backward reads it from there.
    if (mode == Mode::train) m.train = p;
  } catch (const dnnl::error& e) {
    rethrow("conv2d '" + name_ + "' forward on " + x.shape().str(), e);
  }
  return m.y;
}

const Tensor& Conv2d::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.train) throw UsageError("conv2d '" + name_ + "': backward() called before any train-mode forward()");
  Impl::Plan& p = *m.train;
  if (dy.dtype() != DType::f32)
    throw UsageError("conv2d '" + name_ + "': expected an f32 gradient, got " + dtype_name(dy.dtype()));
  if (dy.shape() != p.out)
    throw UsageError("conv2d '" + name_ + "': gradient of shape " + dy.shape().str() +
                     " does not match the output shape " + p.out.str() + " of the last train-mode forward()");
  const dt ct = compute_type(precision_);
  const memory::dims strides{stride_, stride_}, pad{padding_, padding_};
  const memory::desc oihw({out_, in_, kernel_, kernel_}, dt::f32, tag::oihw);
  const memory::desc bias_md({out_}, dt::f32, tag::a);
  Impl::Fwd& f = p.fwd[0];

  try {
    if (p.winograd) {
      if (want_input_grad) {
        m.dx.ensure(p.in, DType::f32);
        p.winograd->backward_data(dy.data<float>(), weight_.value.data<float>(), m.dx.data<float>());
      }
      p.winograd->backward_weights(p.x, dy.data<float>(), weight_.grad.data<float>(),
                                   has_bias_ ? bias_.grad.data<float>() : nullptr);
      gradient_ready(weight_);
      if (has_bias_) gradient_ready(bias_);
      return want_input_grad ? m.dx : m.none;
    }

    if (!p.bwd_built) {
      const auto alg = dnnl::algorithm::convolution_direct;
      const memory::desc dst_ct = nhwc_desc(p.out, ct);
      // dL/dx: f32 result from compute-type dy and weight.
      dnnl::convolution_backward_data::desc dd(alg, nhwc_desc(p.in, dt::f32),
                                               memory::desc({out_, in_, kernel_, kernel_}, ct, tag::any), dst_ct,
                                               strides, pad, pad);
      dnnl::convolution_backward_data::primitive_desc dpd(dd, user_scratchpad(), engine(), f.pd);
      p.dy.init(nhwc_desc(p.out), dpd.diff_dst_desc());
      p.bwd_data_shares_wei = dpd.weights_desc() == f.pd.weights_desc();
      if (!p.bwd_data_shares_wei) p.bwd_wei.init(oihw, dpd.weights_desc());
      p.dx = memory(dpd.diff_src_desc(), engine(), DNNL_MEMORY_NONE);
      p.bwd_data.args = {{DNNL_ARG_DIFF_DST, p.dy.used},
                         {DNNL_ARG_WEIGHTS, p.bwd_data_shares_wei ? f.wei.used : p.bwd_wei.used},
                         {DNNL_ARG_DIFF_SRC, p.dx}};
      p.bwd_data.set(dnnl::convolution_backward_data(dpd), dpd.scratchpad_desc());
      m.reserve_pad(dpd.scratchpad_desc().get_size());

      // dL/dW, dL/db: f32 results (in the primitive's layout) from
      // compute-type x and dy, then added into the parameters' grads.
      const memory::desc wei_any({out_, in_, kernel_, kernel_}, dt::f32, tag::any);
      auto wd = has_bias_ ? dnnl::convolution_backward_weights::desc(alg, f.pd.src_desc(), wei_any, bias_md, dst_ct,
                                                                      strides, pad, pad)
                          : dnnl::convolution_backward_weights::desc(alg, f.pd.src_desc(), wei_any, dst_ct, strides,
                                                                      pad, pad);
      dnnl::convolution_backward_weights::primitive_desc wpd(wd, user_scratchpad(), engine(), f.pd);
      if (kernel_ == 1 && stride_ > 1 && in_ < max_1x1_channel_block) skip_1x1_kernels(wpd);
      if (!(wpd.src_desc() == f.src.used.get_desc()) || !(wpd.diff_dst_desc() == p.dy.used.get_desc()))
        throw UsageError("conv2d '" + name_ + "': oneDNN chose unexpected layouts for the weight gradient");
      p.dw = scratch(p.dw_buf, wpd.diff_weights_desc());
      p.gw = memory(oihw, engine(), DNNL_MEMORY_NONE);
      p.acc_w = accumulating_reorder(p.dw, p.gw);
      p.bwd_weights.args = {{DNNL_ARG_SRC, f.src.used}, {DNNL_ARG_DIFF_DST, p.dy.used}, {DNNL_ARG_DIFF_WEIGHTS, p.dw}};
      if (has_bias_) {
        p.db = scratch(p.db_buf, wpd.diff_bias_desc());
        p.gb = memory(bias_md, engine(), DNNL_MEMORY_NONE);
        p.acc_b = accumulating_reorder(p.db, p.gb);
        p.bwd_weights.args[DNNL_ARG_DIFF_BIAS] = p.db;
      }
      p.bwd_weights.set(dnnl::convolution_backward_weights(wpd), wpd.scratchpad_desc());
      m.reserve_pad(wpd.scratchpad_desc().get_size());
      p.bwd_built = true;
    }

    p.dy.run(dy.raw());
    if (want_input_grad) {
      m.dx.ensure(p.in, DType::f32);
      if (!p.bwd_data_shares_wei) p.bwd_wei.run(weight_.value.raw());
      p.dx.set_data_handle(m.dx.raw());
      p.bwd_data.run(m.pad);
    }
    p.bwd_weights.run(m.pad);
    p.gw.set_data_handle(weight_.grad.raw());
    p.acc_w.execute(stream(), p.dw, p.gw);
    if (has_bias_) {
      p.gb.set_data_handle(bias_.grad.raw());
      p.acc_b.execute(stream(), p.db, p.gb);
    }
    stream().wait();
  } catch (const dnnl::error& e) {
    rethrow("conv2d '" + name_ + "' backward on " + dy.shape().str(), e);
  }
  gradient_ready(weight_);
  if (has_bias_) gradient_ready(bias_);
  return want_input_grad ? m.dx : m.none;
}

}  // namespace contra::nn
