#include <contra/nn/linear.hpp>
#include <contra/gradient_ready.hpp>

#include "dnnl_util.hpp"
#include "staging.hpp"

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace contra::nn {

namespace {

using namespace detail;
using dnnl::memory;

constexpr std::size_t max_plans = 4;  // batch sizes kept (e.g. train, last partial batch, eval)

memory::desc md(std::int64_t rows, std::int64_t cols, dt type, tag t = tag::ab) {
  return memory::desc({rows, cols}, type, t);
}

}  // namespace

struct Linear::Impl {
  struct Fwd {
    bool built = false;
    Staged src, wei;  // x and W ([in, out] view of [out, in]) in the compute type
    memory bias, dst;
    Prim prim;
  };

  struct Plan {
    std::int64_t n = 0;
    std::uint64_t used = 0;
    Fwd fwd[2];  // [0] train, [1] eval (separate, so an eval call keeps what backward needs)

    bool bwd_built = false;
    Staged dy;           // dL/dy in the compute type
    memory wei, dx;      // dx = dy·W
    Prim bwd_data;
    memory dy_t, x, gw;  // grad_W += dyᵀ·x
    Prim bwd_weights;
    memory ones, dy_f32, gb;  // grad_b += 1ᵀ·dy (f32 dy)
    Tensor ones_buf;
    Prim bwd_bias;
  };

  std::vector<std::unique_ptr<Plan>> plans;
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

Linear::Linear(std::string name, std::int64_t in_features, std::int64_t out_features, bool bias, Rng& init,
               Precision precision)
    : name_(std::move(name)),
      in_(in_features),
      out_(out_features),
      has_bias_(bias),
      precision_(precision),
      impl_(std::make_unique<Impl>()) {
  if (in_ <= 0 || out_ <= 0)
    throw UsageError("linear '" + name_ + "': in_features and out_features must be positive (got " +
                     std::to_string(in_) + ", " + std::to_string(out_) + ")");
  require_precision("linear '" + name_ + "'", precision_);
  // PyTorch's default for nn.Linear (reset_parameters): kaiming_uniform_ with
  // a = sqrt(5), which is U(±1/sqrt(in)), and the same bound for the bias.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  weight_.name = name_ + ".weight";
  weight_.value = Tensor::empty({out_, in_}, DType::f32);
  weight_.grad = Tensor::zeros({out_, in_}, DType::f32);
  fill_uniform(weight_.value, bound, init);
  if (has_bias_) {
    bias_.name = name_ + ".bias";
    bias_.value = Tensor::empty({out_}, DType::f32);
    bias_.grad = Tensor::zeros({out_}, DType::f32);
    bias_.decay = false;
    fill_uniform(bias_.value, bound, init);
  }
}

Linear::~Linear() = default;

void Linear::parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
}

std::size_t Linear::cached_shapes() const noexcept { return impl_->plans.size(); }

const Tensor& Linear::forward(const Tensor& x, Mode mode) {
  const std::string who = "linear '" + name_ + "': ";
  const std::string want = "[N, " + std::to_string(in_) + "]";
  const Shape& s = x.shape();
  if (s.rank() != 2) throw UsageError(who + "expected an input " + want + " of rank 2, got shape " + s.str());
  if (s[1] != in_)
    throw UsageError(who + "expected " + std::to_string(in_) + " input features (" + want + "), got shape " +
                     s.str());
  if (s[0] <= 0) throw UsageError(who + "empty batch (input shape " + s.str() + ")");
  if (x.dtype() != DType::f32) throw UsageError(who + "expected an f32 input, got " + dtype_name(x.dtype()));
  Impl& m = *impl_;
  const dt ct = compute_type(precision_);
  const std::int64_t n = s[0];

  try {
    Impl::Plan* p = nullptr;
    for (auto& q : m.plans)
      if (q->n == n) p = q.get();
    if (!p) {
      if (m.plans.size() >= max_plans) {
        auto victim = m.plans.end();
        for (auto it = m.plans.begin(); it != m.plans.end(); ++it)
          if (it->get() != m.train && (victim == m.plans.end() || (*it)->used < (*victim)->used)) victim = it;
        m.plans.erase(victim);
      }
      m.plans.push_back(std::make_unique<Impl::Plan>());
      p = m.plans.back().get();
      p->n = n;
    }
    p->used = ++m.clock;

    Impl::Fwd& f = p->fwd[mode == Mode::train ? 0 : 1];
    if (!f.built) {
      const memory::desc bias_md = md(1, out_, dt::f32);
      const memory::desc src_md = md(n, in_, ct), wei_md = md(in_, out_, ct, tag::ba), dst_md = md(n, out_, dt::f32);
      auto d = has_bias_ ? dnnl::matmul::desc(src_md, wei_md, bias_md, dst_md)
                         : dnnl::matmul::desc(src_md, wei_md, dst_md);
      dnnl::matmul::primitive_desc pd(d, user_scratchpad(), engine());
      f.src.init(md(n, in_, dt::f32), pd.src_desc());
      f.wei.init(md(in_, out_, dt::f32, tag::ba), pd.weights_desc());
      f.dst = memory(pd.dst_desc(), engine(), DNNL_MEMORY_NONE);
      f.prim.args = {{DNNL_ARG_SRC, f.src.used}, {DNNL_ARG_WEIGHTS, f.wei.used}, {DNNL_ARG_DST, f.dst}};
      if (has_bias_) {
        f.bias = memory(bias_md, engine(), DNNL_MEMORY_NONE);
        f.prim.args[DNNL_ARG_BIAS] = f.bias;
      }
      f.prim.set(dnnl::matmul(pd), pd.scratchpad_desc());
      m.reserve_pad(pd.scratchpad_desc().get_size());
      f.built = true;
    }

    m.y.ensure({n, out_}, DType::f32);
    f.src.run(x.raw());
    f.wei.run(weight_.value.raw());
    if (has_bias_) f.bias.set_data_handle(bias_.value.raw());
    f.dst.set_data_handle(m.y.raw());
    f.prim.run(m.pad);
    stream().wait();
    if (mode == Mode::train) m.train = p;
  } catch (const dnnl::error& e) {
    rethrow("linear '" + name_ + "' forward on " + s.str(), e);
  }
  return m.y;
}

const Tensor& Linear::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.train) throw UsageError("linear '" + name_ + "': backward() called before any train-mode forward()");
  Impl::Plan& p = *m.train;
  const std::int64_t n = p.n;
  if (dy.dtype() != DType::f32)
    throw UsageError("linear '" + name_ + "': expected an f32 gradient, got " + dtype_name(dy.dtype()));
  if (dy.shape() != Shape{n, out_})
    throw UsageError("linear '" + name_ + "': gradient of shape " + dy.shape().str() +
                     " does not match the output shape " + Shape{n, out_}.str() + " of the last train-mode forward()");
  const dt ct = compute_type(precision_);
  Impl::Fwd& f = p.fwd[0];

  try {
    if (!p.bwd_built) {
      p.dy.init(md(n, out_, dt::f32), md(n, out_, ct));

      // dx [N, in] = dy [N, out] · W [out, in] (W as converted by the forward).
      dnnl::matmul::primitive_desc dpd(dnnl::matmul::desc(md(n, out_, ct), md(out_, in_, ct), md(n, in_, dt::f32)),
                                       user_scratchpad(), engine());
      p.wei = memory(dpd.weights_desc(), engine(), DNNL_MEMORY_NONE);
      p.dx = memory(dpd.dst_desc(), engine(), DNNL_MEMORY_NONE);
      p.bwd_data.args = {{DNNL_ARG_SRC, p.dy.used}, {DNNL_ARG_WEIGHTS, p.wei}, {DNNL_ARG_DST, p.dx}};
      p.bwd_data.set(dnnl::matmul(dpd), dpd.scratchpad_desc());
      m.reserve_pad(dpd.scratchpad_desc().get_size());

      // grad_W [out, in] += dyᵀ [out, N] · x [N, in].
      dnnl::matmul::primitive_desc wpd(
          dnnl::matmul::desc(md(out_, n, ct, tag::ba), md(n, in_, ct), md(out_, in_, dt::f32)), user_scratchpad(true), engine());
      p.dy_t = memory(wpd.src_desc(), engine(), DNNL_MEMORY_NONE);
      p.x = memory(wpd.weights_desc(), engine(), DNNL_MEMORY_NONE);
      p.gw = memory(wpd.dst_desc(), engine(), DNNL_MEMORY_NONE);
      p.bwd_weights.args = {{DNNL_ARG_SRC, p.dy_t}, {DNNL_ARG_WEIGHTS, p.x}, {DNNL_ARG_DST, p.gw}};
      p.bwd_weights.set(dnnl::matmul(wpd), wpd.scratchpad_desc());
      m.reserve_pad(wpd.scratchpad_desc().get_size());

      // grad_b [1, out] += 1 [1, N] · dy [N, out], in f32.
      if (has_bias_) {
        dnnl::matmul::primitive_desc bpd(
            dnnl::matmul::desc(md(1, n, dt::f32), md(n, out_, dt::f32), md(1, out_, dt::f32)), user_scratchpad(true), engine());
        p.ones = scratch(p.ones_buf, bpd.src_desc());
        float* one = static_cast<float*>(p.ones_buf.raw());
        for (std::int64_t i = 0; i < n; ++i) one[i] = 1.0f;
        p.dy_f32 = memory(bpd.weights_desc(), engine(), DNNL_MEMORY_NONE);
        p.gb = memory(bpd.dst_desc(), engine(), DNNL_MEMORY_NONE);
        p.bwd_bias.args = {{DNNL_ARG_SRC, p.ones}, {DNNL_ARG_WEIGHTS, p.dy_f32}, {DNNL_ARG_DST, p.gb}};
        p.bwd_bias.set(dnnl::matmul(bpd), bpd.scratchpad_desc());
        m.reserve_pad(bpd.scratchpad_desc().get_size());
      }
      p.bwd_built = true;
    }

    p.dy.run(dy.raw());
    if (want_input_grad) {
      m.dx.ensure({n, in_}, DType::f32);
      p.wei.set_data_handle(f.wei.used.get_data_handle());
      p.dx.set_data_handle(m.dx.raw());
      p.bwd_data.run(m.pad);
    }
    p.dy_t.set_data_handle(p.dy.used.get_data_handle());
    p.x.set_data_handle(f.src.used.get_data_handle());
    p.gw.set_data_handle(weight_.grad.raw());
    p.bwd_weights.run(m.pad);
    if (has_bias_) {
      p.dy_f32.set_data_handle(const_cast<void*>(dy.raw()));
      p.gb.set_data_handle(bias_.grad.raw());
      p.bwd_bias.run(m.pad);
    }
    stream().wait();
  } catch (const dnnl::error& e) {
    rethrow("linear '" + name_ + "' backward on " + dy.shape().str(), e);
  }
  gradient_ready(weight_);
  if (has_bias_) gradient_ready(bias_);
  return want_input_grad ? m.dx : m.none;
}

}  // namespace contra::nn
