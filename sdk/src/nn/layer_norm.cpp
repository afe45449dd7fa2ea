#include <contra/nn/layer_norm.hpp>
#include <contra/gradient_ready.hpp>

#include "dnnl_util.hpp"
#include "staging.hpp"

#include <map>
#include <sstream>

namespace contra::nn {

using namespace detail;

namespace {

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

struct LayerNorm::Impl {
  std::string name;
  std::int64_t features;
  double eps;
  Parameter weight, bias;
  Tensor dgamma, dbeta;  // oneDNN writes these; they are then added into the grads
  Tensor y, dx;
  Tensor pad;            // scratchpad shared by the primitives
  Tensor none;

  // The primitives of one row count. The statistics of the last forward stay
  // in mean and var for its backward.
  struct Entry {
    std::int64_t rows = 0;
    dnnl::memory src, dst, diff_dst, diff_src, mean, var, scale, shift, diff_scale, diff_shift;
    Tensor mean_buf, var_buf;
    Prim fwd, bwd;
  };
  std::map<std::int64_t, Entry> cache;
  Entry* last = nullptr;  // the entry of the last forward
  Tensor x;               // its input (non-owning)

  std::string who() const { return "LayerNorm '" + name + "'"; }

  void reserve_pad(const dnnl::memory::desc& md) {
    if (pad.nbytes() < md.get_size() || !pad.defined())
      pad.ensure({static_cast<std::int64_t>(md.get_size() == 0 ? 64 : md.get_size())}, DType::u8);
  }

  Entry& entry(std::int64_t rows) {
    auto it = cache.find(rows);
    if (it != cache.end()) return it->second;
    Entry e;
    e.rows = rows;
    const dnnl::memory::desc data_md = plain_desc({rows, features});
    const dnnl::memory::desc stat_md = plain_desc({rows});
    const dnnl::memory::desc param_md = plain_desc({features});
    const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    // Forward training in either mode: it also writes the statistics, which
    // is what lets backward() differentiate an eval-mode forward too.
    dnnl::layer_normalization_forward::primitive_desc fpd(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_training, data_md, stat_md,
                                                static_cast<float>(eps), flags),
        user_scratchpad(), engine());
    dnnl::layer_normalization_backward::primitive_desc bpd(
        dnnl::layer_normalization_backward::desc(dnnl::prop_kind::backward, data_md, data_md, stat_md,
                                                 static_cast<float>(eps), flags),
        user_scratchpad(), engine(), fpd);
    auto mem = [](const dnnl::memory::desc& md) { return dnnl::memory(md, engine(), DNNL_MEMORY_NONE); };
    e.src = mem(data_md);
    e.dst = mem(data_md);
    e.diff_dst = mem(data_md);
    e.diff_src = mem(data_md);
    e.mean = scratch(e.mean_buf, stat_md);
    e.var = scratch(e.var_buf, stat_md);
    e.scale = mem(param_md);
    e.shift = mem(param_md);
    e.diff_scale = mem(param_md);
    e.diff_shift = mem(param_md);
    e.fwd.args = {{DNNL_ARG_SRC, e.src},   {DNNL_ARG_DST, e.dst},     {DNNL_ARG_MEAN, e.mean},
                  {DNNL_ARG_VARIANCE, e.var}, {DNNL_ARG_SCALE, e.scale}, {DNNL_ARG_SHIFT, e.shift}};
    e.fwd.set(dnnl::layer_normalization_forward(fpd), fpd.scratchpad_desc());
    reserve_pad(fpd.scratchpad_desc());
    e.bwd.args = {{DNNL_ARG_SRC, e.src},           {DNNL_ARG_MEAN, e.mean},
                  {DNNL_ARG_VARIANCE, e.var},      {DNNL_ARG_DIFF_DST, e.diff_dst},
                  {DNNL_ARG_SCALE, e.scale},       {DNNL_ARG_SHIFT, e.shift},
                  {DNNL_ARG_DIFF_SRC, e.diff_src}, {DNNL_ARG_DIFF_SCALE, e.diff_scale},
                  {DNNL_ARG_DIFF_SHIFT, e.diff_shift}};
    e.bwd.set(dnnl::layer_normalization_backward(bpd), bpd.scratchpad_desc());
    reserve_pad(bpd.scratchpad_desc());
    return cache.emplace(rows, std::move(e)).first->second;
  }
};

LayerNorm::LayerNorm(std::string name, std::int64_t features, double eps) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = std::move(name);
  if (features < 1)
    throw UsageError(m.who() + ": features must be >= 1, got " + std::to_string(features));
  if (!(eps > 0)) throw UsageError(m.who() + ": eps must be > 0, got " + num(eps));
  m.features = features;
  m.eps = eps;
  const std::string prefix = m.name.empty() ? "" : m.name + ".";
  const Shape d{features};
  m.weight.name = prefix + "weight";
  m.weight.value = Tensor::empty(d, DType::f32);
  m.weight.grad = Tensor::zeros(d, DType::f32);
  m.weight.decay = false;
  float* g = m.weight.value.data<float>();
  for (std::int64_t i = 0; i < features; ++i) g[i] = 1.0f;
  m.bias.name = prefix + "bias";
  m.bias.value = Tensor::zeros(d, DType::f32);
  m.bias.grad = Tensor::zeros(d, DType::f32);
  m.bias.decay = false;
  m.dgamma = Tensor::zeros(d, DType::f32);
  m.dbeta = Tensor::zeros(d, DType::f32);
}

