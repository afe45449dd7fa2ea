#include "adamw.hpp"

#include <contra/memory_budget.hpp>

#include "../adam_update.hpp"

#include <cstdint>
#include <string>

namespace contra::plugins {

contra::Schema AdamW::schema() {
  return contra::Schema("adamw", "Adam with decoupled weight decay, PyTorch AdamW semantics")
      .add<double>("lr", 1e-3, "base learning rate, multiplied by the schedule's factor").range(1e-12, 100.0)
      .add<double>("beta1", 0.9, "decay rate of the first moment (mean of gradients)")
      .range(0.0, 0.999999)
      .add<double>("beta2", 0.999, "decay rate of the second moment (mean of squared gradients)")
      .range(0.0, 0.999999999)
      .add<double>("eps", 1e-8, "added to the square root of the second moment before dividing")
      .range(0.0, 1.0)
      .add<double>("weight_decay", 0.01,
                   "decoupled decay: parameters marked decay shrink by lr * weight_decay per step")
      .at_least(0.0);
}

AdamW::AdamW(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      beta1_(p.get<double>("beta1")),
      beta2_(p.get<double>("beta2")),
      eps_(p.get<double>("eps")),
      weight_decay_(p.get<double>("weight_decay")),
      last_lr_(lr_) {}

void AdamW::configure(const std::vector<contra::Parameter*>& params) {
  {
    // Moment estimates, checked before allocating any.
    std::uint64_t numel = 0;
    for (const contra::Parameter* q : params)
      if (q) numel = contra::add_bytes(numel, static_cast<std::uint64_t>(q->value.numel()));
    contra::require_memory("adamw", contra::mul_bytes(numel, 2 * sizeof(float)), "moment estimates",
                           "2 × " + std::to_string(numel) + " parameters × 4 B");
  }
  params_ = params;
  m_.clear();
  v_.clear();
  m_.resize(params_.size());
  v_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter* q = params_[i];
    if (!q) throw contra::UsageError("adamw: configure() got a null parameter");
    if (q->value.dtype() != contra::DType::f32)
      throw contra::UsageError("adamw: parameter '" + q->name + "' is not f32");
    q->grad.expect(q->value.shape(), contra::DType::f32,
                   ("adamw: gradient of parameter '" + q->name + "'").c_str());
    m_[i] = contra::Tensor::zeros(q->value.shape(), contra::DType::f32);
    v_[i] = contra::Tensor::zeros(q->value.shape(), contra::DType::f32);
  }
  configured_ = true;
  t_.data<std::int64_t>()[0] = 0;
}

void AdamW::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("adamw: step() called before configure()");
  for (contra::Parameter* q : params_)
    if (q->grad.shape() != q->value.shape())
      throw contra::UsageError("adamw: gradient of parameter '" + q->name + "' has shape " +
                               q->grad.shape().str() + ", the parameter " + q->value.shape().str());
  const std::int64_t t = ++t_.data<std::int64_t>()[0];
  const double lr = lr_ * s.lr_scale;
  const adam::StepScalars scalars = adam::step_scalars(lr, beta1_, beta2_, eps_, t);
  const float decayed = static_cast<float>(1.0 - lr * weight_decay_);  // decoupled: w shrinks by lr * wd
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    float* w = q.value.data<float>();
    const float* g = q.grad.data<float>();
    float* m = m_[i].data<float>();
    float* v = v_[i].data<float>();
    const std::int64_t n = q.value.numel();
    const float keep = q.decay ? decayed : 1.0f;
    for (std::int64_t k = 0; k < n; ++k) adam::update<adam::Decay::decoupled>(w, g, m, v, k, scalars, keep);
  }
  last_lr_ = lr;
}

}  // namespace contra::plugins

namespace contra::plugins {

void AdamW::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i]->name + ".exp_avg", &m_[i]);
    out.emplace_back(params_[i]->name + ".exp_avg_sq", &v_[i]);
  }
  out.emplace_back("step", &t_);
}

}  // namespace contra::plugins
