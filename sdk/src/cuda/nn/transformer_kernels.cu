// The kernels of the GPU transformer layers (transformer_kernels.hpp): layer
// normalisation (one block per row; the parameters' gradients by fixed row
// chunks, no atomics), the exact GELU, and multi-head attention's head
// rearrangements and masked softmax (one warp per row). Every reduction runs
// in a fixed order: results do not depend on scheduling.
#include "transformer_kernels.hpp"

#include "nn_util.hpp"

namespace contra::cuda::nn::detail {

namespace {

constexpr unsigned full_mask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(full_mask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(full_mask, v, offset));
  return v;
}

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024),
// returned to every thread. `sh` holds 33 floats; the leading barrier lets
// the block call this again right after reading the previous result.
__device__ float block_sum(float v, float* sh) {
  v = warp_sum(v);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < warps ? sh[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0) sh[32] = w;
  }
  __syncthreads();
  return sh[32];
}

constexpr int ln_threads = 256;

__global__ void layer_norm_forward_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                          const float* __restrict__ beta, float eps, std::int64_t rows,
                                          std::int64_t features, float* __restrict__ y, float* __restrict__ mean,
                                          float* __restrict__ rstd) {
  __shared__ float sh[33];
  const float inv_d = 1.0f / static_cast<float>(features);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * features;
    float* yr = y + r * features;
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < features; c += blockDim.x) s += xr[c];
    const float mu = block_sum(s, sh) * inv_d;
    float v = 0.0f;
    for (std::int64_t c = threadIdx.x; c < features; c += blockDim.x) {
      const float d = xr[c] - mu;
      v += d * d;
    }
    const float var = block_sum(v, sh) * inv_d;
    const float rs = 1.0f / sqrtf(var + eps);
    for (std::int64_t c = threadIdx.x; c < features; c += blockDim.x)
      yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

__global__ void layer_norm_backward_input_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                                 const float* __restrict__ gamma, const float* __restrict__ mean,
                                                 const float* __restrict__ rstd, std::int64_t rows,
                                                 std::int64_t features, float* __restrict__ dx) {
  __shared__ float sh[33];
  const float inv_d = 1.0f / static_cast<float>(features);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * features;
    const float* dyr = dy + r * features;
    float* dxr = dx + r * features;
    const float mu = mean[r], rs = rstd[r];
    float a = 0.0f, b = 0.0f;
    for (std::int64_t c = threadIdx.x; c < features; c += blockDim.x) {
      const float g = dyr[c] * gamma[c];
      a += g;
      b += g * ((xr[c] - mu) * rs);
    }
    const float mean_g = block_sum(a, sh) * inv_d;
    const float mean_gx = block_sum(b, sh) * inv_d;
    for (std::int64_t c = threadIdx.x; c < features; c += blockDim.x) {
      const float g = dyr[c] * gamma[c];
      const float xhat = (xr[c] - mu) * rs;
      dxr[c] = rs * (g - mean_g - xhat * mean_gx);
    }
  }
}

// Tiles of 32 columns × a chunk of rows: threadIdx.x the column (coalesced
// reads), threadIdx.y strides over the chunk's rows; the 8 partial sums of a
// column are then added in order by threadIdx.y == 0.
constexpr int ln_cols = 32, ln_rows = 8;

__global__ void layer_norm_params_partial_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                                 const float* __restrict__ mean, const float* __restrict__ rstd,
                                                 std::int64_t rows, std::int64_t features, std::int64_t chunk_rows,
                                                 std::int64_t chunks, float* __restrict__ scratch) {
  __shared__ float sg[ln_rows][ln_cols + 1], sb[ln_rows][ln_cols + 1];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * ln_cols + threadIdx.x;
  const std::int64_t chunk = blockIdx.y;
  const std::int64_t begin = chunk * chunk_rows;
  const std::int64_t end = begin + chunk_rows < rows ? begin + chunk_rows : rows;
  float g = 0.0f, b = 0.0f;
  if (c < features) {
    for (std::int64_t r = begin + threadIdx.y; r < end; r += ln_rows) {
      const float d = dy[r * features + c];
      g += d * ((x[r * features + c] - mean[r]) * rstd[r]);
      b += d;
    }
  }
  sg[threadIdx.y][threadIdx.x] = g;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < features) {
    float tg = 0.0f, tb = 0.0f;
    for (int k = 0; k < ln_rows; ++k) {
      tg += sg[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    scratch[chunk * features + c] = tg;
    scratch[(chunks + chunk) * features + c] = tb;
  }
}

__global__ void layer_norm_params_final_kernel(const float* __restrict__ scratch, std::int64_t features,
                                               std::int64_t chunks, float* __restrict__ dgamma,
                                               float* __restrict__ dbeta) {
  for (std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < features;
       c += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float g = 0.0f, b = 0.0f;
    for (std::int64_t k = 0; k < chunks; ++k) {
      g += scratch[k * features + c];
      b += scratch[(chunks + k) * features + c];
    }
    dgamma[c] += g;
    dbeta[c] += b;
  }
}

// How the rows are cut into chunks for the parameters' gradients: at most
// 128 chunks of at least 32 rows (a function of the row count alone).
std::int64_t ln_chunks(std::int64_t rows) {
  std::int64_t chunks = (rows + 31) / 32;
  if (chunks > 128) chunks = 128;
  if (chunks < 1) chunks = 1;
  return chunks;
}

constexpr float inv_sqrt2 = 0.70710678118654752440f;
constexpr float inv_sqrt_2pi = 0.39894228040143267794f;

__global__ void gelu_forward_kernel(const float* __restrict__ x, float* __restrict__ y, std::int64_t n) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[k];
    y[k] = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
  }
}

