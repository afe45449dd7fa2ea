#include <contra/nn/batch_norm.hpp>

#include "dnnl_util.hpp"

#include <array>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace contra::nn {

using namespace detail;

namespace {

using ShapeKey = std::array<std::int64_t, Shape::max_rank + 1>;

ShapeKey key_of(const Shape& s) {
  ShapeKey k{};
  k[0] = s.rank();
  for (int i = 0; i < s.rank(); ++i) k[i + 1] = s[i];
  return k;
}

void* ptr(const Tensor& t) { return const_cast<void*>(t.raw()); }

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// One primitive with its user-mode scratchpad and argument map.
struct Prim {
  dnnl::primitive prim;
  Tensor scratch_buf;
  std::unordered_map<int, dnnl::memory> args;
};

}  // namespace

struct BatchNorm::Impl {
  std::string name;
  bool relu = false;  // BatchNormReLU: max(·, 0) fused into the primitives
  std::int64_t channels;
  double momentum;
  double eps;
  Parameter weight, bias;
  Tensor running_mean, running_var;
  Tensor batch_mean, batch_var;  // statistics of the last train-mode forward (biased variance)
  Tensor dgamma, dbeta;          // oneDNN writes these; they are then added into the grads
  Tensor y, dx;

  // The last forward(): its entry, input (non-owning) and mode.
  struct Entry;
  Entry* last = nullptr;
  Tensor x;
  Mode last_mode = Mode::eval;

  struct Entry {
    Shape shape;
    dnnl::memory::desc data_md;
    dnnl::memory src, dst, diff_dst, diff_src, mean, var, scale, shift, diff_scale, diff_shift;
    dnnl::memory workspace;  // the fused ReLU's mask, written by forward, read by backward
    Tensor workspace_buf;
    dnnl::batch_normalization_forward::primitive_desc fwd_train_pd, fwd_global_pd;
    std::optional<Prim> fwd_train, fwd_global, bwd_train, bwd_global;
  };
  std::map<ShapeKey, Entry> cache;

  std::string who() const { return (relu ? "BatchNormReLU '" : "BatchNorm '") + name + "'"; }

  static dnnl::primitive_attr attr() {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }

  Entry& entry(const Shape& s) {
    auto it = cache.find(key_of(s));
    if (it != cache.end()) return it->second;
    Entry e;
    e.shape = s;
    // [N, C] is laid out as NHWC [N, 1, 1, C]: the channels-last kernels then apply.
    e.data_md = s.rank() == 4 ? nhwc_desc(s) : nhwc_desc(Shape{s[0], 1, 1, s[1]});
    dnnl::memory::desc stat_md({channels}, dt::f32, tag::a);
    auto mem = [](const dnnl::memory::desc& md) { return dnnl::memory(md, engine(), DNNL_MEMORY_NONE); };
    e.src = mem(e.data_md);
    e.dst = mem(e.data_md);
    e.diff_dst = mem(e.data_md);
    e.diff_src = mem(e.data_md);
    e.mean = mem(stat_md);
    e.var = mem(stat_md);
    e.scale = mem(stat_md);
    e.shift = mem(stat_md);
    e.diff_scale = mem(stat_md);
    e.diff_shift = mem(stat_md);
    return cache.emplace(key_of(s), std::move(e)).first->second;
  }

  dnnl::normalization_flags flags(bool global) const {
    auto f = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    if (relu) f |= dnnl::normalization_flags::fuse_norm_relu;
    return global ? f | dnnl::normalization_flags::use_global_stats : f;
  }

  Prim finish(const dnnl::primitive_desc& pd, dnnl::primitive prim) {
    Prim p;
    p.prim = std::move(prim);
    p.args[DNNL_ARG_SCRATCHPAD] = scratch(p.scratch_buf, pd.scratchpad_desc());
    return p;
  }

  Prim& forward_prim(Entry& e, bool global) {
    std::optional<Prim>& slot = global ? e.fwd_global : e.fwd_train;
    if (slot) return *slot;
    // With the fused ReLU even an eval-mode forward keeps its mask (forward
    // training with the running statistics), for a backward through it.
    auto prop = global && !relu ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
    dnnl::batch_normalization_forward::desc d(prop, e.data_md, static_cast<float>(eps), flags(global));
    dnnl::batch_normalization_forward::primitive_desc pd(d, attr(), engine());
    (global ? e.fwd_global_pd : e.fwd_train_pd) = pd;
    slot = finish(pd, dnnl::batch_normalization_forward(pd));
    slot->args.insert({{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst}, {DNNL_ARG_MEAN, e.mean},
                       {DNNL_ARG_VARIANCE, e.var}, {DNNL_ARG_SCALE, e.scale}, {DNNL_ARG_SHIFT, e.shift}});
    if (relu) {
      if (!e.workspace) e.workspace = scratch(e.workspace_buf, pd.workspace_desc());
      slot->args.insert({DNNL_ARG_WORKSPACE, e.workspace});
    }
    return *slot;
  }

