#include "queue_cuda.hpp"

#include "../../cuda_support.cuh"

#include <contra/l2_normalize.hpp>

#include <cstdint>

namespace contra::plugins {

namespace {

constexpr const char* who = "queue (cuda)";
// Norms below this are clamped, as torch.nn.functional.normalize does (and the CPU build).
constexpr float norm_eps = contra::l2_norm_eps;

// Row first_row + i of src, normalised, into slot (first_slot + i) mod K; one warp per row.
__global__ void write_keys_kernel(const float* __restrict__ src, std::int64_t first_row, std::int64_t count,
                                  std::int64_t dim, float* __restrict__ keys, std::int64_t size,
                                  std::int64_t first_slot) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (i >= count) return;
  const float* x = src + (first_row + i) * dim;
  float ss = 0.0f;
  for (std::int64_t k = lane; k < dim; k += 32) ss += x[k] * x[k];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float inv = 1.0f / fmaxf(sqrtf(ss), norm_eps);
  float* slot = keys + ((first_slot + i) % size) * dim;
  for (std::int64_t k = lane; k < dim; k += 32) slot[k] = x[k] * inv;
}

void write_keys_on_device(const contra::Tensor& src, std::int64_t first_row, std::int64_t count, contra::Tensor& keys,
                          std::int64_t first_slot) {
  if (count <= 0) return;
  const cudaStream_t s = gpu::stream();
  constexpr unsigned threads = 256, rows_per_block = threads / 32;
  write_keys_kernel<<<gpu::blocks_for(count, rows_per_block, 0x7fffffff), threads, 0, s>>>(
      src.data<float>(), first_row, count, keys.dim(1), keys.data<float>(), keys.dim(0), first_slot);
  CONTRA_CUDA_LAUNCHED(who, write_keys_kernel);
}

}  // namespace

QueueMemoryCuda::QueueMemoryCuda(const contra::Params& p)
    : QueueMemory(p, contra::Device::cuda, &write_keys_on_device) {}

}  // namespace contra::plugins
