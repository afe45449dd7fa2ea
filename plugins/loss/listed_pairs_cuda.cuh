#pragma once
/// \file
/// Explicit pairs on the GPU (a miner's Pairs::positive, Pairs::negative and
/// Pairs::memory_negative), shared by the cuda builds of info_nce, debiased
/// and hcl: the lists by anchor (CSR) built on the host from lists the caller
/// checked (contra::check_pair_indices, as the CPU builds do), one dot product per listed pair, and the gradient
/// of each pair added with atomics (so the last bits of dL/dz may vary from
/// run to run on this path, unlike Pairs::all's).

#include "loss_cuda.cuh"

#include <contra/roles/loss.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins::gpu {
namespace {

/// A row's listed candidates: its positives, then its negatives, as `kind`
/// and `at` of the row kernels (every listed pair counts, as often as listed).
struct ListedRow {
  float* pos;
  float* neg;
  std::int64_t P, N;
  __device__ std::int64_t size() const { return P + N; }
  __device__ std::int64_t positive_end() const { return P; }
  __device__ int kind(std::int64_t j) const { return j < P ? 1 : 2; }
  __device__ float& at(std::int64_t j) const { return j < P ? pos[j] : neg[j - P]; }
};

/// values[e] = ẑ_row[e] · candidate(col[e]) / T, one warp per listed pair.
/// Candidate c < M is row c of pos_rows (pairs e < npos) or neg_rows; c ≥ M is
/// memory key c − M.
__global__ void listed_similarities_kernel(const std::int64_t* __restrict__ row, const std::int64_t* __restrict__ col,
                                           std::int64_t entries, std::int64_t npos, const float* __restrict__ zh,
                                           const float* __restrict__ pos_rows, const float* __restrict__ neg_rows,
                                           const float* __restrict__ mem, std::int64_t M, std::int64_t D, float inv_t,
                                           float* __restrict__ values) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (e >= entries) return;
  const std::int64_t c = col[e];
  const float* x = zh + row[e] * D;
  const float* y = c < M ? (e < npos ? pos_rows : neg_rows) + c * D : mem + (c - M) * D;
  float s = 0.0f;
  for (std::int64_t k = lane; k < D; k += 32) s += x[k] * y[k];
  s = warp_reduce(s, SumOp{});
  if (lane == 0) values[e] = s * inv_t;
}

/// dL/dẑ_row += values[e] / T · candidate, and, for a batch row candidate
/// that is differentiated (scatter_pos / scatter_neg), dL/dẑ_col += values[e]
/// / T · ẑ_row. One warp per listed pair; atomics, as rows repeat.
__global__ void listed_gradient_kernel(const std::int64_t* __restrict__ row, const std::int64_t* __restrict__ col,
                                       std::int64_t entries, std::int64_t npos, const float* __restrict__ values,
                                       const float* __restrict__ zh, const float* __restrict__ pos_rows,
                                       const float* __restrict__ neg_rows, const float* __restrict__ mem,
                                       std::int64_t M, std::int64_t D, float inv_t, bool scatter_pos,
                                       bool scatter_neg, float* __restrict__ dzh) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (e >= entries) return;
  const float g = values[e] * inv_t;
  if (g == 0.0f) return;
  const std::int64_t a = row[e], c = col[e];
  const bool positive = e < npos;
  const float* x = zh + a * D;
  const float* y = c < M ? (positive ? pos_rows : neg_rows) + c * D : mem + (c - M) * D;
  float* ga = dzh + a * D;
  for (std::int64_t k = lane; k < D; k += 32) atomicAdd(ga + k, g * y[k]);
  if (c < M && (positive ? scatter_pos : scatter_neg)) {
    float* gc = dzh + c * D;
    for (std::int64_t k = lane; k < D; k += 32) atomicAdd(gc + k, g * x[k]);
  }
}

/// The explicit pairs of one call, by anchor, on the host and the GPU.
/// Entries [0, npos) are the positives, [npos, npos + nneg) the negatives;
/// pos_start / neg_start index them per anchor row (M + 1 each).
struct ListedPairs {
  std::vector<std::int64_t> pos_start, neg_start, row, col;
  std::vector<std::int64_t> order, group_end;  // rows by sample; per position, the end of its group
  std::int64_t npos = 0, nneg = 0, anchors = 0;
  contra::Tensor d_pos_start, d_neg_start, d_row, d_col, d_values;
  PinnedBuffer s_pos_start, s_neg_start, s_row, s_col;

