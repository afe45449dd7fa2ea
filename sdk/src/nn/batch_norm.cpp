#include <contra/nn/batch_norm.hpp>
#include <contra/gradient_ready.hpp>

#include <contra/batch_stats.hpp>

#include "dnnl_util.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

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

// The statistics a forward normalises with, and its backward differentiates through.
enum class Stats {
  batch,         // train mode: the local batch's, computed by oneDNN
  running,       // eval mode: running_mean and running_var, fixed
  global_batch,  // synchronised train mode: the global batch's, summed across ranks here
};
constexpr int stats_kinds = 3;

// Below this many floats the written-out loops run on one thread.
constexpr std::int64_t min_parallel_floats = 65536;

// Per-channel Σx into sums[0, c) and Σx² into sums[c, 2c), in double, of x
// viewed as [rows, c]. The rows are split into at most one chunk per thread,
// each summed into its own partials and then combined in chunk order: the
// same thread count gives the same bits whatever the scheduling.
void channel_sums(const float* x, std::int64_t rows, std::int64_t c, std::vector<double>& partials,
                  double* sums) {
  const std::int64_t chunks =
      std::clamp<std::int64_t>(rows * c / min_parallel_floats, 1, std::min<std::int64_t>(rows, omp_get_max_threads()));
  // At least a cache line between chunks' partials: no false sharing.
  const std::int64_t stride = (2 * c + 15) / 8 * 8;
  partials.assign(static_cast<std::size_t>(chunks * stride), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t k = 0; k < chunks; ++k) {
    double* s = partials.data() + k * stride;
    double* ss = s + c;
    for (std::int64_t r = rows * k / chunks, end = rows * (k + 1) / chunks; r < end; ++r) {
      const float* xr = x + r * c;
#pragma omp simd
      for (std::int64_t j = 0; j < c; ++j) {
        const double v = xr[j];
        s[j] += v;
        ss[j] += v * v;
      }
    }
  }
  std::fill(sums, sums + 2 * c, 0.0);
  for (std::int64_t k = 0; k < chunks; ++k)
    for (std::int64_t j = 0; j < 2 * c; ++j) sums[j] += partials[k * stride + j];
}

