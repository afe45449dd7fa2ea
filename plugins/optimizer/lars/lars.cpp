#include "lars.hpp"

#include <contra/memory_budget.hpp>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace contra::plugins {

namespace {
std::string located(const contra::Params& p, const char* key) {
  std::string where = p.where(key).str();
  return where.empty() ? std::string() : where + ": ";
}
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

// Sums in eight independent double lanes so that the compiler can vectorise
// the reductions without reassociating a single sum.
constexpr std::int64_t lanes = 8;

// sum of x[k]^2
double sum_of_squares(const float* x, std::int64_t n) {
  double acc[lanes] = {};
  std::int64_t k = 0;
  for (; k + lanes <= n; k += lanes)
    for (std::int64_t j = 0; j < lanes; ++j) {
      double xj = x[k + j];
      acc[j] += xj * xj;
    }
  double s = 0.0;
  for (; k < n; ++k) s += static_cast<double>(x[k]) * x[k];
  for (std::int64_t j = 0; j < lanes; ++j) s += acc[j];
  return s;
}

// sum of (g[k] + wd * w[k])^2, the decayed gradient computed as step() does
double sum_of_squares(const float* g, const float* w, float wd, std::int64_t n) {
  double acc[lanes] = {};
  std::int64_t k = 0;
  for (; k + lanes <= n; k += lanes)
    for (std::int64_t j = 0; j < lanes; ++j) {
      double gj = g[k + j] + wd * w[k + j];
      acc[j] += gj * gj;
    }
  double s = 0.0;
  for (; k < n; ++k) {
    double gk = g[k] + wd * w[k];
    s += gk * gk;
  }
  for (std::int64_t j = 0; j < lanes; ++j) s += acc[j];
  return s;
}
}  // namespace

contra::Schema Lars::schema() {
  return contra::Schema("lars", "LARS with momentum (You et al. 2017), as in SimCLR")
      .add<double>("lr", 0.3,
                   "base learning rate, multiplied by the schedule's factor (SimCLR: 0.3 * batch / 256)")
      .range(1e-12, 100.0)
      .add<double>("momentum", 0.9, "momentum factor in [0, 1); 0 disables the momentum buffer")
      .range(0.0, 1.0)
      .add<double>("weight_decay", 1e-6, "L2 penalty added to the gradient of parameters marked decay")
      .at_least(0.0)
      .add<double>("trust_coefficient", 0.001,
                   "eta in the trust ratio eta * ||w|| / (||g|| + eps)")
      .range(1e-9, 1.0)
      .add<double>("eps", 1e-9, "added to ||g|| in the trust ratio's denominator")
      .range(0.0, 1.0);
}

Lars::Lars(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      momentum_(p.get<double>("momentum")),
      weight_decay_(p.get<double>("weight_decay")),
      trust_coefficient_(p.get<double>("trust_coefficient")),
      eps_(p.get<double>("eps")),
      last_lr_(lr_) {
  if (momentum_ >= 1.0)
    throw contra::ConfigError(located(p, "momentum") + key(p, "momentum") +
                              ": expected a value in [0, 1), found " + num(momentum_));
}

void Lars::configure(const std::vector<contra::Parameter*>& params) {
  if (momentum_ > 0.0) {
    // Momentum buffers, checked before allocating any.
    std::uint64_t numel = 0;
    for (const contra::Parameter* q : params)
      if (q) numel = contra::add_bytes(numel, static_cast<std::uint64_t>(q->value.numel()));
    contra::require_memory("lars", contra::mul_bytes(numel, sizeof(float)), "momentum buffers",
                           std::to_string(numel) + " parameters × 4 B");
  }
  params_ = params;
  buffers_.clear();
  buffers_.resize(params_.size());
  ratios_.assign(params_.size(), 1.0);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter* q = params_[i];
    if (!q) throw contra::UsageError("lars: configure() got a null parameter");
    if (q->value.dtype() != contra::DType::f32)
      throw contra::UsageError("lars: parameter '" + q->name + "' is not f32");
    q->grad.expect(q->value.shape(), contra::DType::f32,
                   ("lars: gradient of parameter '" + q->name + "'").c_str());
    if (momentum_ > 0.0) buffers_[i] = contra::Tensor::zeros(q->value.shape(), contra::DType::f32);
  }
  configured_ = true;
}

void Lars::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("lars: step() called before configure()");
  for (contra::Parameter* q : params_)
    if (q->grad.shape() != q->value.shape())
      throw contra::UsageError("lars: gradient of parameter '" + q->name + "' has shape " +
                               q->grad.shape().str() + ", the parameter " + q->value.shape().str());
  const double lr = lr_ * s.lr_scale;
  const float mu = static_cast<float>(momentum_);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    float* w = q.value.data<float>();
    const float* g = q.grad.data<float>();
    const std::int64_t n = q.value.numel();
    const float wd = q.decay ? static_cast<float>(weight_decay_) : 0.0f;
    double ratio = 1.0;
    if (q.decay) {
      const double w_norm = std::sqrt(sum_of_squares(w, n));
      const double g_norm = std::sqrt(sum_of_squares(g, w, wd, n));
      if (w_norm > 0.0 && g_norm > 0.0) ratio = trust_coefficient_ * w_norm / (g_norm + eps_);
    }
    ratios_[i] = ratio;
    const float scaled_lr = static_cast<float>(lr * ratio);
    if (mu == 0.0f) {
      for (std::int64_t k = 0; k < n; ++k) w[k] -= scaled_lr * (g[k] + wd * w[k]);
      continue;
    }
    float* v = buffers_[i].data<float>();
    for (std::int64_t k = 0; k < n; ++k) {
      float vk = mu * v[k] + scaled_lr * (g[k] + wd * w[k]);
      v[k] = vk;
      w[k] -= vk;
    }
  }
  last_lr_ = lr;
}

}  // namespace contra::plugins

namespace contra::plugins {

void Lars::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (buffers_[i].defined()) out.emplace_back(params_[i]->name + ".momentum_buffer", &buffers_[i]);
}

}  // namespace contra::plugins
