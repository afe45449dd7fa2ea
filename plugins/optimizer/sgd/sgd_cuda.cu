#include "sgd_cuda.hpp"

#include "../optimizer_cuda.cuh"

#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "sgd (cuda)";

enum Mode : int { plain, first, first_nesterov, momentum, nesterov };

// The CPU build's loops (sgd.cpp), one element per thread iteration.
__global__ void sgd_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ b,
                           std::int64_t n, float lr, float wd, float mu, int mode) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float gk = g[k] + wd * w[k];
    switch (mode) {
      case plain: w[k] -= lr * gk; break;
      case first: b[k] = gk; w[k] -= lr * gk; break;
      case first_nesterov: b[k] = gk; w[k] -= lr * (gk + mu * gk); break;
      case momentum: {
        const float bk = mu * b[k] + gk;
        b[k] = bk;
        w[k] -= lr * bk;
        break;
      }
      default: {
        const float bk = mu * b[k] + gk;
        b[k] = bk;
        w[k] -= lr * (gk + mu * bk);
      }
    }
  }
}

}  // namespace

SgdCuda::SgdCuda(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      momentum_(p.get<double>("momentum")),
      weight_decay_(p.get<double>("weight_decay")),
      nesterov_(p.get<bool>("nesterov")),
      last_lr_(lr_) {
  (void)Sgd(p);  // the CPU build's checks of the parameters, with its messages
}

void SgdCuda::configure(const std::vector<contra::Parameter*>& params) {
  params_ = params;
  buffers_.clear();
  buffers_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    gpu::expect_device_parameter(who, params_[i]);
    if (momentum_ > 0.0) buffers_[i].ensure(params_[i]->value.shape(), contra::DType::f32, contra::Device::cuda);
  }
  configured_ = true;
  steps_.data<std::int64_t>()[0] = 0;
}

void SgdCuda::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("sgd: step() called before configure()");
  for (contra::Parameter* q : params_)
    if (q->grad.shape() != q->value.shape())
      throw contra::UsageError("sgd: gradient of parameter '" + q->name + "' has shape " + q->grad.shape().str() +
                               ", the parameter " + q->value.shape().str());
  const float lr = static_cast<float>(lr_ * s.lr_scale);
  const float mu = static_cast<float>(momentum_);
  const bool first_step = steps_.data<std::int64_t>()[0] == 0;
  const int mode = mu == 0.0f ? plain
                   : first_step ? (nesterov_ ? first_nesterov : first)
                                : (nesterov_ ? nesterov : momentum);
  const cudaStream_t st = gpu::stream();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    const std::int64_t n = q.value.numel();
    if (n == 0) continue;
    const float wd = q.decay ? static_cast<float>(weight_decay_) : 0.0f;
    float* b = mode == plain ? nullptr : buffers_[i].data<float>();
    sgd_kernel<<<gpu::update_blocks(n), gpu::update_threads, 0, st>>>(q.value.data<float>(), q.grad.data<float>(),
                                                                       b, n, lr, wd, mu, mode);
    CONTRA_CUDA_LAUNCHED(who, sgd_kernel);
  }
  ++steps_.data<std::int64_t>()[0];
  last_lr_ = lr_ * s.lr_scale;
}

void SgdCuda::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (buffers_[i].defined()) out.emplace_back(params_[i]->name + ".momentum_buffer", &buffers_[i]);
  out.emplace_back("step", &steps_);
}

}  // namespace contra::plugins
