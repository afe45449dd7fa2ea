#include "lars_cuda.hpp"

#include "../optimizer_cuda.cuh"

#include <cmath>
#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "lars (cuda)";
constexpr unsigned norm_threads = 256;
constexpr unsigned max_norm_blocks = 1024;

// Per block b: partial[b] = Σ w², partial[blocks + b] = Σ (g + wd·w)² over its
// grid-stride share, in double (the decayed gradient itself in float, as the
// CPU build computes it).
__global__ void __launch_bounds__(norm_threads)
    lars_norms_kernel(const float* __restrict__ w, const float* __restrict__ g, std::int64_t n, float wd,
                      double* __restrict__ partial) {
  __shared__ double ws[norm_threads], gs[norm_threads];
  double sw = 0.0, sg = 0.0;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double wk = w[k];
    const double gk = g[k] + wd * w[k];
    sw += wk * wk;
    sg += gk * gk;
  }
  ws[threadIdx.x] = sw;
  gs[threadIdx.x] = sg;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      ws[threadIdx.x] += ws[threadIdx.x + half];
      gs[threadIdx.x] += gs[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = ws[0];
    partial[gridDim.x + blockIdx.x] = gs[0];
  }
}

// One block: the partial sums in a fixed order, then ratio = η‖w‖/(‖g‖ + eps)
// (1 when either norm is 0) and scaled_lr = lr · ratio for parameter i.
__global__ void __launch_bounds__(norm_threads)
    lars_ratio_kernel(const double* __restrict__ partial, unsigned blocks, double lr, double eta, double eps,
                      double* __restrict__ ratio, float* __restrict__ scaled_lr, std::int64_t i) {
  __shared__ double ws[norm_threads], gs[norm_threads];
  double sw = 0.0, sg = 0.0;
  for (unsigned b = threadIdx.x; b < blocks; b += blockDim.x) {
    sw += partial[b];
    sg += partial[blocks + b];
  }
  ws[threadIdx.x] = sw;
  gs[threadIdx.x] = sg;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      ws[threadIdx.x] += ws[threadIdx.x + half];
      gs[threadIdx.x] += gs[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double w_norm = sqrt(ws[0]), g_norm = sqrt(gs[0]);
    const double r = w_norm > 0.0 && g_norm > 0.0 ? eta * w_norm / (g_norm + eps) : 1.0;
    ratio[i] = r;
    scaled_lr[i] = static_cast<float>(lr * r);
  }
}

// The CPU build's update loops (lars.cpp); the scaled rate comes from the
// device (parameters marked decay) or, when null, from the argument, and then
// the parameter's ratio is 1.
__global__ void lars_update_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ v,
                                   std::int64_t n, const float* __restrict__ scaled_lr_dev, float scaled_lr_host,
                                   float wd, float mu, double* __restrict__ ratio) {
  const float lr = scaled_lr_dev ? *scaled_lr_dev : scaled_lr_host;
  if (!scaled_lr_dev && blockIdx.x == 0 && threadIdx.x == 0) *ratio = 1.0;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if (!v) {
      w[k] -= lr * (g[k] + wd * w[k]);
    } else {
      const float vk = mu * v[k] + lr * (g[k] + wd * w[k]);
      v[k] = vk;
      w[k] -= vk;
    }
  }
}

}  // namespace

LarsCuda::LarsCuda(const contra::Params& p)
    : lr_(p.get<double>("lr")),
      momentum_(p.get<double>("momentum")),
      weight_decay_(p.get<double>("weight_decay")),
      trust_coefficient_(p.get<double>("trust_coefficient")),
      eps_(p.get<double>("eps")),
      last_lr_(lr_) {
  (void)Lars(p);  // the CPU build's checks of the parameters, with its messages
}

void LarsCuda::configure(const std::vector<contra::Parameter*>& params) {
  params_ = params;
  buffers_.clear();
  buffers_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    gpu::expect_device_parameter(who, params_[i]);
    if (momentum_ > 0.0)
      buffers_[i] = contra::Tensor::zeros(params_[i]->value.shape(), contra::DType::f32, contra::Device::cuda);
  }
  const std::int64_t np = static_cast<std::int64_t>(params_.size());
  gpu::device_buffer<double>(partials_, 2 * max_norm_blocks);
  double* r = gpu::device_buffer<double>(ratios_, np);
  gpu::device_buffer<float>(scaled_lr_, np);
  // Ratios read before the first step are 1, as the CPU build's.
  std::vector<double> ones(static_cast<std::size_t>(np > 0 ? np : 1), 1.0);
  const cudaStream_t st = gpu::stream();
  CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(r, ones.data(), sizeof(double) * ones.size(), cudaMemcpyHostToDevice, st));
  CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(st));  // `ones` is pageable and goes out of scope
  configured_ = true;
}

void LarsCuda::step(const contra::OptimizerStep& s) {
  if (!configured_) throw contra::UsageError("lars: step() called before configure()");
  for (contra::Parameter* q : params_)
    if (q->grad.shape() != q->value.shape())
      throw contra::UsageError("lars: gradient of parameter '" + q->name + "' has shape " + q->grad.shape().str() +
                               ", the parameter " + q->value.shape().str());
  const double lr = lr_ * s.lr_scale;
  const float mu = static_cast<float>(momentum_);
  const cudaStream_t st = gpu::stream();
  double* partial = static_cast<double*>(partials_.raw());
  double* ratio = static_cast<double*>(ratios_.raw());
  float* scaled = scaled_lr_.data<float>();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    contra::Parameter& q = *params_[i];
    const std::int64_t n = q.value.numel();
    const float wd = q.decay ? static_cast<float>(weight_decay_) : 0.0f;
    float* w = q.value.data<float>();
    const float* g = q.grad.data<float>();
    const float* scaled_dev = nullptr;
    if (q.decay) {
      const unsigned blocks = gpu::blocks_for(n, norm_threads, max_norm_blocks);
      lars_norms_kernel<<<blocks, norm_threads, 0, st>>>(w, g, n, wd, partial);
      CONTRA_CUDA_LAUNCHED(who, lars_norms_kernel);
      lars_ratio_kernel<<<1, norm_threads, 0, st>>>(partial, blocks, lr, trust_coefficient_, eps_, ratio, scaled,
                                                    static_cast<std::int64_t>(i));
      CONTRA_CUDA_LAUNCHED(who, lars_ratio_kernel);
      scaled_dev = scaled + i;
    }
    float* v = mu == 0.0f ? nullptr : buffers_[i].data<float>();
    lars_update_kernel<<<gpu::update_blocks(n), gpu::update_threads, 0, st>>>(
        w, g, v, n, scaled_dev, static_cast<float>(lr), wd, mu, ratio + i);
    CONTRA_CUDA_LAUNCHED(who, lars_update_kernel);
  }
  last_lr_ = lr;
}

double LarsCuda::trust_ratio(std::size_t i) const {
  if (i >= params_.size())
    throw contra::UsageError("lars: trust_ratio(" + std::to_string(i) + ") of " + std::to_string(params_.size()) +
                             " parameters");
  double r = 0.0;
  const cudaStream_t st = gpu::stream();
  CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(&r, static_cast<const double*>(ratios_.raw()) + i, sizeof(double),
                                         cudaMemcpyDeviceToHost, st));
  CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(st));
  return r;
}

void LarsCuda::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (buffers_[i].defined()) out.emplace_back(params_[i]->name + ".momentum_buffer", &buffers_[i]);
}

}  // namespace contra::plugins