// dx[r, j] −= shift[j] + slope[j]·x[r, j] over x viewed as [rows, c].
void subtract_affine(const float* x, const float* shift, const float* slope, std::int64_t rows, std::int64_t c,
                     float* dx) {
#pragma omp parallel for schedule(static) if (rows * c > min_parallel_floats)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* dxr = dx + r * c;
#pragma omp simd
    for (std::int64_t j = 0; j < c; ++j) dxr[j] -= shift[j] + slope[j] * xr[j];
  }
}

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

  // The last forward(): its entry, input (non-owning) and statistics; after
  // a synchronised one, the global batch's values per channel.
  struct Entry;
  Entry* last = nullptr;
  Tensor x;
  Stats last_stats = Stats::running;
  double global_count = 0;

  // Synchronised mode's scratch, sized on first use.
  std::vector<double> partials;     // channel_sums()' per-chunk sums
  std::vector<double> reduced;      // what goes through the reducer
  std::vector<float> shift, slope;  // the input gradient's global-batch term, per channel

  struct Entry {
    Shape shape;
    dnnl::memory::desc data_md;
    dnnl::memory src, dst, diff_dst, diff_src, mean, var, scale, shift, diff_scale, diff_shift;
    dnnl::memory workspace;  // the fused ReLU's mask, written by forward, read by backward
    Tensor workspace_buf;
    // Indexed by Stats.
    std::array<dnnl::batch_normalization_forward::primitive_desc, stats_kinds> fwd_pd;
    std::array<std::optional<Prim>, stats_kinds> fwd, bwd;
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

  // use_global_stats: the statistics are given (running or summed across ranks), not computed.
  dnnl::normalization_flags flags(Stats stats) const {
    auto f = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    if (relu) f |= dnnl::normalization_flags::fuse_norm_relu;
    return stats == Stats::batch ? f : f | dnnl::normalization_flags::use_global_stats;
  }

  Tensor& mean_of(Stats stats) { return stats == Stats::running ? running_mean : batch_mean; }
  Tensor& var_of(Stats stats) { return stats == Stats::running ? running_var : batch_var; }

  Prim finish(const dnnl::primitive_desc& pd, dnnl::primitive prim) {
    Prim p;
    p.prim = std::move(prim);
    p.args[DNNL_ARG_SCRATCHPAD] = scratch(p.scratch_buf, pd.scratchpad_desc());
    return p;
  }

  Prim& forward_prim(Entry& e, Stats stats) {
    std::optional<Prim>& slot = e.fwd[static_cast<int>(stats)];
    if (slot) return *slot;
    // With the fused ReLU even an eval-mode forward keeps its mask (forward
    // training with the running statistics), for a backward through it.
    auto prop = stats == Stats::running && !relu ? dnnl::prop_kind::forward_inference
                                                 : dnnl::prop_kind::forward_training;
    dnnl::batch_normalization_forward::desc d(prop, e.data_md, static_cast<float>(eps), flags(stats));
    dnnl::batch_normalization_forward::primitive_desc pd(d, attr(), engine());
    e.fwd_pd[static_cast<int>(stats)] = pd;
    slot = finish(pd, dnnl::batch_normalization_forward(pd));
    slot->args.insert({{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst}, {DNNL_ARG_MEAN, e.mean},
                       {DNNL_ARG_VARIANCE, e.var}, {DNNL_ARG_SCALE, e.scale}, {DNNL_ARG_SHIFT, e.shift}});
    if (relu) {
      if (!e.workspace) e.workspace = scratch(e.workspace_buf, pd.workspace_desc());
      slot->args.insert({DNNL_ARG_WORKSPACE, e.workspace});
    }
    return *slot;
  }

  Prim& backward_prim(Entry& e, Stats stats) {
    std::optional<Prim>& slot = e.bwd[static_cast<int>(stats)];
    if (slot) return *slot;
    forward_prim(e, stats);  // the hint
    dnnl::batch_normalization_backward::desc d(dnnl::prop_kind::backward, e.data_md, e.data_md,
                                               static_cast<float>(eps), flags(stats));
    dnnl::batch_normalization_backward::primitive_desc pd(d, attr(), engine(), e.fwd_pd[static_cast<int>(stats)]);
    slot = finish(pd, dnnl::batch_normalization_backward(pd));
    slot->args.insert({{DNNL_ARG_SRC, e.src}, {DNNL_ARG_MEAN, e.mean}, {DNNL_ARG_VARIANCE, e.var},
                       {DNNL_ARG_DIFF_DST, e.diff_dst}, {DNNL_ARG_SCALE, e.scale},
                       {DNNL_ARG_SHIFT, e.shift}, {DNNL_ARG_DIFF_SRC, e.diff_src},
                       {DNNL_ARG_DIFF_SCALE, e.diff_scale}, {DNNL_ARG_DIFF_SHIFT, e.diff_shift}});
    if (relu) slot->args.insert({DNNL_ARG_WORKSPACE, e.workspace});
    return *slot;
  }

  // Synchronised forward: the global batch's mean and biased variance into
  // batch_mean and batch_var, its values per channel into global_count. One
  // reducer call, on [Σx (C), Σx² (C), values per channel]. The sums are
  // double: E[x²] − μ² loses log2(μ²/σ²) of double's 53 bits to
  // cancellation, which leaves more than f32's 24 unless |μ| > ~10⁴·σ.
  void global_batch_statistics(const Tensor& x, BatchStatsReducer& reducer) {
    const std::int64_t c = channels, rows = x.numel() / c;
    reduced.resize(static_cast<std::size_t>(2 * c + 1));
    channel_sums(x.data<float>(), rows, c, partials, reduced.data());
    reduced[2 * c] = static_cast<double>(rows);
    reducer.sum(reduced.data(), reduced.size());
    global_count = reduced[2 * c];
    // Every rank has the same count: they all throw or none does.
    if (!(global_count > 1))
      throw UsageError(who() + ": train mode needs more than one value per channel across the ranks' batches, "
                               "got " + num(global_count) + " (input " + x.shape().str() + " here)");
    float* mean = batch_mean.data<float>();
    float* var = batch_var.data<float>();
    for (std::int64_t j = 0; j < c; ++j) {
      const double mu = reduced[j] / global_count;
      mean[j] = static_cast<float>(mu);
      var[j] = static_cast<float>(std::max(0.0, reduced[c + j] / global_count - mu * mu));
    }
  }

  // Synchronised backward, after oneDNN's with the statistics given has left
  // dx = γ/σ·dy' (dy' = dy through the fused ReLU's mask) and the local
  // Σdy'·x̂ and Σdy' in dgamma and dbeta: the terms through μ and σ², over
  // the global batch: dx −= γ/(σ·M)·(Σdy' + x̂·Σdy'·x̂), both sums global
  // (one reducer call on [Σdy'·x̂ (C), Σdy' (C)]).
  void subtract_global_batch_terms(BatchStatsReducer& reducer) {
    const std::int64_t c = channels;
    reduced.resize(static_cast<std::size_t>(2 * c));
    const float* dg = dgamma.data<float>();
    const float* db = dbeta.data<float>();
    for (std::int64_t j = 0; j < c; ++j) {
      reduced[j] = dg[j];
      reduced[c + j] = db[j];
    }
    reducer.sum(reduced.data(), reduced.size());
    // With x̂ = (x − μ)/σ: the term is shift + slope·x per channel.
    shift.resize(static_cast<std::size_t>(c));
    slope.resize(static_cast<std::size_t>(c));
    const float* gamma = weight.value.data<float>();
    const float* mean = batch_mean.data<float>();
    const float* var = batch_var.data<float>();
    for (std::int64_t j = 0; j < c; ++j) {
      const double inv_std = 1.0 / std::sqrt(static_cast<double>(var[j]) + eps);
      const double k = gamma[j] * inv_std / global_count;
      const double slope_j = k * inv_std * reduced[j];
      slope[j] = static_cast<float>(slope_j);
      shift[j] = static_cast<float>(k * reduced[c + j] - slope_j * mean[j]);
    }
    subtract_affine(x.data<float>(), shift.data(), slope.data(), x.numel() / c, c, dx.data<float>());
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
  BatchStatsReducer* reducer = mode == Mode::train ? batch_stats_reducer() : nullptr;
  const Stats stats = mode == Mode::eval ? Stats::running : reducer ? Stats::global_batch : Stats::batch;
  // Synchronised, the count that matters is the global one (checked once summed).
  if (stats == Stats::batch && x.numel() / m.channels < 2)
    throw UsageError(m.who() + ": train mode needs more than one value per channel, got input " +
                     x.shape().str());
  m.last = nullptr;
  if (stats == Stats::global_batch) m.global_batch_statistics(x, *reducer);
  try {
    Impl::Entry& e = m.entry(x.shape());
    Prim& p = m.forward_prim(e, stats);
    m.y.ensure(x.shape(), DType::f32);
    e.src.set_data_handle(ptr(x));
    e.dst.set_data_handle(m.y.raw());
    e.mean.set_data_handle(m.mean_of(stats).raw());
    e.var.set_data_handle(m.var_of(stats).raw());
    e.scale.set_data_handle(m.weight.value.raw());
    e.shift.set_data_handle(m.bias.value.raw());
    p.prim.execute(stream(), p.args);
    stream().wait();
    if (stats != Stats::running) {
      const double count =
          stats == Stats::global_batch ? m.global_count : static_cast<double>(x.numel() / m.channels);
      const float mom = static_cast<float>(m.momentum);
      const float unbias = static_cast<float>(count / (count - 1));
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
    m.last_stats = stats;
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
  const Stats stats = m.last_stats;
  // The input gradient of a synchronised forward needs the global sums; the
  // parameters' do not (the runtime sums those with the other gradients).
  // want_input_grad is a matter of the layer's place in the network, the same
  // on every rank, so every rank makes the call or none does.
  BatchStatsReducer* reducer = nullptr;
  if (stats == Stats::global_batch && want_input_grad) {
    reducer = batch_stats_reducer();
    if (!reducer)
      throw UsageError(m.who() + ": backward() of a forward() synchronised across ranks needs the "
                                 "batch-statistics reducer installed on this thread");
  }
  try {
    Prim& p = m.backward_prim(e, stats);
    m.dx.ensure(e.shape, DType::f32);
    e.src.set_data_handle(m.x.raw());
    e.mean.set_data_handle(m.mean_of(stats).raw());
    e.var.set_data_handle(m.var_of(stats).raw());
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
  gradient_ready(m.weight);
  gradient_ready(m.bias);
  if (!want_input_grad) {
    static const Tensor none;
    return none;
  }
  if (reducer) m.subtract_global_batch_terms(*reducer);
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