  Prim& backward_prim(Entry& e, bool global) {
    std::optional<Prim>& slot = global ? e.bwd_global : e.bwd_train;
    if (slot) return *slot;
    forward_prim(e, global);  // the hint
    dnnl::batch_normalization_backward::desc d(dnnl::prop_kind::backward, e.data_md, e.data_md,
                                               static_cast<float>(eps), flags(global));
    dnnl::batch_normalization_backward::primitive_desc pd(d, attr(), engine(),
                                                          global ? e.fwd_global_pd : e.fwd_train_pd);
    slot = finish(pd, dnnl::batch_normalization_backward(pd));
    slot->args.insert({{DNNL_ARG_SRC, e.src}, {DNNL_ARG_MEAN, e.mean}, {DNNL_ARG_VARIANCE, e.var},
                       {DNNL_ARG_DIFF_DST, e.diff_dst}, {DNNL_ARG_SCALE, e.scale},
                       {DNNL_ARG_SHIFT, e.shift}, {DNNL_ARG_DIFF_SRC, e.diff_src},
                       {DNNL_ARG_DIFF_SCALE, e.diff_scale}, {DNNL_ARG_DIFF_SHIFT, e.diff_shift}});
    if (relu) slot->args.insert({DNNL_ARG_WORKSPACE, e.workspace});
    return *slot;
  }

  void check_input(const Tensor& x) const {
    bool ok = x.dtype() == DType::f32 && x.device() == Device::cpu && (x.rank() == 2 || x.rank() == 4) &&
              x.dim(x.rank() - 1) == channels;
    if (!ok)
      throw UsageError(who() + ": expected an f32 cpu tensor [N, C] or [N, H, W, C] with C = " +
                       std::to_string(channels) + ", got " + dtype_name(x.dtype()) + " " +
                       device_name(x.device()) + " " + x.shape().str());
  }
};

BatchNorm::BatchNorm(std::string name, std::int64_t channels, double momentum, double eps)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = std::move(name);
  if (channels < 1)
    throw UsageError("BatchNorm '" + m.name + "': channels must be >= 1, got " + std::to_string(channels));
  if (!(momentum >= 0 && momentum <= 1))
    throw UsageError("BatchNorm '" + m.name + "': momentum must be in [0, 1], got " + num(momentum));
  if (!(eps > 0)) throw UsageError("BatchNorm '" + m.name + "': eps must be > 0, got " + num(eps));
  m.channels = channels;
  m.momentum = momentum;
  m.eps = eps;
  std::string prefix = m.name.empty() ? "" : m.name + ".";
  Shape c{channels};
  m.weight.name = prefix + "weight";
  m.weight.value = Tensor::empty(c, DType::f32);
  m.weight.grad = Tensor::zeros(c, DType::f32);
  m.weight.decay = false;
  m.bias.name = prefix + "bias";
  m.bias.value = Tensor::zeros(c, DType::f32);
  m.bias.grad = Tensor::zeros(c, DType::f32);
  m.bias.decay = false;
  m.running_mean = Tensor::zeros(c, DType::f32);
  m.running_var = Tensor::empty(c, DType::f32);
  float* g = m.weight.value.data<float>();
  float* rv = m.running_var.data<float>();
  for (std::int64_t i = 0; i < channels; ++i) g[i] = rv[i] = 1.0f;
  m.batch_mean = Tensor::zeros(c, DType::f32);
  m.batch_var = Tensor::zeros(c, DType::f32);
  m.dgamma = Tensor::zeros(c, DType::f32);
  m.dbeta = Tensor::zeros(c, DType::f32);
}

BatchNorm::~BatchNorm() = default;

