#pragma once
/// \file
/// The GPU computation shared by the cuda builds of `debiased` and `hcl`
/// (included by their `*_cuda.cu`): debiased is hcl with β = 0, as on the CPU.
/// Same definitions, stabilisation and metrics as plugins/loss/hcl/hcl.cpp.

#include "listed_pairs_cuda.cuh"
#include "loss_cuda.cuh"
#include "pairs_forms.hpp"

#include <contra/roles/loss.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace contra::plugins::gpu {
namespace {

// Per row: loss_i, Σ s_ip, |P(i)|, Σ s_in, |N(i)|, weight concentration, 1 if
// it has negatives, clamped terms.
constexpr int debiased_stat_count = 8;

// The row pass of one anchor row i, one block per row. `r` is the row's
// candidates: kind(j) says whether candidate j is a positive (1), a negative
// (2) or neither (0), at(j) holds its s_ij; positives come before
// positive_end(). Each thread keeps its candidates (j ≡ threadIdx.x mod
// blockDim.x) through the passes, so the row turns into ∂loss_i/∂s in place:
//   1. m_N = max over the negatives, sums and counts;
//   2. e_j = e^{s_j − m_N}, w_j = e^{β (s_j − m_N)}: Σw, Σw·e, Σw² (others ← 0);
//   3. the positives' terms and ∂loss_i/∂s_ip, and c (see hcl.cpp);
//   4. negatives ← c/P · w_j/Σw · ((1 + β) N e_j − β R') (c/P · e_j when β = 0).
template <class Row>
__device__ void debiased_row(const Row& r, std::int64_t i, std::int64_t M, double tau_plus, double beta,
                             double floor_log, double* __restrict__ stats) {
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  const float neg_inf = -INFINITY;
  const std::int64_t C = r.size();
  float m_neg = neg_inf;
  double pos_sum = 0.0, pos_count = 0.0, neg_sum = 0.0, neg_count = 0.0;
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const int c = r.kind(j);
    const float v = r.at(j);
    if (c == 2) {
      m_neg = fmaxf(m_neg, v);
      neg_sum += v;
      neg_count += 1.0;
    } else if (c == 1) {
      pos_sum += v;
      pos_count += 1.0;
    }
  }
  m_neg = block_reduce(m_neg, MaxOp{}, neg_inf, fscratch);
  pos_sum = block_reduce(pos_sum, SumOp{}, 0.0, dscratch);
  pos_count = block_reduce(pos_count, SumOp{}, 0.0, dscratch);
  neg_sum = block_reduce(neg_sum, SumOp{}, 0.0, dscratch);
  neg_count = block_reduce(neg_count, SumOp{}, 0.0, dscratch);
  if (pos_count == 0.0) {  // no positive: no anchor, no gradient (the same in every thread)
    for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) r.at(j) = 0.0f;
    if (threadIdx.x == 0)
      for (int s = 0; s < debiased_stat_count; ++s) stats[s * M + i] = 0.0;
    return;
  }

  const float beta_f = static_cast<float>(beta);
  double sw = 0.0, swe = 0.0, sww = 0.0;
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const int c = r.kind(j);
    if (c == 2) {
      const float d = r.at(j) - m_neg;
      const double e = expf(d);
      const double w = beta_f == 0.0f ? 1.0 : static_cast<double>(expf(beta_f * d));
      sw += w;
      swe += w * e;
      sww += w * w;
    } else if (c == 0) {
      r.at(j) = 0.0f;
    }
  }
  sw = block_reduce(sw, SumOp{}, 0.0, dscratch);
  swe = block_reduce(swe, SumOp{}, 0.0, dscratch);
  sww = block_reduce(sww, SumOp{}, 0.0, dscratch);
  const double nn = neg_count;
  const double R = nn == 0.0 ? 0.0 : (beta == 0.0 ? swe : nn * swe / sw);

  const double ntp = nn * tau_plus, inv_1mt = 1.0 / (1.0 - tau_plus), inv_p = 1.0 / pos_count;
  double row_loss = 0.0, coef = 0.0, clamped = 0.0;
  for (std::int64_t j = threadIdx.x; j < r.positive_end(); j += blockDim.x) {
    if (r.kind(j) != 1) continue;
    const double a = r.at(j);
    const double m = fmax(a, static_cast<double>(m_neg));
    const double pe = exp(a - m);
    const double f = nn == 0.0 ? 0.0 : exp(static_cast<double>(m_neg) - m);
    const double A = (R * f - ntp * pe) * inv_1mt;
    const double Bn = nn * exp(floor_log - m);
    const bool open = A > Bn;
    const double den = pe + (open ? A : Bn);
    row_loss += log(den) - (a - m);
    double g;
    if (open) {
      g = pe * (1.0 - ntp * inv_1mt) / den - 1.0;
      coef += f * inv_1mt / den;
    } else {
      g = pe / den - 1.0;
      clamped += 1.0;
    }
    r.at(j) = static_cast<float>(g * inv_p);
  }
  row_loss = block_reduce(row_loss, SumOp{}, 0.0, dscratch);
  coef = block_reduce(coef, SumOp{}, 0.0, dscratch);
  clamped = block_reduce(clamped, SumOp{}, 0.0, dscratch);

  const double cp = coef * inv_p;
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    if (r.kind(j) != 2) continue;
    const float d = r.at(j) - m_neg;
    const double e = expf(d);
    if (beta_f == 0.0f) {
      r.at(j) = static_cast<float>(cp * e);
    } else {
      const double w = expf(beta_f * d) / sw;
      r.at(j) = static_cast<float>(cp * w * ((1.0 + beta) * nn * e - beta * R));
    }
  }
  if (threadIdx.x == 0) {
    stats[0 * M + i] = row_loss * inv_p;
    stats[1 * M + i] = pos_sum;
    stats[2 * M + i] = pos_count;
    stats[3 * M + i] = neg_sum;
    stats[4 * M + i] = nn;
    stats[5 * M + i] = nn > 0.0 ? sw * sw / (nn * sww) : 0.0;
    stats[6 * M + i] = nn > 0.0 ? 1.0 : 0.0;
    stats[7 * M + i] = clamped;
  }
}

