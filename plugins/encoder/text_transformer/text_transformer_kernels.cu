#include "text_transformer_kernels.hpp"

#include "../sequence_kernels.cuh"

namespace contra::plugins::text_kernels {

namespace {

using sequence_kernels::blocks_for;
constexpr unsigned threads = 256;

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

__global__ void embed_kernel(const std::int32_t* ids, const float* tok, const float* pos, std::int64_t positions,
                             std::int64_t length, std::int64_t width, float* h) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= positions * width) return;
  const std::int64_t row = i / width, c = i % width;
  h[i] = tok[static_cast<std::int64_t>(ids[row]) * width + c] + pos[(row % length) * width + c];
}

// One thread per column: it walks every valid position in order, so rows
// sharing a token add in a fixed order (the CPU build's order too).
__global__ void token_grad_kernel(const float* dh, const std::int32_t* ids, const std::int32_t* valid,
                                  std::int64_t rows, std::int64_t length, std::int64_t width, float* token_grad) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= width) return;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t t = 0; t < valid[r]; ++t) {
      const std::int64_t i = r * length + t;
      token_grad[static_cast<std::int64_t>(ids[i]) * width + c] += dh[i * width + c];
    }
}

// One thread per (position, column), summing over the texts in order.
__global__ void positional_grad_kernel(const float* dh, const std::int32_t* valid, std::int64_t rows,
                                       std::int64_t length, std::int64_t width, float* positional_grad) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= length * width) return;
  const std::int64_t t = i / width, c = i % width;
  float sum = positional_grad[i];
  for (std::int64_t r = 0; r < rows; ++r)
    if (t < valid[r]) sum += dh[(r * length + t) * width + c];
  positional_grad[i] = sum;
}

}  // namespace

void embed(const std::int32_t* ids, const float* token_embedding, const float* positional_embedding,
           std::int64_t rows, std::int64_t length, std::int64_t width, float* h, void* stream) {
  const std::int64_t n = rows * length * width;
  embed_kernel<<<blocks_for(n, threads), threads, 0, as_stream(stream)>>>(ids, token_embedding, positional_embedding,
                                                                         rows * length, length, width, h);
}

void pool(const float* h, const std::int32_t* valid, std::int64_t rows, std::int64_t length, std::int64_t width,
          bool mean, float* pooled, void* stream) {
  const sequence_kernels::Pooling p{valid, length, mean, true};
  sequence_kernels::pool<<<blocks_for(rows * width, threads), threads, 0, as_stream(stream)>>>(h, rows, width, p,
                                                                                              pooled);
}

void unpool(const float* dpooled, const std::int32_t* valid, std::int64_t rows, std::int64_t length,
            std::int64_t width, bool mean, float* dh, void* stream) {
  const sequence_kernels::Pooling p{valid, length, mean, true};
  sequence_kernels::unpool<<<blocks_for(rows * length * width, threads), threads, 0, as_stream(stream)>>>(
      dpooled, rows, width, p, dh);
}

void embedding_backward(const float* dh, const std::int32_t* ids, const std::int32_t* valid, std::int64_t rows,
                        std::int64_t length, std::int64_t width, float* token_grad, float* positional_grad,
                        void* stream) {
  token_grad_kernel<<<blocks_for(width, 64), 64, 0, as_stream(stream)>>>(dh, ids, valid, rows, length, width,
                                                                          token_grad);
  positional_grad_kernel<<<blocks_for(length * width, threads), threads, 0, as_stream(stream)>>>(
      dh, valid, rows, length, width, positional_grad);
}

const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

}  // namespace contra::plugins::text_kernels