// dx may be dy: no __restrict__ on them.
__global__ void gelu_backward_kernel(const float* __restrict__ x, const float* dy, float* dx, std::int64_t n) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[k];
    const float cdf = 0.5f * (1.0f + erff(v * inv_sqrt2));
    const float pdf = inv_sqrt_2pi * expf(-0.5f * v * v);
    dx[k] = dy[k] * (cdf + v * pdf);
  }
}

__device__ __forceinline__ std::int64_t valid_of(const AttentionShape& g, std::int64_t b) {
  return g.valid ? static_cast<std::int64_t>(g.valid[b]) : g.length;
}

// One thread per element of the rows [B·L, parts·width].
template <bool Split>
__global__ void heads_kernel(AttentionShape g, int parts, const float* rows_src, float* rows_dst, const float* h0,
                             const float* h1, const float* h2, float* d0, float* d1, float* d2) {
  const std::int64_t width = g.heads * g.head_dim, cols = parts * width;
  const std::int64_t n = g.batch * g.length * cols;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = k / cols, col = k % cols;
    const std::int64_t part = col / width, w = col % width;
    const std::int64_t h = w / g.head_dim, e = w % g.head_dim;
    const std::int64_t b = row / g.length, t = row % g.length;
    const std::int64_t at = ((b * g.heads + h) * g.length + t) * g.head_dim + e;
    const bool real = t < valid_of(g, b);
    if (Split) {
      float* dst = part == 0 ? d0 : part == 1 ? d1 : d2;
      dst[at] = real ? rows_src[k] : 0.0f;
    } else {
      const float* src = part == 0 ? h0 : part == 1 ? h1 : h2;
      rows_dst[k] = real ? src[at] : 0.0f;
    }
  }
}

constexpr int softmax_warps = 4;  // rows per block of 128 threads