// Pairs::all: a row of the similarity block, the M rows then the K memory
// keys. The row itself is nothing, rows of i's sample positives, other rows
// negatives, and memory keys negatives unless an empty slot (id < 0) or of
// i's id (every key when their ids are unknown).
struct DebiasedDenseRow {
  float* v;
  std::int64_t M, K, i, si, rid;
  const std::int64_t* sample;
  const std::int64_t* key_id;
  __device__ std::int64_t size() const { return M + K; }
  __device__ std::int64_t positive_end() const { return M; }
  __device__ int kind(std::int64_t j) const {
    if (j < M) return j == i ? 0 : sample[j] == si ? 1 : 2;
    if (!key_id) return 2;
    const std::int64_t id = key_id[j - M];
    return id >= 0 && id != rid ? 2 : 0;
  }
  __device__ float& at(std::int64_t j) const { return v[j]; }
};

// One block per anchor row of a chunk: S row ii is row i = r0 + ii.
__global__ void __launch_bounds__(row_threads)
    debiased_rows_kernel(float* __restrict__ S, std::int64_t ld, std::int64_t r0, std::int64_t M, std::int64_t K,
                         const std::int64_t* __restrict__ sample, const std::int64_t* __restrict__ row_id,
                         const std::int64_t* __restrict__ key_id, double tau_plus, double beta, double floor_log,
                         double* __restrict__ stats) {
  const std::int64_t i = r0 + blockIdx.x;
  const std::int64_t rid = row_id ? row_id[i] : INT64_MIN;  // no row id matches no key
  const DebiasedDenseRow r{S + static_cast<std::int64_t>(blockIdx.x) * ld, M, K, i, sample[i], rid, sample, key_id};
  debiased_row(r, i, M, tau_plus, beta, floor_log, stats);
}

// Explicit pairs: one block per row i, over its listed positives and negatives.
__global__ void __launch_bounds__(row_threads)
    debiased_listed_kernel(float* __restrict__ values, const std::int64_t* __restrict__ pos_start,
                           const std::int64_t* __restrict__ neg_start, std::int64_t M, double tau_plus, double beta,
                           double floor_log, double* __restrict__ stats) {
  const std::int64_t i = blockIdx.x;
  const std::int64_t p0 = pos_start[i], n0 = neg_start[i];
  const ListedRow r{values + p0, values + n0, pos_start[i + 1] - p0, neg_start[i + 1] - n0};
  debiased_row(r, i, M, tau_plus, beta, floor_log, stats);
}

/// Buffers and the computation of debiased / hcl on the GPU.
struct DebiasedCore {
  contra::Tensor zhat, norm, sim, dzhat, stats, sums, memory_copy, sample, row_ids, key_ids;
  PinnedBuffer memory_staging, sample_staging, row_ids_staging, key_ids_staging, sums_host;
  ListedPairs listed_pairs;

