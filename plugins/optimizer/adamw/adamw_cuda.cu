#include "adamw_cuda.hpp"

#include "../adam_cuda.cuh"

#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "adamw (cuda)";

}  // namespace

AdamWCuda::AdamWCuda(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      beta1_(p.get<double>("beta1")),
      beta2_(p.get<double>("beta2")),
      eps_(p.get<double>("eps")),
      weight_decay_(p.get<double>("weight_decay")),
      last_lr_(lr_) {}

void AdamWCuda::configure(const std::vector<contra::Parameter*>& params) {
  params_ = params;
  m_.clear();
  v_.clear();
  m_.resize(params_.size());
  v_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    gpu::expect_device_parameter(who, params_[i]);
    m_[i] = contra::Tensor::zeros(params_[i]->value.shape(), contra::DType::f32, contra::Device::cuda);
    v_[i] = contra::Tensor::zeros(params_[i]->value.shape(), contra::DType::f32, contra::Device::cuda);
  }
  // The moments' memsets are queued on this thread's stream: done before a
  // step() on another stream can read them (as the encoders and lars do).
  CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(gpu::stream()));
  configured_ = true;
  t_.data<std::int64_t>()[0] = 0;
}

void AdamWCuda::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("adamw: step() called before configure()");
  for (contra::Parameter* q : params_)
    if (q->grad.shape() != q->value.shape())
      throw contra::UsageError("adamw: gradient of parameter '" + q->name + "' has shape " + q->grad.shape().str() +
                               ", the parameter " + q->value.shape().str());
  const std::int64_t t = ++t_.data<std::int64_t>()[0];
  const double lr = lr_ * s.lr_scale;
  const adam::StepScalars scalars = adam::step_scalars(lr, beta1_, beta2_, eps_, t);
  const float decayed = static_cast<float>(1.0 - lr * weight_decay_);  // decoupled: w shrinks by lr * wd
  const cudaStream_t st = gpu::stream();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    const float keep = q.decay ? decayed : 1.0f;
    gpu::adam_step<adam::Decay::decoupled>(who, q.value, q.grad, m_[i], v_[i], scalars, keep, st);
  }
  last_lr_ = lr;
}

void AdamWCuda::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i]->name + ".exp_avg", &m_[i]);
    out.emplace_back(params_[i]->name + ".exp_avg_sq", &v_[i]);
  }
  out.emplace_back("step", &t_);
}

}  // namespace contra::plugins
