#include "adamw_cuda.hpp"

#include "../optimizer_cuda.cuh"

#include <cmath>
#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "adamw (cuda)";

// The CPU build's loop (adamw.cpp), one element per thread iteration.
__global__ void adamw_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, std::int64_t n, float step_size, float inv_sqrt_bc2, float b1,
                            float c1, float b2, float c2, float eps, float keep) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float gk = g[k];
    const float mk = b1 * m[k] + c1 * gk;
    const float vk = b2 * v[k] + c2 * (gk * gk);
    m[k] = mk;
    v[k] = vk;
    w[k] = keep * w[k] - step_size * mk / (sqrtf(vk) * inv_sqrt_bc2 + eps);
  }
}

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
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = static_cast<float>(beta1_), c1 = static_cast<float>(1.0 - beta1_);
  const float b2 = static_cast<float>(beta2_), c2 = static_cast<float>(1.0 - beta2_);
  const float eps = static_cast<float>(eps_);
  const float decayed = static_cast<float>(1.0 - lr * weight_decay_);  // decoupled: w shrinks by lr * wd
  const cudaStream_t st = gpu::stream();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    const std::int64_t n = q.value.numel();
    if (n == 0) continue;
    const float keep = q.decay ? decayed : 1.0f;
    adamw_kernel<<<gpu::update_blocks(n), gpu::update_threads, 0, st>>>(
        q.value.data<float>(), q.grad.data<float>(), m_[i].data<float>(), v_[i].data<float>(), n, step_size,
        inv_sqrt_bc2, b1, c1, b2, c2, eps, keep);
    CONTRA_CUDA_LAUNCHED(who, adamw_kernel);
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