LayerNorm::~LayerNorm() = default;

const Tensor& LayerNorm::forward(const Tensor& x, Mode) {
  Impl& m = *impl_;
  if (x.dtype() != DType::f32 || x.device() != Device::cpu || x.rank() != 2 || x.dim(1) != m.features ||
      x.dim(0) <= 0)
    throw UsageError(m.who() + ": expected an f32 cpu tensor [N, " + std::to_string(m.features) + "], N > 0, got " +
                     dtype_name(x.dtype()) + " " + device_name(x.device()) + " " + x.shape().str());
  m.last = nullptr;
  try {
    Impl::Entry& e = m.entry(x.dim(0));
    m.y.ensure(x.shape(), DType::f32);
    e.src.set_data_handle(const_cast<void*>(x.raw()));
    e.dst.set_data_handle(m.y.raw());
    e.scale.set_data_handle(m.weight.value.raw());
    e.shift.set_data_handle(m.bias.value.raw());
    e.fwd.run(m.pad);
    stream().wait();
    m.x = Tensor::wrap(const_cast<void*>(x.raw()), x.shape(), DType::f32);
    m.last = &e;
  } catch (const dnnl::error& err) {
    rethrow(m.who() + " forward on " + x.shape().str(), err);
  }
  return m.y;
}

const Tensor& LayerNorm::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.last) throw UsageError(m.who() + ": backward() called without a forward() to differentiate");
  Impl::Entry& e = *m.last;
  dy.expect(m.x.shape(), DType::f32, (m.who() + " backward dy").c_str());
  try {
    // oneDNN computes dL/dx with the parameters' gradients in one pass
    // whether or not it is wanted.
    m.dx.ensure(m.x.shape(), DType::f32);
    e.src.set_data_handle(m.x.raw());
    e.scale.set_data_handle(m.weight.value.raw());
    e.shift.set_data_handle(m.bias.value.raw());
    e.diff_dst.set_data_handle(const_cast<void*>(dy.raw()));
    e.diff_src.set_data_handle(m.dx.raw());
    e.diff_scale.set_data_handle(m.dgamma.raw());
    e.diff_shift.set_data_handle(m.dbeta.raw());
    e.bwd.run(m.pad);
    stream().wait();
  } catch (const dnnl::error& err) {
    rethrow(m.who() + " backward on " + dy.shape().str(), err);
  }
  const float* dg = m.dgamma.data<float>();
  const float* db = m.dbeta.data<float>();
  float* gg = m.weight.grad.data<float>();
  float* gb = m.bias.grad.data<float>();
  for (std::int64_t c = 0; c < m.features; ++c) {
    gg[c] += dg[c];
    gb[c] += db[c];
  }
  gradient_ready(m.weight);
  gradient_ready(m.bias);
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

}  // namespace contra::nn