  /// `name` is the plugin's name (messages); beta = 0 is debiased. Writes the
  /// metrics pos_sim, neg_sim, [weight_concentration,] clamped.
  void compute(const char* name, const char* who, double temperature, double tau_plus, double beta,
               std::int64_t chunk, bool concentration_metric, const contra::Embeddings& emb,
               const contra::Pairs& pairs, contra::LossResult& out) {
    const std::string n(name);
    contra::check_pairs_form(n, pairs, pairs_forms::all_or_listed_negatives());
    contra::EmbeddingsUse use;
    use.ids = true;
    const contra::Tensor& z = emb.z;
    const std::int64_t M = contra::check_embeddings(n, emb, contra::Device::cuda, use), D = z.dim(1);
    const contra::MemoryView* mv = emb.memory && emb.memory->size() > 0 ? emb.memory : nullptr;
    std::int64_t K = 0;
    if (mv) {
      expect_matrix(who, mv->keys, -1, D, "memory keys (MemoryView::keys)");
      K = mv->size();
      if (mv->ids && static_cast<std::int64_t>(mv->ids->size()) != K)
        throw contra::UsageError(n + ": MemoryView::ids has " + std::to_string(mv->ids->size()) + " entries for " +
                                 std::to_string(K) + " keys");
    }
    contra::check_pair_indices(n, pairs, emb);
    std::int64_t anchors = 0;
    if (pairs.all) {
      anchors = rows_with_partner(*emb.sample);
    } else {
      listed_pairs.build(pairs, *emb.sample, M);
      anchors = listed_pairs.anchors;
    }
    if (anchors == 0)
      throw contra::UsageError(n + ": no row has a positive (another view of its sample) among " +
                               std::to_string(M) + " rows; it needs at least 2 views per sample");

    // Every check is done: from here on work is queued on the stream.
    const cudaStream_t s = stream();
    const float* keys = mv ? device_matrix(who, mv->keys, memory_copy, memory_staging, s) : nullptr;
    const float inv_t = static_cast<float>(1.0 / temperature);
    float* zh = device_buffer<float>(zhat, M * D);
    float* nrm = device_buffer<float>(norm, M);
    normalize_rows(who, z.data<float>(), M, D, zh, nrm, s);
    float* dzh = device_buffer<float>(dzhat, M * D);
    double* st = device_buffer<double>(stats, debiased_stat_count * M);
    CONTRA_CUDA_CHECK(who, cudaMemsetAsync(dzh, 0, sizeof(float) * M * D, s));

    if (pairs.all) {
      cublasHandle_t h = blas(who, s);
      const std::int64_t* sample_d = upload(who, sample, sample_staging, emb.sample->data(), M, s);
      const std::int64_t* row_id = nullptr;
      const std::int64_t* key_id = nullptr;
      if (mv && mv->ids) {  // without key ids every key counts, whatever the rows' ids
        key_id = upload(who, key_ids, key_ids_staging, mv->ids->data(), K, s);
        if (emb.ids) row_id = upload(who, row_ids, row_ids_staging, emb.ids->data(), M, s);
      }
      const std::int64_t C = M + K, B = std::min(chunk, M);
      float* S = device_buffer<float>(sim, B * C);
      for (std::int64_t r0 = 0; r0 < M; r0 += B) {
        const std::int64_t b = std::min(B, M - r0);
        const float* zb = zh + r0 * D;
        gemm(who, h, false, true, b, M, D, inv_t, zb, D, zh, D, 0.0f, S, C);
        if (K > 0) gemm(who, h, false, true, b, K, D, inv_t, zb, D, keys, D, 0.0f, S + M, C);
        debiased_rows_kernel<<<static_cast<unsigned>(b), row_threads, 0, s>>>(
            S, C, r0, M, K, sample_d, row_id, key_id, tau_plus, beta, -1.0 / temperature, st);
        CONTRA_CUDA_LAUNCHED(who, debiased_rows_kernel);
        // dL/dẑ_block += G ẑ / T (+ G_mem keys / T); dL/dẑ += Gᵀ ẑ_block / T. Keys get no gradient.
        gemm(who, h, false, false, b, D, M, inv_t, S, C, zh, D, 1.0f, dzh + r0 * D, D);
        gemm(who, h, true, false, M, D, b, inv_t, S, C, zb, D, 1.0f, dzh, D);
        if (K > 0) gemm(who, h, false, false, b, D, K, inv_t, S + M, C, keys, D, 1.0f, dzh + r0 * D, D);
      }
    } else {
      // Explicit pairs: one dot product per listed pair, the same row pass over
      // each row's list, then each pair's gradient (both rows of a batch pair).
      listed_pairs.similarities(who, zh, zh, zh, keys, M, D, inv_t, s);
      debiased_listed_kernel<<<static_cast<unsigned>(M), row_threads, 0, s>>>(
          listed_pairs.values(), listed_pairs.device_pos_start(), listed_pairs.device_neg_start(), M, tau_plus, beta,
          -1.0 / temperature, st);
      CONTRA_CUDA_LAUNCHED(who, debiased_listed_kernel);
      listed_pairs.gradient(who, zh, zh, zh, keys, M, D, inv_t, true, true, dzh, s);
    }

    out.grad.ensure(z.shape(), contra::DType::f32, contra::Device::cuda);
    normalize_backward(who, zh, nrm, dzh, 1.0f / static_cast<float>(anchors), M, D, out.grad.data<float>(), s);
    double t[debiased_stat_count];
    read_stats(who, st, M, debiased_stat_count, sums, sums_host, t, s);

    out.value = t[0] / static_cast<double>(anchors);
    out.metrics.clear();
    out.metrics.emplace_back("pos_sim", t[2] > 0 ? t[1] * temperature / t[2] : 0.0);
    out.metrics.emplace_back("neg_sim", t[4] > 0 ? t[3] * temperature / t[4] : 0.0);
    if (concentration_metric) out.metrics.emplace_back("weight_concentration", t[6] > 0 ? t[5] / t[6] : 1.0);
    out.metrics.emplace_back("clamped", t[2] > 0 ? t[7] / t[2] : 0.0);
  }
};

}  // namespace
}  // namespace contra::plugins::gpu
