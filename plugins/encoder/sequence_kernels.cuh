#pragma once
// Kernels the transformer encoders' GPU builds share (text_transformer,
// vit): pooling one row per sequence out of [N·L, width] hidden states, and
// its backward. Header-only device code, included by their .cu files.

#include <cuda_runtime.h>

#include <cstdint>

namespace contra::plugins::sequence_kernels {

/// Which positions of sequence r a pooled row comes from: with `lengths`,
/// its first lengths[r] positions (else all L); `mean` averages them, else
/// one position is taken: the last of them (`at_end`, text: eos) or the
/// first (vit: the class token).
struct Pooling {
  const std::int32_t* lengths;  // device, one per sequence, or null
  std::int64_t length;          // L
  bool mean;
  bool at_end;
};

__device__ inline std::int64_t pooled_count(const Pooling& p, std::int64_t r) {
  return p.lengths ? p.lengths[r] : p.length;
}

/// out[r, c] from h [rows·L, width]; one thread per output entry.
__global__ void pool(const float* h, std::int64_t rows, std::int64_t width, Pooling p, float* out) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * width) return;
  const std::int64_t r = i / width, c = i % width, count = pooled_count(p, r);
  const float* first = h + r * p.length * width + c;
  if (!p.mean) {
    out[i] = first[(p.at_end ? count - 1 : 0) * width];
    return;
  }
  float sum = 0.0f;
  for (std::int64_t t = 0; t < count; ++t) sum += first[t * width];
  out[i] = sum * (1.0f / static_cast<float>(count));
}

/// dh [rows·L, width] from dL/d(pooled) [rows, width]: the pooled positions
/// get their share, every other position 0. One thread per entry of dh.
__global__ void unpool(const float* dpooled, std::int64_t rows, std::int64_t width, Pooling p, float* dh) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * p.length * width) return;
  const std::int64_t c = i % width, row = i / width, r = row / p.length, t = row % p.length;
  const std::int64_t count = pooled_count(p, r);
  const float d = dpooled[r * width + c];
  if (!p.mean) {
    dh[i] = t == (p.at_end ? count - 1 : 0) ? d : 0.0f;
    return;
  }
  dh[i] = t < count ? d * (1.0f / static_cast<float>(count)) : 0.0f;
}

inline unsigned blocks_for(std::int64_t n, unsigned threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace contra::plugins::sequence_kernels
