#pragma once
// Shared by the cuda builds of the miners of batch rows (batch_hard,
// semi_hard, batch_all, multi_similarity, distance_weighted): the rows
// prepared as on the CPU (centred for Euclidean distances, L2-normalised for
// cosine), a block of anchor rows' distances from one cuBLAS Gram product,
// (distance, row) reductions that break ties towards the lower row as the CPU
// builds do, the positives of each anchor as a compressed row list, and Gram
// blocks read back for miners whose selection runs on the host. Header-only,
// internal linkage: each plugin library keeps its own copy.

#include "../loss/distance_cuda.cuh"
#include "triplet_common.hpp"

#include <contra/roles/miner.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins::miner_gpu {
namespace {

/// Anchor rows per Gram block: [block, M] floats of scratch.
constexpr std::int64_t gram_block_rows = 1024;

/// A candidate row and its distance; row −1 is "none".
struct Pick {
  float dist;
  std::int32_t row;
};

/// The nearer of two candidates (the lower row on equal distances); "none" loses.
struct NearerOp {
  __device__ Pick operator()(Pick a, Pick b) const {
    if (a.row < 0) return b;
    if (b.row < 0) return a;
    if (b.dist < a.dist || (b.dist == a.dist && b.row < a.row)) return b;
    return a;
  }
};
/// The farther of two candidates (the lower row on equal distances); "none" loses.
struct FartherOp {
  __device__ Pick operator()(Pick a, Pick b) const {
    if (a.row < 0) return b;
    if (b.row < 0) return a;
    if (b.dist > a.dist || (b.dist == a.dist && b.row < a.row)) return b;
    return a;
  }
};

template <class Op>
__device__ inline Pick warp_reduce_pick(Pick v, Op op) {
  for (int o = 16; o > 0; o >>= 1) {
    Pick other{__shfl_xor_sync(0xffffffffu, v.dist, o), __shfl_xor_sync(0xffffffffu, v.row, o)};
    v = op(v, other);
  }
  return v;
}

/// Reduces v over the block (blockDim.x a multiple of 32, every thread
/// calling) and returns the result to every thread; `scratch` holds 32 picks.
/// The result does not depend on the order: the op is a total order on
/// (distance, row).
template <class Op>
__device__ inline Pick block_reduce_pick(Pick v, Op op, Pick* scratch) {
  v = warp_reduce_pick(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : Pick{0.0f, -1};
    v = warp_reduce_pick(v, op);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  return scratch[0];
}

/// Row ii of the block (anchor a = a0 + ii): the Gram entries g[j] become the
/// distances the CPU builds use, in float: 1 − s (cosine) or
/// √max(|a|² + |j|² − 2 a·j, 0) (Euclidean, centred rows); d(a, a) = 0.
__device__ inline void gram_to_distances(float* g, std::int64_t a, std::int64_t m, const float* sq, bool cosine) {
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    float v;
    if (j == a) v = 0.0f;
    else if (cosine) v = 1.0f - g[j];
    else {
      const float d2 = sq[a] + sq[j] - 2.0f * g[j];
      v = sqrtf(d2 < 0.0f ? 0.0f : d2);  // NaN stays NaN, as std::max(d2, 0) on the CPU
    }
    g[j] = v;
  }
  __syncthreads();
}

/// The embeddings' rows as the distances need them, on the GPU: L2-normalised
/// (cosine) or centred on their column mean (Euclidean), with squared norms.
struct PreparedRows {
  contra::Tensor normalized;
  gpu::CenteredRows centred;
  const float* x = nullptr;   // [M, D]
  const float* sq = nullptr;  // [M], Euclidean only

