#include "vit_kernels.hpp"

#include "../sequence_kernels.cuh"

namespace contra::plugins::vit_kernels {

namespace {

using sequence_kernels::blocks_for;
constexpr unsigned threads = 256;

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Index of patch-row entry i in the image tensor.
__device__ std::int64_t pixel_of(std::int64_t i, PatchGrid g) {
  const std::int64_t features = g.channels * g.patch * g.patch, patches = (g.height / g.patch) * (g.width / g.patch);
  const std::int64_t row = i / features, f = i % features;
  const std::int64_t n = row / patches, k = row % patches, grid_w = g.width / g.patch;
  const std::int64_t gy = k / grid_w, gx = k % grid_w;
  const std::int64_t ch = f / (g.patch * g.patch), dy = (f / g.patch) % g.patch, dx = f % g.patch;
  return ((n * g.channels + ch) * g.height + gy * g.patch + dy) * g.width + gx * g.patch + dx;
}

__global__ void extract_kernel(const float* images, PatchGrid g, std::int64_t n, float* patches) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) patches[i] = images[pixel_of(i, g)];
}

__global__ void fold_kernel(const float* patches, PatchGrid g, std::int64_t n, float* images) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) images[pixel_of(i, g)] = patches[i];
}

__global__ void assemble_kernel(const float* e, const float* cls, const float* pos, std::int64_t images,
                                std::int64_t length, std::int64_t width, float* tokens) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= images * length * width) return;
  const std::int64_t c = i % width, row = i / width, n = row / length, k = row % length;
  const float src = k == 0 ? cls[c] : e[(n * (length - 1) + k - 1) * width + c];
  tokens[i] = src + pos[k * width + c];
}

// One thread per (position, column): sums over the images in order.
__global__ void token_backward_kernel(const float* d, std::int64_t images, std::int64_t length, std::int64_t width,
                                      float* cls, float* pos, float* dpatch) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= length * width) return;
  const std::int64_t k = i / width, c = i % width;
  float p = pos[i];
  float q = k == 0 ? cls[c] : 0.0f;
  for (std::int64_t n = 0; n < images; ++n) {
    const float g = d[(n * length + k) * width + c];
    p += g;
    if (k == 0)
      q += g;
    else
      dpatch[(n * (length - 1) + k - 1) * width + c] = g;
  }
  pos[i] = p;
  if (k == 0) cls[c] = q;
}

}  // namespace

void extract_patches(const float* images, const PatchGrid& g, float* patches, void* stream) {
  const std::int64_t n = g.images * g.patches() * g.features();
  extract_kernel<<<blocks_for(n, threads), threads, 0, as_stream(stream)>>>(images, g, n, patches);
}

void fold_patches(const float* patches, const PatchGrid& g, float* images, void* stream) {
  const std::int64_t n = g.images * g.patches() * g.features();
  fold_kernel<<<blocks_for(n, threads), threads, 0, as_stream(stream)>>>(patches, g, n, images);
}

void assemble_tokens(const float* embedded_patches, const float* class_embedding, const float* positional_embedding,
                     std::int64_t images, std::int64_t length, std::int64_t width, float* tokens, void* stream) {
  assemble_kernel<<<blocks_for(images * length * width, threads), threads, 0, as_stream(stream)>>>(
      embedded_patches, class_embedding, positional_embedding, images, length, width, tokens);
}

void token_backward(const float* dtokens, std::int64_t images, std::int64_t length, std::int64_t width,
                    float* class_grad, float* positional_grad, float* dpatch_rows, void* stream) {
  token_backward_kernel<<<blocks_for(length * width, threads), threads, 0, as_stream(stream)>>>(
      dtokens, images, length, width, class_grad, positional_grad, dpatch_rows);
}

void pool(const float* h, std::int64_t images, std::int64_t length, std::int64_t width, bool mean, float* pooled,
          void* stream) {
  const sequence_kernels::Pooling p{nullptr, length, mean, false};
  sequence_kernels::pool<<<blocks_for(images * width, threads), threads, 0, as_stream(stream)>>>(h, images, width, p,
                                                                                                pooled);
}

void unpool(const float* dpooled, std::int64_t images, std::int64_t length, std::int64_t width, bool mean, float* dh,
            void* stream) {
  const sequence_kernels::Pooling p{nullptr, length, mean, false};
  sequence_kernels::unpool<<<blocks_for(images * length * width, threads), threads, 0, as_stream(stream)>>>(
      dpooled, images, width, p, dh);
}

const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

}  // namespace contra::plugins::vit_kernels