const Tensor& BatchNorm::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  m.check_input(x);
  const std::int64_t per_channel = x.numel() / m.channels;
  if (mode == Mode::train && per_channel < 2)
    throw UsageError(m.who() + ": train mode needs more than one value per channel, got input " +
                     x.shape().str());
  m.last = nullptr;
  try {
    Impl::Entry& e = m.entry(x.shape());
    const bool global = mode == Mode::eval;
    Prim& p = m.forward_prim(e, global);
    m.y.ensure(x.shape(), DType::f32);
    e.src.set_data_handle(ptr(x));
    e.dst.set_data_handle(m.y.raw());
    e.mean.set_data_handle(global ? m.running_mean.raw() : m.batch_mean.raw());
    e.var.set_data_handle(global ? m.running_var.raw() : m.batch_var.raw());
    e.scale.set_data_handle(m.weight.value.raw());
    e.shift.set_data_handle(m.bias.value.raw());
    p.prim.execute(stream(), p.args);
    stream().wait();
    if (!global) {
      const float mom = static_cast<float>(m.momentum);
      const float unbias = static_cast<float>(static_cast<double>(per_channel) / (per_channel - 1));
      const float* bm = m.batch_mean.data<float>();
      const float* bv = m.batch_var.data<float>();
      float* rm = m.running_mean.data<float>();
      float* rv = m.running_var.data<float>();
      for (std::int64_t c = 0; c < m.channels; ++c) {
        rm[c] = (1 - mom) * rm[c] + mom * bm[c];
        rv[c] = (1 - mom) * rv[c] + mom * bv[c] * unbias;
      }
    }
    m.x = Tensor::wrap(ptr(x), x.shape(), DType::f32);
    m.last_mode = mode;
    m.last = &e;
  } catch (const dnnl::error& err) {
    rethrow(m.who() + " forward", err);
  }
  return m.y;
}

const Tensor& BatchNorm::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.last) throw UsageError(m.who() + ": backward() called without a forward() to differentiate");
  Impl::Entry& e = *m.last;
  dy.expect(e.shape, DType::f32, (m.who() + " backward dy").c_str());
  try {
    const bool global = m.last_mode == Mode::eval;
    Prim& p = m.backward_prim(e, global);
    m.dx.ensure(e.shape, DType::f32);
    e.src.set_data_handle(m.x.raw());
    e.mean.set_data_handle(global ? m.running_mean.raw() : m.batch_mean.raw());
    e.var.set_data_handle(global ? m.running_var.raw() : m.batch_var.raw());
    e.scale.set_data_handle(m.weight.value.raw());
    e.shift.set_data_handle(m.bias.value.raw());
    e.diff_dst.set_data_handle(ptr(dy));
    e.diff_src.set_data_handle(m.dx.raw());
    e.diff_scale.set_data_handle(m.dgamma.raw());
    e.diff_shift.set_data_handle(m.dbeta.raw());
    p.prim.execute(stream(), p.args);
    stream().wait();
  } catch (const dnnl::error& err) {
    rethrow(m.who() + " backward", err);
  }
  const float* dg = m.dgamma.data<float>();
  const float* db = m.dbeta.data<float>();
  float* gg = m.weight.grad.data<float>();
  float* gb = m.bias.grad.data<float>();
  for (std::int64_t c = 0; c < m.channels; ++c) {
    gg[c] += dg[c];
    gb[c] += db[c];
  }
  if (!want_input_grad) {
    static const Tensor none;
    return none;
  }
  return m.dx;
}

void BatchNorm::parameters(std::vector<Parameter*>& out) {
  out.push_back(&impl_->weight);
  out.push_back(&impl_->bias);
}

void BatchNorm::buffers(std::vector<std::pair<std::string, Tensor*>>& out) {
  std::string prefix = impl_->name.empty() ? "" : impl_->name + ".";
  out.emplace_back(prefix + "running_mean", &impl_->running_mean);
  out.emplace_back(prefix + "running_var", &impl_->running_var);
}

BatchNormReLU::BatchNormReLU(std::string name, std::int64_t channels, double momentum, double eps)
    : bn_(std::move(name), channels, momentum, eps) {
  bn_.impl_->relu = true;
}

BatchNormReLU::~BatchNormReLU() = default;

const Tensor& BatchNormReLU::forward(const Tensor& x, Mode mode) { return bn_.forward(x, mode); }
const Tensor& BatchNormReLU::backward(const Tensor& dy, bool want_input_grad) {
  return bn_.backward(dy, want_input_grad);
}
void BatchNormReLU::parameters(std::vector<Parameter*>& out) { bn_.parameters(out); }
void BatchNormReLU::buffers(std::vector<std::pair<std::string, Tensor*>>& out) { bn_.buffers(out); }

std::int64_t BatchNorm::channels() const noexcept { return impl_->channels; }
double BatchNorm::momentum() const noexcept { return impl_->momentum; }
double BatchNorm::eps() const noexcept { return impl_->eps; }
Parameter& BatchNorm::weight() noexcept { return impl_->weight; }
Parameter& BatchNorm::bias() noexcept { return impl_->bias; }
Tensor& BatchNorm::running_mean() noexcept { return impl_->running_mean; }
Tensor& BatchNorm::running_var() noexcept { return impl_->running_var; }

}  // namespace contra::nn
