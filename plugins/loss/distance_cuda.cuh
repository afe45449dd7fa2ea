#pragma once
/// \file
/// Distance-based losses on the GPU (included by the cuda builds of triplet
/// and contrastive_margin): rows centred by their column mean and their
/// squared norms (a Gram block then gives Euclidean distances with fewer
/// digits cancelled, as on the CPU), exact distances of a pair, and the
/// gradient of a coefficient block C (dL/dx_i = Σ_j C_ij (x_i − x_j) for the
/// Euclidean form, −Σ_j C_ij x_j for the cosine form) by two GEMMs plus row
/// and column sums.

#include "loss_cuda.cuh"

#include <cstdint>

namespace contra::plugins::gpu {
namespace {

/// A pair whose squared distance from the Gram block, |x_i|² + |x_j|² − 2 x_i·x_j,
/// is below this share of |x_i|² + |x_j|² lost too many digits to cancellation:
/// its distance is recomputed from the difference (as the CPU builds do).
constexpr float near_share = 1e-2f;

/// mean[k] = Σ_i x[i, k] / rows (summed in double), one thread per column.
__global__ void column_mean_kernel(const float* __restrict__ x, std::int64_t rows, std::int64_t d,
                                   float* __restrict__ mean) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < d;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (std::int64_t i = 0; i < rows; ++i) s += x[i * d + k];
    mean[k] = static_cast<float>(s / static_cast<double>(rows));
  }
}

/// xc = x − mean, sq_r = |xc_r|² (float, as the CPU), one warp per row.
__global__ void center_rows_kernel(const float* __restrict__ x, const float* __restrict__ mean, std::int64_t rows,
                                   std::int64_t d, float* __restrict__ xc, float* __restrict__ sq) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float ss = 0.0f;
  for (std::int64_t k = lane; k < d; k += 32) {
    const float v = x[row * d + k] - mean[k];
    xc[row * d + k] = v;
    ss += v * v;
  }
  ss = warp_reduce(ss, SumOp{});
  if (lane == 0) sq[row] = ss;
}

/// |x_i − x_j|² in double, by one thread (for the rare pairs near each other).
__device__ inline double exact_distance2(const float* __restrict__ xi, const float* __restrict__ xj, std::int64_t d) {
  double s = 0.0;
  for (std::int64_t k = 0; k < d; ++k) {
    const double t = static_cast<double>(xi[k]) - xj[k];
    s += t * t;
  }
  return s;
}

/// dx_i += c (x_i − x_j), dx_j −= c (x_i − x_j) by one thread, atomically:
/// the gradient of a near pair, added directly rather than through the Gram
/// form (rare: only pairs closer than near_share allows).
__device__ inline void add_pair_gradient(const float* __restrict__ xi, const float* __restrict__ xj, std::int64_t d,
                                         float c, float* dxi, float* dxj) {
  if (c == 0.0f) return;
  for (std::int64_t k = 0; k < d; ++k) {
    const float t = c * (xi[k] - xj[k]);
    atomicAdd(dxi + k, t);
    atomicAdd(dxj + k, -t);
  }
}

/// colsum[j] += Σ_r C[r, j] over the b rows of a block, one thread per column
/// (rows in order: reproducible).
__global__ void column_sum_kernel(const float* __restrict__ c, std::int64_t b, std::int64_t m,
                                  double* __restrict__ colsum) {
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (std::int64_t r = 0; r < b; ++r) s += c[r * m + j];
    colsum[j] += s;
  }
}

/// dx_r += (float) colsum_r · xc_r, one warp per row.
__global__ void add_scaled_rows_kernel(const double* __restrict__ colsum, const float* __restrict__ xc,
                                       std::int64_t rows, std::int64_t d, float* __restrict__ dx) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float cs = static_cast<float>(colsum[row]);
  for (std::int64_t k = lane; k < d; k += 32) dx[row * d + k] += cs * xc[row * d + k];
}

/// out = scale · g, element-wise.
__global__ void scale_kernel(const float* __restrict__ g, float scale, std::int64_t n, float* __restrict__ out) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[k] = g[k] * scale;
}

/// Rows centred by their column mean, and their squared norms, on the GPU.
struct CenteredRows {
  contra::Tensor mean, xc, sq;
  void compute(const char* who, const float* x, std::int64_t rows, std::int64_t d, cudaStream_t s) {
    float* mu = device_buffer<float>(mean, d);
    float* c = device_buffer<float>(xc, rows * d);
    float* q = device_buffer<float>(sq, rows);
    column_mean_kernel<<<blocks_for(d, 256, 4096), 256, 0, s>>>(x, rows, d, mu);
    CONTRA_CUDA_LAUNCHED(who, column_mean_kernel);
    center_rows_kernel<<<blocks_for(rows, 8, 0x7fffffff), 256, 0, s>>>(x, mu, rows, d, c, q);
    CONTRA_CUDA_LAUNCHED(who, center_rows_kernel);
  }
  const float* rows() { return xc.data<float>(); }
  const float* norms2() { return sq.data<float>(); }
};

inline void column_sums(const char* who, const float* c, std::int64_t b, std::int64_t m, double* colsum,
                        cudaStream_t s) {
  column_sum_kernel<<<blocks_for(m, 256, 4096), 256, 0, s>>>(c, b, m, colsum);
  CONTRA_CUDA_LAUNCHED(who, column_sum_kernel);
}

inline void add_scaled_rows(const char* who, const double* colsum, const float* xc, std::int64_t rows,
                            std::int64_t d, float* dx, cudaStream_t s) {
  add_scaled_rows_kernel<<<blocks_for(rows, 8, 0x7fffffff), 256, 0, s>>>(colsum, xc, rows, d, dx);
  CONTRA_CUDA_LAUNCHED(who, add_scaled_rows_kernel);
}

/// out = dL/dz from dL/dx: scaled, and through the normalisation when the
/// rows were normalised (zh, nrm non-null).
inline void distance_loss_gradient(const char* who, const float* dx, const float* zh, const float* nrm, float scale,
                                   std::int64_t rows, std::int64_t d, float* out, cudaStream_t s) {
  if (zh) {
    normalize_backward(who, zh, nrm, dx, scale, rows, d, out, s);
    return;
  }
  if (rows * d == 0) return;
  scale_kernel<<<blocks_for(rows * d, 256, 4096), 256, 0, s>>>(dx, scale, rows * d, out);
  CONTRA_CUDA_LAUNCHED(who, scale_kernel);
}

}  // namespace
}  // namespace contra::plugins::gpu