__global__ void masked_softmax_kernel(AttentionShape g, bool causal, float* scores) {
  const std::int64_t total = g.batch * g.heads * g.length;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * softmax_warps + (threadIdx.x >> 5);
  if (r >= total) return;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const std::int64_t l = g.length;
  const std::int64_t i = r % l, b = r / l / g.heads;
  const std::int64_t n = valid_of(g, b);
  float* s = scores + r * l;
  if (i >= n) {
    for (std::int64_t j = lane; j < l; j += 32) s[j] = 0.0f;
    return;
  }
  const std::int64_t seen = causal ? i + 1 : n;
  float top = -INFINITY;
  for (std::int64_t j = lane; j < seen; j += 32) top = fmaxf(top, s[j]);
  top = warp_max(top);
  float sum = 0.0f;
  for (std::int64_t j = lane; j < seen; j += 32) {
    const float e = expf(s[j] - top);
    s[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  const float inv = 1.0f / sum;
  for (std::int64_t j = lane; j < l; j += 32) s[j] = j < seen ? s[j] * inv : 0.0f;
}

__global__ void masked_softmax_backward_kernel(AttentionShape g, const float* __restrict__ probs,
                                               float* __restrict__ dprobs) {
  const std::int64_t total = g.batch * g.heads * g.length;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * softmax_warps + (threadIdx.x >> 5);
  if (r >= total) return;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const std::int64_t l = g.length;
  const std::int64_t i = r % l, b = r / l / g.heads;
  const std::int64_t n = valid_of(g, b);
  const float* p = probs + r * l;
  float* d = dprobs + r * l;
  if (i >= n) {
    for (std::int64_t j = lane; j < l; j += 32) d[j] = 0.0f;
    return;
  }
  float dot = 0.0f;
  for (std::int64_t j = lane; j < n; j += 32) dot += p[j] * d[j];
  dot = warp_sum(dot);
  for (std::int64_t j = lane; j < l; j += 32) d[j] = j < n ? p[j] * (d[j] - dot) : 0.0f;
}

unsigned blocks_for(std::int64_t n, unsigned threads) {
  std::int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;
  return static_cast<unsigned>(b);
}

unsigned row_blocks(std::int64_t rows) { return static_cast<unsigned>(rows < 65535 ? rows : 65535); }

}  // namespace

void launch_layer_norm_forward(const float* x, const float* gamma, const float* beta, float eps, std::int64_t rows,
                               std::int64_t features, float* y, float* mean, float* rstd, cudaStream_t s) {
  if (rows == 0) return;
  layer_norm_forward_kernel<<<row_blocks(rows), ln_threads, 0, s>>>(x, gamma, beta, eps, rows, features, y, mean,
                                                                    rstd);
  NN_CUDA("LayerNorm (cuda)", cudaGetLastError());
}

void launch_layer_norm_backward_input(const float* x, const float* dy, const float* gamma, const float* mean,
                                      const float* rstd, std::int64_t rows, std::int64_t features, float* dx,
                                      cudaStream_t s) {
  if (rows == 0) return;
  layer_norm_backward_input_kernel<<<row_blocks(rows), ln_threads, 0, s>>>(x, dy, gamma, mean, rstd, rows,
                                                                           features, dx);
  NN_CUDA("LayerNorm (cuda)", cudaGetLastError());
}

std::int64_t layer_norm_params_scratch(std::int64_t rows, std::int64_t features) {
  return 2 * ln_chunks(rows) * features;
}

void launch_layer_norm_backward_params(const float* x, const float* dy, const float* mean, const float* rstd,
                                       std::int64_t rows, std::int64_t features, float* scratch, float* dgamma,
                                       float* dbeta, cudaStream_t s) {
  if (rows == 0 || features == 0) return;
  const std::int64_t chunks = ln_chunks(rows);
  const std::int64_t chunk_rows = (rows + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>((features + ln_cols - 1) / ln_cols), static_cast<unsigned>(chunks));
  const dim3 block(ln_cols, ln_rows);
  layer_norm_params_partial_kernel<<<grid, block, 0, s>>>(x, dy, mean, rstd, rows, features, chunk_rows, chunks,
                                                          scratch);
  NN_CUDA("LayerNorm (cuda)", cudaGetLastError());
  layer_norm_params_final_kernel<<<blocks_for(features, 256), 256, 0, s>>>(scratch, features, chunks, dgamma,
                                                                           dbeta);
  NN_CUDA("LayerNorm (cuda)", cudaGetLastError());
}

void launch_gelu_forward(const float* x, float* y, std::int64_t n, cudaStream_t s) {
  if (n == 0) return;
  gelu_forward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, n);
  NN_CUDA("GELU (cuda)", cudaGetLastError());
}

void launch_gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n, cudaStream_t s) {
  if (n == 0) return;
  gelu_backward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, dy, dx, n);
  NN_CUDA("GELU (cuda)", cudaGetLastError());
}

void launch_split_heads(const AttentionShape& g, int parts, const float* src, float* dst0, float* dst1,
                        float* dst2, cudaStream_t s) {
  const std::int64_t n = g.batch * g.length * parts * g.heads * g.head_dim;
  if (n == 0) return;
  heads_kernel<true><<<blocks_for(n, 256), 256, 0, s>>>(g, parts, src, nullptr, nullptr, nullptr, nullptr, dst0,
                                                        dst1, dst2);
  NN_CUDA("MultiHeadSelfAttention (cuda)", cudaGetLastError());
}

void launch_merge_heads(const AttentionShape& g, int parts, const float* src0, const float* src1,
                        const float* src2, float* dst, cudaStream_t s) {
  const std::int64_t n = g.batch * g.length * parts * g.heads * g.head_dim;
  if (n == 0) return;
  heads_kernel<false><<<blocks_for(n, 256), 256, 0, s>>>(g, parts, nullptr, dst, src0, src1, src2, nullptr,
                                                         nullptr, nullptr);
  NN_CUDA("MultiHeadSelfAttention (cuda)", cudaGetLastError());
}

void launch_masked_softmax(const AttentionShape& g, bool causal, float* scores, cudaStream_t s) {
  const std::int64_t rows = g.batch * g.heads * g.length;
  if (rows == 0) return;
  const std::int64_t blocks = (rows + softmax_warps - 1) / softmax_warps;
  masked_softmax_kernel<<<static_cast<unsigned>(blocks), softmax_warps * 32, 0, s>>>(g, causal, scores);
  NN_CUDA("MultiHeadSelfAttention (cuda)", cudaGetLastError());
}

void launch_masked_softmax_backward(const AttentionShape& g, const float* probs, float* dprobs, cudaStream_t s) {
  const std::int64_t rows = g.batch * g.heads * g.length;
  if (rows == 0) return;
  const std::int64_t blocks = (rows + softmax_warps - 1) / softmax_warps;
  masked_softmax_backward_kernel<<<static_cast<unsigned>(blocks), softmax_warps * 32, 0, s>>>(g, probs, dprobs);
  NN_CUDA("MultiHeadSelfAttention (cuda)", cudaGetLastError());
}

}  // namespace contra::cuda::nn::detail
