#pragma once
/// \file
/// Pieces the cuda builds of the losses share (included by `*_cuda.cu`):
/// block reductions, row normalisation and its backward pass, the
/// deterministic sum of per-row statistics read back to the host, and checks
/// of matrices that may live on either device. (The checks of the embeddings
/// and of Pairs are the SDK's, contra/pairs_check.hpp, as in the CPU twins.)

#include "../cuda_support.cuh"

#include <contra/l2_normalize.hpp>
#include <contra/roles/loss.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins::gpu {
// Internal linkage: every cuda loss library (and a test linking two of them)
// has its own copy of these kernels.
namespace {

/// Threads per block of the per-row kernels (a multiple of 32).
constexpr int row_threads = 256;
/// Norms below this are clamped, as torch.nn.functional.normalize does (and the CPU twins).
constexpr float norm_eps = contra::l2_norm_eps;

struct SumOp {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <class T> __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <class T, class Op>
__device__ inline T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Reduces v over the block (blockDim.x a multiple of 32, every thread
/// calling) and returns the result to every thread. `scratch` holds 32 values;
/// the leading barrier lets consecutive calls share it. The order of the
/// additions depends only on blockDim.x, so results are reproducible.
template <class T, class Op>
__device__ inline T block_reduce(T v, Op op, T identity, T* scratch) {
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : identity;
    v = warp_reduce(v, op);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  return scratch[0];
}

/// zh_r = z_r / max(|z_r|, eps) and nrm_r = |z_r|, one warp per row.
__global__ void normalize_rows_kernel(const float* __restrict__ z, std::int64_t rows, std::int64_t d,
                                      float* __restrict__ zh, float* __restrict__ nrm) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;  // the whole warp leaves together
  const float* zi = z + row * d;
  float ss = 0.0f;
  for (std::int64_t k = lane; k < d; k += 32) ss += zi[k] * zi[k];
  ss = warp_reduce(ss, SumOp{});
  const float n = sqrtf(ss);
  if (lane == 0 && nrm) nrm[row] = n;
  const float inv = 1.0f / fmaxf(n, norm_eps);
  float* hi = zh + row * d;
  for (std::int64_t k = lane; k < d; k += 32) hi[k] = zi[k] * inv;
}

/// Through the normalisation: out_r = scale · (g_r − ẑ_r (ẑ_r·g_r)) / |z_r|, or
/// scale · g_r / eps for a clamped norm (ẑ = z / eps is linear in z). One warp per row.
__global__ void normalize_backward_kernel(const float* __restrict__ zh, const float* __restrict__ nrm,
                                          const float* __restrict__ g, float scale, std::int64_t rows,
                                          std::int64_t d, float* __restrict__ out) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* hi = zh + row * d;
  const float* gi = g + row * d;
  float* oi = out + row * d;
  const float n = nrm[row];
  if (n < norm_eps) {
    for (std::int64_t k = lane; k < d; k += 32) oi[k] = gi[k] * scale / norm_eps;
    return;
  }
  float dot = 0.0f;
  for (std::int64_t k = lane; k < d; k += 32) dot += hi[k] * gi[k];
  dot = warp_reduce(dot, SumOp{});
  const float inv = scale / n;
  for (std::int64_t k = lane; k < d; k += 32) oi[k] = (gi[k] - hi[k] * dot) * inv;
}

/// out[s] = Σ_r stats[s·rows + r], one block per statistic, in a fixed order.
__global__ void sum_stats_kernel(const double* __restrict__ stats, std::int64_t rows, double* __restrict__ out) {
  __shared__ double scratch[32];
  const double* col = stats + static_cast<std::int64_t>(blockIdx.x) * rows;
  double s = 0.0;
  for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) s += col[r];
  s = block_reduce(s, SumOp{}, 0.0, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

/// Row normalisation on stream s.
inline void normalize_rows(const char* who, const float* z, std::int64_t rows, std::int64_t d, float* zh, float* nrm,
                           cudaStream_t s) {
  if (rows == 0) return;
  constexpr unsigned threads = 256, per_block = threads / 32;
  normalize_rows_kernel<<<blocks_for(rows, per_block, 0x7fffffff), threads, 0, s>>>(z, rows, d, zh, nrm);
  CONTRA_CUDA_LAUNCHED(who, normalize_rows_kernel);
}

inline void normalize_backward(const char* who, const float* zh, const float* nrm, const float* g, float scale,
                               std::int64_t rows, std::int64_t d, float* out, cudaStream_t s) {
  if (rows == 0) return;
  constexpr unsigned threads = 256, per_block = threads / 32;
  normalize_backward_kernel<<<blocks_for(rows, per_block, 0x7fffffff), threads, 0, s>>>(zh, nrm, g, scale, rows, d,
                                                                                        out);
  CONTRA_CUDA_LAUNCHED(who, normalize_backward_kernel);
}

/// Per-row statistics [n, rows] (doubles on the device) summed into host[0..n):
/// one small kernel, one copy into pinned memory, then the stream is
/// synchronised (the loss value is needed on the host).
inline void read_stats(const char* who, const double* stats, std::int64_t rows, int n, contra::Tensor& sums,
                       PinnedBuffer& host, double* out, cudaStream_t s) {
  double* d = device_buffer<double>(sums, n);
  sum_stats_kernel<<<n, row_threads, 0, s>>>(stats, rows, d);
  CONTRA_CUDA_LAUNCHED(who, sum_stats_kernel);
  double* h = static_cast<double*>(host.ensure(who, sizeof(double) * n));
  CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(h, d, sizeof(double) * n, cudaMemcpyDeviceToHost, s));
  CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
  std::copy(h, h + n, out);
}

/// Throws UsageError unless `t` is an f32 [rows, cols] tensor, on either
/// device (rows < 0: any number of rows).
inline void expect_matrix(const char* who, const contra::Tensor& t, std::int64_t rows, std::int64_t cols,
                          const char* what) {
  if (t.rank() != 2 || t.dtype() != contra::DType::f32 || (rows >= 0 && t.dim(0) != rows) || t.dim(1) != cols)
    throw contra::UsageError(std::string(who) + ": expected " + what + " as an f32 [" +
                             (rows >= 0 ? std::to_string(rows) : std::string("K")) + ", " + std::to_string(cols) +
                             "] tensor, got " + contra::dtype_name(t.dtype()) + " " + t.shape().str() + " on " +
                             contra::device_name(t.device()));
}

/// The data of `t` (checked by expect_matrix) on the GPU: its own when it lives
/// there, else a copy of the host tensor in `copy` (through `staging`, on stream s).
inline const float* device_matrix(const char* who, const contra::Tensor& t, contra::Tensor& copy,
                                  PinnedBuffer& staging, cudaStream_t s) {
  if (t.device() == contra::Device::cuda) return t.data<float>();
  return upload<float>(who, copy, staging, t.data<float>(), t.numel(), s);
}

/// Rows that have at least one other row with the same value in `group`
/// (a sample or class id): the anchors of a loss over Pairs::all.
inline std::int64_t rows_with_partner(const std::vector<std::int64_t>& group) {
  std::vector<std::int64_t> sorted(group);
  std::sort(sorted.begin(), sorted.end());
  std::int64_t n = 0;
  for (std::size_t a = 0; a < sorted.size();) {
    std::size_t b = a + 1;
    while (b < sorted.size() && sorted[b] == sorted[a]) ++b;
    if (b - a >= 2) n += static_cast<std::int64_t>(b - a);
    a = b;
  }
  return n;
}

}  // namespace
}  // namespace contra::plugins::gpu