  void compute(const char* who, const float* z, std::int64_t m, std::int64_t d, bool cosine, cudaStream_t s) {
    if (cosine) {
      float* zh = gpu::device_buffer<float>(normalized, m * d);
      gpu::normalize_rows(who, z, m, d, zh, nullptr, s);
      x = zh;
      sq = nullptr;
    } else {
      centred.compute(who, z, m, d, s);
      x = centred.rows();
      sq = centred.norms2();
    }
  }
};

/// Calls launch(G, a0, b) for each block of at most gram_block_rows anchor rows
/// [a0, a0 + b), G holding the block's rows of the Gram matrix of the prepared
/// rows ([b, m], by cuBLAS on stream s; the kernel launched overwrites them).
template <class Launch>
void for_each_gram_block(const char* who, const PreparedRows& rows, std::int64_t m, std::int64_t d,
                         contra::Tensor& gram, cudaStream_t s, Launch launch) {
  cublasHandle_t h = gpu::blas(who, s);
  const std::int64_t block = std::min(gram_block_rows, m);
  float* G = gpu::device_buffer<float>(gram, block * m);
  for (std::int64_t a0 = 0; a0 < m; a0 += block) {
    const std::int64_t b = std::min(block, m - a0);
    gpu::gemm(who, h, false, true, b, m, d, 1.0f, rows.x + a0 * d, d, rows.x, d, 0.0f, G, m,
              gpu::selection_compute_type);
    launch(G, a0, b);
  }
}

/// Turns the b rows of a Gram block into distances (gram_to_distances), one
/// thread block per row.
__global__ void __launch_bounds__(gpu::row_threads)
    gram_to_distances_kernel(float* __restrict__ G, std::int64_t a0, std::int64_t m, const float* __restrict__ sq,
                             bool cosine) {
  gram_to_distances(G + static_cast<std::int64_t>(blockIdx.x) * m, a0 + blockIdx.x, m, sq, cosine);
}

/// What for_each_host_block hands the host: the prepared rows' products
/// (cosine similarities of normalised rows), or the distances of
/// gram_to_distances.
enum class BlockValues { similarities, distances };

/// Calls take(values, a0, b) for each block of anchor rows [a0, a0 + b) with
/// their rows of the Gram matrix ([b, m], row-major) in host memory: as
/// computed (similarities), or as distances. For miners whose selection is
/// host code shared with the CPU build (variable-length output, host random
/// draws): the GPU does the O(M²D) product, the host the O(M²) selection on
/// the same values the CPU build would see. One synchronisation per block.
template <class Take>
void for_each_host_block(const char* who, const PreparedRows& rows, std::int64_t m, std::int64_t d, BlockValues what,
                         bool cosine, contra::Tensor& gram, gpu::PinnedBuffer& host, cudaStream_t s, Take take) {
  for_each_gram_block(who, rows, m, d, gram, s, [&](float* G, std::int64_t a0, std::int64_t b) {
    if (what == BlockValues::distances) {
      gram_to_distances_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(G, a0, m, rows.sq, cosine);
      CONTRA_CUDA_LAUNCHED(who, gram_to_distances_kernel);
    }
    const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(b * m);
    auto* h = static_cast<float*>(host.ensure(who, bytes));
    CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(h, G, bytes, cudaMemcpyDeviceToHost, s));
    CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
    take(static_cast<const float*>(h), a0, b);
  });
}

/// Copies n int32 choices back through the pinned `host` buffer and waits for
/// the stream: the one synchronisation of a mine() call.
inline const std::int32_t* read_choices(const char* who, const std::int32_t* dev, std::int64_t n,
                                        gpu::PinnedBuffer& host, cudaStream_t s) {
  auto* h = static_cast<std::int32_t*>(host.ensure(who, sizeof(std::int32_t) * n));
  CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(h, dev, sizeof(std::int32_t) * n, cudaMemcpyDeviceToHost, s));
  CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
  return h;
}

/// Each row's positives (the other rows of its group, ascending) as a
/// compressed list: row a's are col[start[a] .. start[a + 1]).
struct PositiveLists {
  std::vector<std::int64_t> start, col, order;
  std::vector<std::int64_t> fill;  // scratch: the next free entry of each row's list

  void build(const std::vector<std::int64_t>& group) {
    const auto m = static_cast<std::int64_t>(group.size());
    order.resize(static_cast<std::size_t>(m));
    for (std::int64_t i = 0; i < m; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return group[a] < group[b]; });
    start.assign(static_cast<std::size_t>(m + 1), 0);
    for (std::int64_t g0 = 0; g0 < m;) {
      std::int64_t g1 = g0 + 1;
      while (g1 < m && group[order[g1]] == group[order[g0]]) ++g1;
      for (std::int64_t q = g0; q < g1; ++q) start[order[q] + 1] = g1 - g0 - 1;
      g0 = g1;
    }
    for (std::int64_t i = 0; i < m; ++i) start[i + 1] += start[i];
    col.resize(static_cast<std::size_t>(start[m]));
    fill.assign(start.begin(), start.end() - 1);
    // Groups in `order` are ascending within (stable sort): each anchor's list is too.
    for (std::int64_t g0 = 0; g0 < m;) {
      std::int64_t g1 = g0 + 1;
      while (g1 < m && group[order[g1]] == group[order[g0]]) ++g1;
      for (std::int64_t q = g0; q < g1; ++q)
        for (std::int64_t r = g0; r < g1; ++r)
          if (q != r) col[fill[order[q]]++] = order[r];
      g0 = g1;
    }
  }
};

}  // namespace
}  // namespace contra::plugins::miner_gpu