  /// Builds the lists of the M rows from `pairs` (positives Pairs::positive,
  /// or the other rows of each row's sample), whose indices the caller has
  /// checked (contra::check_pair_indices).
  void build(const contra::Pairs& pairs, const std::vector<std::int64_t>& sample, std::int64_t M) {
    pos_start.assign(static_cast<std::size_t>(M + 1), 0);
    row.clear();
    col.clear();
    if (!pairs.positive.empty()) {
      for (const auto& [a, p] : pairs.positive) ++pos_start[a + 1];
    } else {  // rows by sample (ascending within a sample), as the CPU builds group them
      order.resize(static_cast<std::size_t>(M));
      for (std::int64_t i = 0; i < M; ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return sample[a] < sample[b]; });
      group_end.resize(static_cast<std::size_t>(M));
      for (std::int64_t g0 = 0; g0 < M;) {
        std::int64_t g1 = g0 + 1;
        while (g1 < M && sample[order[g1]] == sample[order[g0]]) ++g1;
        for (std::int64_t q = g0; q < g1; ++q) {
          pos_start[order[q] + 1] = g1 - g0 - 1;
          group_end[q] = g1;
        }
        g0 = g1;
      }
    }
    for (std::int64_t i = 0; i < M; ++i) pos_start[i + 1] += pos_start[i];
    npos = pos_start[M];
    neg_start.assign(static_cast<std::size_t>(M + 1), 0);
    for (const auto& [a, n] : pairs.negative) ++neg_start[a + 1];
    for (const auto& [a, k] : pairs.memory_negative) ++neg_start[a + 1];
    neg_start[0] = npos;  // negatives follow the positives
    for (std::int64_t i = 0; i < M; ++i) neg_start[i + 1] += neg_start[i];
    nneg = neg_start[M] - npos;

    row.resize(static_cast<std::size_t>(npos + nneg));
    col.resize(row.size());
    std::vector<std::int64_t> fill(pos_start.begin(), pos_start.end() - 1);
    if (!pairs.positive.empty()) {
      for (const auto& [a, p] : pairs.positive) {
        row[fill[a]] = a;
        col[fill[a]++] = p;
      }
    } else {
      for (std::int64_t g0 = 0; g0 < M; g0 = group_end[g0])
        for (std::int64_t a = g0; a < group_end[g0]; ++a)
          for (std::int64_t b = g0; b < group_end[g0]; ++b)
            if (a != b) {
              const std::int64_t i = order[a];
              row[fill[i]] = i;
              col[fill[i]++] = order[b];
            }
    }
    fill.assign(neg_start.begin(), neg_start.end() - 1);
    for (const auto& [a, n] : pairs.negative) {
      row[fill[a]] = a;
      col[fill[a]++] = n;
    }
    for (const auto& [a, k] : pairs.memory_negative) {  // memory key k is candidate M + k
      row[fill[a]] = a;
      col[fill[a]++] = M + k;
    }
    anchors = 0;
    for (std::int64_t i = 0; i < M; ++i) anchors += pos_start[i + 1] > pos_start[i] ? 1 : 0;
  }

  /// Copies the lists to the GPU and computes every pair's similarity into
  /// values() (positives' candidates from pos_rows, batch negatives' from
  /// neg_rows, memory keys from mem).
  void similarities(const char* who, const float* zh, const float* pos_rows, const float* neg_rows, const float* mem,
                    std::int64_t M, std::int64_t D, float inv_t, cudaStream_t s) {
    const std::int64_t entries = npos + nneg;
    upload(who, d_pos_start, s_pos_start, pos_start.data(), M + 1, s);
    upload(who, d_neg_start, s_neg_start, neg_start.data(), M + 1, s);
    upload(who, d_row, s_row, row.data(), entries, s);
    upload(who, d_col, s_col, col.data(), entries, s);
    float* v = device_buffer<float>(d_values, entries);
    if (entries == 0) return;
    constexpr unsigned threads = 256, per_block = threads / 32;
    listed_similarities_kernel<<<blocks_for(entries, per_block, 0x7fffffff), threads, 0, s>>>(
        d_row.data<std::int64_t>(), d_col.data<std::int64_t>(), entries, npos, zh, pos_rows, neg_rows, mem, M, D,
        inv_t, v);
    CONTRA_CUDA_LAUNCHED(who, listed_similarities_kernel);
  }

  /// After a row kernel turned values() into ∂loss/∂s: the gradient products.
  void gradient(const char* who, const float* zh, const float* pos_rows, const float* neg_rows, const float* mem,
                std::int64_t M, std::int64_t D, float inv_t, bool scatter_pos, bool scatter_neg, float* dzh,
                cudaStream_t s) {
    const std::int64_t entries = npos + nneg;
    if (entries == 0) return;
    constexpr unsigned threads = 256, per_block = threads / 32;
    listed_gradient_kernel<<<blocks_for(entries, per_block, 0x7fffffff), threads, 0, s>>>(
        d_row.data<std::int64_t>(), d_col.data<std::int64_t>(), entries, npos, values(), zh, pos_rows, neg_rows,
        mem, M, D, inv_t, scatter_pos, scatter_neg, dzh);
    CONTRA_CUDA_LAUNCHED(who, listed_gradient_kernel);
  }

  float* values() { return d_values.data<float>(); }
  const std::int64_t* device_pos_start() { return d_pos_start.data<std::int64_t>(); }
  const std::int64_t* device_neg_start() { return d_neg_start.data<std::int64_t>(); }
};

}  // namespace
}  // namespace contra::plugins::gpu
