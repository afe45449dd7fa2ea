// What the runtime's train step needs on the device beyond copies: in-place
// byte copies (checkpoint restore), a count of non-finite values (NaN checks
// without a host copy) and the momentum encoder's update. Reached through the
// bridge table (cuda_bridge.hpp). Built as C++17: CMake 3.25 knows no C++20
// flag for nvcc.
#include "train_kernels.hpp"

#include <contra/errors.hpp>

#include <cuda_runtime.h>

#include <string>

namespace contra::cuda::detail {

namespace {

void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess)
    throw DeviceError(std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

constexpr int threads = 256;

unsigned blocks_for(std::int64_t n) {
  // Grid-stride loops: enough blocks to fill an H200 (132 SMs), no more.
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1056 ? 1056 : b));
}

__global__ void count_nonfinite_kernel(const float* __restrict__ p, std::int64_t n,
                                       unsigned long long* __restrict__ count) {
  unsigned long long mine = 0;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    mine += isfinite(p[i]) ? 0ull : 1ull;
  // One atomic per warp that found something (normally none).
  for (int o = 16; o > 0; o >>= 1) mine += __shfl_down_sync(0xffffffffu, mine, o);
  if ((threadIdx.x & 31) == 0 && mine) atomicAdd(count, mine);
}

__global__ void momentum_update_kernel(float* __restrict__ k, const float* __restrict__ q, std::int64_t n,
                                       float m) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    k[i] = m * k[i] + (1.0f - m) * q[i];
}

}  // namespace

void copy_bytes(void* dst, const void* src, std::size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync(copy_bytes)");
}

std::int64_t count_nonfinite(const void* data, std::int64_t n, unsigned long long* device_counter,
                             unsigned long long* host_counter, void* stream) {
  if (n <= 0) return 0;
  auto s = static_cast<cudaStream_t>(stream);
  check(cudaMemsetAsync(device_counter, 0, sizeof(unsigned long long), s), "cudaMemsetAsync(count_nonfinite)");
  count_nonfinite_kernel<<<blocks_for(n), threads, 0, s>>>(static_cast<const float*>(data), n, device_counter);
  check(cudaGetLastError(), "count_nonfinite_kernel<<<>>>");
  check(cudaMemcpyAsync(host_counter, device_counter, sizeof(unsigned long long), cudaMemcpyDeviceToHost, s),
        "cudaMemcpyAsync(count_nonfinite)");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize(count_nonfinite)");
  return static_cast<std::int64_t>(*host_counter);
}

void momentum_update(void* k, const void* q, std::int64_t n, float m, void* stream) {
  if (n <= 0) return;
  momentum_update_kernel<<<blocks_for(n), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<float*>(k), static_cast<const float*>(q), n, m);
  check(cudaGetLastError(), "momentum_update_kernel<<<>>>");
}

}  // namespace contra::cuda::detail
