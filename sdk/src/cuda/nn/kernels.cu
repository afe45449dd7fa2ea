// The few element-wise and reduction kernels the GPU layers need beyond
// cuDNN and cuBLAS: the residual add; ReLU's backward from its output alone
// (cuDNN's reads the input, which the CPU layer does not keep, and does not
// document its choice at 0); the backward pass of a frozen batch norm
// (cuDNN's batch norm backward only differentiates through batch statistics).
#include "nn_util.hpp"

namespace contra::cuda::nn::detail {

namespace {

// out may be a or b (in place): no __restrict__ here.
__global__ void add_kernel(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[k] = a[k] + b[k];
}

// dL/dx = dL/dy where y > 0, else 0: the CPU layer's rule.
__global__ void relu_backward_kernel(const float* __restrict__ y, const float* __restrict__ dy,
                                     float* __restrict__ dx, std::int64_t n) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}

constexpr int bn_threads = 256;

// One block per channel (grid-stride over channels); the block's threads
// stride over the rows and reduce in shared memory, in double so that long
// rows do not lose the small terms.
__global__ void bn_frozen_backward_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                          const float* __restrict__ gamma, const float* __restrict__ mean,
                                          const float* __restrict__ var, float eps, std::int64_t rows,
                                          std::int64_t channels, float* __restrict__ dx, float* dgamma,
                                          float* dbeta) {
  __shared__ double s_g[bn_threads], s_b[bn_threads];
  for (std::int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    const float inv = 1.0f / sqrtf(var[c] + eps);
    const float m = mean[c];
    const float scale = gamma[c] * inv;
    double g = 0.0, b = 0.0;
    for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
      const std::int64_t k = r * channels + c;
      const float d = dy[k];
      g += static_cast<double>(d) * ((x[k] - m) * inv);
      b += d;
      if (dx) dx[k] = d * scale;
    }
    s_g[threadIdx.x] = g;
    s_b[threadIdx.x] = b;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step /= 2) {
      if (static_cast<int>(threadIdx.x) < step) {
        s_g[threadIdx.x] += s_g[threadIdx.x + step];
        s_b[threadIdx.x] += s_b[threadIdx.x + step];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      dgamma[c] += static_cast<float>(s_g[0]);
      dbeta[c] += static_cast<float>(s_b[0]);
    }
    __syncthreads();  // s_g, s_b are reused by the next channel
  }
}

// Per channel: Σx and Σx² over the rows, in double (synchronised batch
// norm's local statistics), written to sums[c] and sums[C + c].
__global__ void bn_sums_kernel(const float* __restrict__ x, std::int64_t rows, std::int64_t channels,
                               double* __restrict__ sums) {
  __shared__ double s_x[bn_threads], s_xx[bn_threads];
  for (std::int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double a = 0.0, b = 0.0;
    for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
      const double v = x[r * channels + c];
      a += v;
      b += v * v;
    }
    s_x[threadIdx.x] = a;
    s_xx[threadIdx.x] = b;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step /= 2) {
      if (static_cast<int>(threadIdx.x) < step) {
        s_x[threadIdx.x] += s_x[threadIdx.x + step];
        s_xx[threadIdx.x] += s_xx[threadIdx.x + step];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      sums[c] = s_x[0];
      sums[channels + c] = s_xx[0];
    }
    __syncthreads();
  }
}

// dx -= γ/σ / M · (Σdy + x̂ · Σdy·x̂), the sums over the global batch: the
// terms of the input gradient that the fixed-statistics backward leaves out.
__global__ void bn_global_terms_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                       const float* __restrict__ mean, const float* __restrict__ var, float eps,
                                       const float* __restrict__ sum_dy_xhat, const float* __restrict__ sum_dy,
                                       double count, std::int64_t rows, std::int64_t channels,
                                       float* __restrict__ dx) {
  const std::int64_t n = rows * channels;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t c = k % channels;
    const float inv = 1.0f / sqrtf(var[c] + eps);
    const float xhat = (x[k] - mean[c]) * inv;
    dx[k] -= static_cast<float>(gamma[c] * inv / count) * (sum_dy[c] + xhat * sum_dy_xhat[c]);
  }
}

unsigned blocks_for(std::int64_t n, unsigned threads) {
  std::int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;
  return static_cast<unsigned>(b);
}

}  // namespace

void launch_add(const float* a, const float* b, float* out, std::int64_t n, cudaStream_t s) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n, 256), 256, 0, s>>>(a, b, out, n);
  NN_CUDA("add (cuda)", cudaGetLastError());
}

void launch_relu_backward(const float* y, const float* dy, float* dx, std::int64_t n, cudaStream_t s) {
  if (n == 0) return;
  relu_backward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(y, dy, dx, n);
  NN_CUDA("ReLU (cuda)", cudaGetLastError());
}

void launch_bn_frozen_backward(const float* x, const float* dy, const float* gamma, const float* mean,
                               const float* var, float eps, std::int64_t rows, std::int64_t channels, float* dx,
                               float* dgamma, float* dbeta, cudaStream_t s) {
  if (channels == 0) return;
  const unsigned blocks = static_cast<unsigned>(channels < 65535 ? channels : 65535);
  bn_frozen_backward_kernel<<<blocks, bn_threads, 0, s>>>(x, dy, gamma, mean, var, eps, rows, channels, dx, dgamma,
                                                          dbeta);
  NN_CUDA("BatchNorm (cuda)", cudaGetLastError());
}

void launch_bn_sums(const float* x, std::int64_t rows, std::int64_t channels, double* sums, cudaStream_t s) {
  if (channels == 0) return;
  const unsigned blocks = static_cast<unsigned>(channels < 65535 ? channels : 65535);
  bn_sums_kernel<<<blocks, bn_threads, 0, s>>>(x, rows, channels, sums);
  NN_CUDA("BatchNorm (cuda)", cudaGetLastError());
}

void launch_bn_global_terms(const float* x, const float* gamma, const float* mean, const float* var, float eps,
                            const float* sum_dy_xhat, const float* sum_dy, double count, std::int64_t rows,
                            std::int64_t channels, float* dx, cudaStream_t s) {
  if (rows * channels == 0) return;
  bn_global_terms_kernel<<<blocks_for(rows * channels, 256), 256, 0, s>>>(x, gamma, mean, var, eps, sum_dy_xhat,
                                                                          sum_dy, count, rows, channels, dx);
  NN_CUDA("BatchNorm (cuda)", cudaGetLastError());
}

}  // namespace contra::cuda::nn::detail
