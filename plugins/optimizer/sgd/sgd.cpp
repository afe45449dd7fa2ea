#include "sgd.hpp"

#include <contra/memory_budget.hpp>

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
}  // namespace

contra::Schema Sgd::schema() {
  return contra::Schema("sgd", "stochastic gradient descent with (Nesterov) momentum, PyTorch semantics")
      .add<double>("lr", 0.1, "base learning rate, multiplied by the schedule's factor").range(1e-12, 100.0)
      .add<double>("momentum", 0.9, "momentum factor in [0, 1); 0 disables the momentum buffer")
      .range(0.0, 1.0)
      .add<double>("weight_decay", 0.0, "L2 penalty added to the gradient of parameters marked decay")
      .at_least(0.0)
      .add<bool>("nesterov", false, "use Nesterov momentum (needs momentum > 0)");
}

Sgd::Sgd(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      momentum_(p.get<double>("momentum")),
      weight_decay_(p.get<double>("weight_decay")),
      nesterov_(p.get<bool>("nesterov")),
      last_lr_(lr_) {
  if (momentum_ >= 1.0)
    throw contra::ConfigError(located(p, "momentum") + key(p, "momentum") +
                              ": expected a value in [0, 1), found " + num(momentum_));
  if (nesterov_ && momentum_ <= 0.0)
    throw contra::ConfigError(located(p, "nesterov") + key(p, "nesterov") + " = true requires " +
                              key(p, "momentum") + " > 0, found " + key(p, "momentum") + " = " +
                              num(momentum_));
}

void Sgd::configure(const std::vector<contra::Parameter*>& params) {
  if (momentum_ > 0.0) {
    // Momentum buffers, checked before allocating any.
    std::uint64_t numel = 0;
    for (const contra::Parameter* q : params)
      if (q) numel = contra::add_bytes(numel, static_cast<std::uint64_t>(q->value.numel()));
    contra::require_memory("sgd", contra::mul_bytes(numel, sizeof(float)), "momentum buffers",
                           std::to_string(numel) + " parameters × 4 B");
  }
  params_ = params;
  buffers_.clear();
  buffers_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter* q = params_[i];
    if (!q) throw contra::UsageError("sgd: configure() got a null parameter");
    if (q->value.dtype() != contra::DType::f32)
      throw contra::UsageError("sgd: parameter '" + q->name + "' is not f32");
    q->grad.expect(q->value.shape(), contra::DType::f32,
                   ("sgd: gradient of parameter '" + q->name + "'").c_str());
    if (momentum_ > 0.0) buffers_[i].ensure(q->value.shape(), contra::DType::f32);
  }
  configured_ = true;
  steps_.data<std::int64_t>()[0] = 0;
}

void Sgd::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("sgd: step() called before configure()");
  const float lr = static_cast<float>(lr_ * s.lr_scale);
  const float mu = static_cast<float>(momentum_);
  const bool first = steps_.data<std::int64_t>()[0] == 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    if (q.grad.shape() != q.value.shape())
      throw contra::UsageError("sgd: gradient of parameter '" + q.name + "' has shape " +
                               q.grad.shape().str() + ", the parameter " + q.value.shape().str());
    float* w = q.value.data<float>();
    const float* g = q.grad.data<float>();
    const std::int64_t n = q.value.numel();
    const float wd = q.decay ? static_cast<float>(weight_decay_) : 0.0f;
    if (mu == 0.0f) {
      for (std::int64_t k = 0; k < n; ++k) w[k] -= lr * (g[k] + wd * w[k]);
      continue;
    }
    float* b = buffers_[i].data<float>();
    if (first) {
      if (nesterov_) {
        for (std::int64_t k = 0; k < n; ++k) {
          float gk = g[k] + wd * w[k];
          b[k] = gk;
          w[k] -= lr * (gk + mu * gk);
        }
      } else {
        for (std::int64_t k = 0; k < n; ++k) {
          float gk = g[k] + wd * w[k];
          b[k] = gk;
          w[k] -= lr * gk;
        }
      }
    } else if (nesterov_) {
      for (std::int64_t k = 0; k < n; ++k) {
        float gk = g[k] + wd * w[k];
        float bk = mu * b[k] + gk;
        b[k] = bk;
        w[k] -= lr * (gk + mu * bk);
      }
    } else {
      for (std::int64_t k = 0; k < n; ++k) {
        float gk = g[k] + wd * w[k];
        float bk = mu * b[k] + gk;
        b[k] = bk;
        w[k] -= lr * bk;
      }
    }
  }
  ++steps_.data<std::int64_t>()[0];
  last_lr_ = lr_ * s.lr_scale;
}

}  // namespace contra::plugins

namespace contra::plugins {

void Sgd::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (buffers_[i].defined()) out.emplace_back(params_[i]->name + ".momentum_buffer", &buffers_[i]);
  out.emplace_back("step", &steps_);
}

}  // namespace contra::plugins
