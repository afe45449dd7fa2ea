#include "info_nce_cuda.hpp"

#include "../listed_pairs_cuda.cuh"
#include "../loss_cuda.cuh"
#include "../pairs_forms.hpp"

#include <contra/pairs_check.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "info_nce (cuda)";
constexpr int stat_count = 5;  // per row: loss_i, Σ s_ip, |P(i)|, Σ s_in, |N(i)|

std::string str(std::int64_t v) { return std::to_string(v); }

// The row pass of one anchor row i, one block per row. `r` is the row's
// candidates: kind(j) says whether candidate j is a positive (1), a negative
// (2) or neither (0), at(j) holds its s_ij = ẑ_i·c_j / T; positives come
// before positive_end(). Every thread keeps the candidates j ≡ threadIdx.x
// (mod blockDim.x) through all passes, so the row is rewritten in place
// without races:
//   1. max m over the negatives, their sum and count, |P(i)|;
//   2. negatives ← e^{s − m}, others ← 0 except positives, en = Σ e;
//   3. each positive's term shifted by m_p = max(s_ip, m) (every exponent ≤ 0),
//      positive ← ∂loss_i/∂s_ip = (σ_ip − 1)/|P|, and c = Σ_p e^{m − m_p}/D_p;
//   4. negatives ← e · c/|P| = ∂loss_i/∂s_in.
// A row without positive is no anchor: zero coefficients and statistics.
template <class Row>
__device__ void info_nce_row(const Row& r, std::int64_t i, std::int64_t M, double* __restrict__ stats) {
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  const float neg_inf = -INFINITY;
  const std::int64_t C = r.size();

  float m = neg_inf;
  double neg_sum = 0.0, neg_count = 0.0, pos_count = 0.0;
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const int c = r.kind(j);
    if (c == 2) {
      const float v = r.at(j);
      m = fmaxf(m, v);
      neg_sum += v;
      neg_count += 1.0;
    } else if (c == 1) {
      pos_count += 1.0;
    }
  }
  m = gpu::block_reduce(m, gpu::MaxOp{}, neg_inf, fscratch);
  neg_sum = gpu::block_reduce(neg_sum, gpu::SumOp{}, 0.0, dscratch);
  neg_count = gpu::block_reduce(neg_count, gpu::SumOp{}, 0.0, dscratch);
  pos_count = gpu::block_reduce(pos_count, gpu::SumOp{}, 0.0, dscratch);
  if (pos_count == 0.0) {  // the same for every thread of the block
    for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) r.at(j) = 0.0f;
    if (threadIdx.x == 0)
      for (int s = 0; s < stat_count; ++s) stats[s * M + i] = 0.0;
    return;
  }

  double en = 0.0;
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const int c = r.kind(j);
    if (c == 2) {
      const float e = expf(r.at(j) - m);
      r.at(j) = e;
      en += e;
    } else if (c == 0) {
      r.at(j) = 0.0f;
    }
  }
  en = gpu::block_reduce(en, gpu::SumOp{}, 0.0, dscratch);

  const double inv_p = 1.0 / pos_count;
  const double md = neg_count > 0.0 ? static_cast<double>(m) : -static_cast<double>(INFINITY);
  double loss = 0.0, coef = 0.0, pos_sum = 0.0;  // coef = Σ_p e^{m − m_p} / D_p
  for (std::int64_t j = threadIdx.x; j < r.positive_end(); j += blockDim.x) {
    if (r.kind(j) != 1) continue;
    const double a = r.at(j);
    double mp, ea, eneg;  // m_p, e^{s_ip − m_p}, e^{m − m_p}
    if (a >= md) {
      mp = a;
      ea = 1.0;
      eneg = exp(md - a);  // 0 without negatives
    } else {
      mp = md;
      ea = exp(a - md);
      eneg = 1.0;
    }
    const double dp = ea + en * eneg;
    loss += -a + mp + log(dp);
    coef += eneg / dp;
    pos_sum += a;
    r.at(j) = static_cast<float>((ea / dp - 1.0) * inv_p);
  }
  loss = gpu::block_reduce(loss, gpu::SumOp{}, 0.0, dscratch);
  coef = gpu::block_reduce(coef, gpu::SumOp{}, 0.0, dscratch);
  pos_sum = gpu::block_reduce(pos_sum, gpu::SumOp{}, 0.0, dscratch);

  const float scale = static_cast<float>(coef * inv_p);
  for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x)
    if (r.kind(j) == 2) r.at(j) *= scale;
  if (threadIdx.x == 0) {
    stats[0 * M + i] = loss * inv_p;
    stats[1 * M + i] = pos_sum;
    stats[2 * M + i] = pos_count;
    stats[3 * M + i] = neg_sum;
    stats[4 * M + i] = neg_count;
  }
}

// Pairs::all: a row of the similarity block, the M batch candidates then the
// K memory keys. Positives: the other rows of i's sample; negatives: other
// samples' rows when batch negatives are on, and memory keys that are no
// empty slot (id -1) and not of i's id.
struct DenseRow {
  float* v;
  std::int64_t M, K, i, si, rid;
  const std::int64_t* sample;
  const std::int64_t* key_id;
  bool batch_neg;
  __device__ std::int64_t size() const { return M + K; }
  __device__ std::int64_t positive_end() const { return M; }
  __device__ int kind(std::int64_t j) const {
    if (j < M) return sample[j] == si ? (j == i ? 0 : 1) : (batch_neg ? 2 : 0);
    const std::int64_t id = key_id[j - M];
    return id == -1 || id == rid ? 0 : 2;
  }
  __device__ float& at(std::int64_t j) const { return v[j]; }
};

// One block per anchor row of a chunk: S row ii is row i = r0 + ii.
__global__ void __launch_bounds__(gpu::row_threads)
    info_nce_rows_kernel(float* __restrict__ S, std::int64_t ld, std::int64_t r0, std::int64_t M, std::int64_t K,
                         const std::int64_t* __restrict__ sample, const std::int64_t* __restrict__ row_id,
                         const std::int64_t* __restrict__ key_id, bool batch_neg, double* __restrict__ stats) {
  const std::int64_t i = r0 + blockIdx.x;
  const DenseRow r{S + static_cast<std::int64_t>(blockIdx.x) * ld, M, K, i, sample[i], K > 0 ? row_id[i] : 0,
                   sample, key_id, batch_neg};
  info_nce_row(r, i, M, stats);
}

// Explicit pairs: one block per row i, over its listed positives and negatives.
__global__ void __launch_bounds__(gpu::row_threads)
    info_nce_listed_kernel(float* __restrict__ values, const std::int64_t* __restrict__ pos_start,
                           const std::int64_t* __restrict__ neg_start, std::int64_t M, double* __restrict__ stats) {
  const std::int64_t i = blockIdx.x;
  const std::int64_t p0 = pos_start[i], n0 = neg_start[i];
  const gpu::ListedRow r{values + p0, values + n0, pos_start[i + 1] - p0, neg_start[i + 1] - n0};
  info_nce_row(r, i, M, stats);
}

}  // namespace

struct InfoNceListedPairs : gpu::ListedPairs {};

InfoNceCuda::InfoNceCuda(const contra::Params& p)
    : temperature_(p.get<double>("temperature")),
      chunk_(p.get<std::int64_t>("chunk")),
      listed_(std::make_unique<InfoNceListedPairs>()) {
  const std::string b = p.get<std::string>("batch_negatives");
  batch_negatives_ = b == "yes" ? 1 : b == "no" ? 2 : 0;
}

void InfoNceCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  contra::check_pairs_form("info_nce", pairs, pairs_forms::all_or_listed_negatives());
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings("info_nce", emb, contra::Device::cuda), D = z.dim(1);
  const bool keys = emb.keys.defined();
  if (keys) gpu::expect_matrix(who, emb.keys, M, D, "momentum keys (Embeddings::keys)");
  std::int64_t K = 0;
  if (emb.memory && emb.memory->size() > 0) {
    gpu::expect_matrix(who, emb.memory->keys, -1, D, "memory keys (MemoryView::keys)");
    K = emb.memory->size();
    if (emb.memory->ids && static_cast<std::int64_t>(emb.memory->ids->size()) != K)
      throw contra::UsageError("info_nce: MemoryView::ids has " + str(emb.memory->ids->size()) + " entries for " +
                               str(K) + " keys");
  }
  contra::check_pair_indices("info_nce", pairs, emb);
  const bool batch_neg = batch_negatives_ == 1 || (batch_negatives_ == 0 && !keys);
  std::int64_t anchors = 0;
  if (pairs.all) {
    if (!batch_neg && !emb.memory)
      throw contra::UsageError(std::string("info_nce: no negatives: batch_negatives = ") +
                               (batch_negatives_ == 2 ? "\"no\"" : "\"auto\" with momentum keys") +
                               " takes negatives from a memory only, and the pipeline has none");
    anchors = gpu::rows_with_partner(*emb.sample);
    if (anchors == 0)
      throw contra::UsageError("info_nce: no row has a positive (another view of its sample) among " + str(M) +
                               " rows; it needs at least 2 views per sample");
    if (K > 0) {
      if (!emb.memory->ids)
        throw contra::UsageError("info_nce: the memory's keys come without ids (MemoryView::ids)");
      if (!emb.ids || static_cast<std::int64_t>(emb.ids->size()) != M)
        throw contra::UsageError(
            "info_nce: with a memory, Embeddings::ids must give the sample id of each of the " + str(M) +
            " rows (to keep a row's own sample out of its negatives)");
    }
  } else {
    listed_->build(pairs, *emb.sample, M);
    anchors = listed_->anchors;
    if (anchors == 0)
      throw contra::UsageError("info_nce: no row has a positive (another view of its sample) among " + str(M) +
                               " rows; it needs at least 2 views per sample");
  }

  // Every check is done: from here on work is queued on the stream (and the
  // pinned staging buffers are written only after the last call's copies).
  const cudaStream_t s = gpu::stream();
  const float* key_rows = keys ? gpu::device_matrix(who, emb.keys, keys_copy_, keys_staging_, s) : nullptr;
  const float* mem =
      K > 0 ? gpu::device_matrix(who, emb.memory->keys, memory_copy_, memory_staging_, s) : nullptr;
  const float inv_t = static_cast<float>(1.0 / temperature_);
  const char* w = who;

  // 1. Normalised rows (and momentum keys).
  float* zh = gpu::device_buffer<float>(zhat_, M * D);
  float* nrm = gpu::device_buffer<float>(norm_, M);
  gpu::normalize_rows(w, z.data<float>(), M, D, zh, nrm, s);
  const float* cand = zh;  // the batch candidates (positives and batch negatives): ẑ, or k̂ with keys
  if (keys) {
    float* kh = gpu::device_buffer<float>(khat_, M * D);
    gpu::normalize_rows(w, key_rows, M, D, kh, nullptr, s);
    cand = kh;
  }
  float* dzh = gpu::device_buffer<float>(dzhat_, M * D);
  double* stats = gpu::device_buffer<double>(stats_, stat_count * M);
  CONTRA_CUDA_CHECK(w, cudaMemsetAsync(dzh, 0, sizeof(float) * M * D, s));

  if (pairs.all) {
    // 2. Chunks of anchor rows: similarities, fused row pass, gradient products.
    cublasHandle_t h = gpu::blas(w, s);
    const std::int64_t* sample = gpu::upload(w, sample_, sample_staging_, emb.sample->data(), M, s);
    const std::int64_t* row_id = nullptr;
    const std::int64_t* key_id = nullptr;
    if (K > 0) {
      row_id = gpu::upload(w, row_ids_, row_ids_staging_, emb.ids->data(), M, s);
      key_id = gpu::upload(w, key_ids_, key_ids_staging_, emb.memory->ids->data(), K, s);
    }
    const std::int64_t C = M + K, B = std::min(chunk_, M);
    float* S = gpu::device_buffer<float>(sim_, B * C);
    for (std::int64_t r0 = 0; r0 < M; r0 += B) {
      const std::int64_t b = std::min(B, M - r0);
      const float* zb = zh + r0 * D;
      gpu::gemm(w, h, false, true, b, M, D, inv_t, zb, D, cand, D, 0.0f, S, C);
      if (K > 0) gpu::gemm(w, h, false, true, b, K, D, inv_t, zb, D, mem, D, 0.0f, S + M, C);
      info_nce_rows_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(S, C, r0, M, K, sample, row_id,
                                                                                 key_id, batch_neg, stats);
      CONTRA_CUDA_LAUNCHED(w, info_nce_rows_kernel);
      // dL/dẑ_block += G · candidates / T (the memory's part too); without keys
      // the batch candidates are the rows themselves: dL/dẑ += G_batchᵀ · ẑ_block / T.
      gpu::gemm(w, h, false, false, b, D, M, inv_t, S, C, cand, D, 1.0f, dzh + r0 * D, D);
      if (K > 0) gpu::gemm(w, h, false, false, b, D, K, inv_t, S + M, C, mem, D, 1.0f, dzh + r0 * D, D);
      if (!keys) gpu::gemm(w, h, true, false, M, D, b, inv_t, S, C, zb, D, 1.0f, dzh, D);
    }
  } else {
    // 2'. Explicit pairs: one dot product per listed pair, the same row pass
    //     over each row's list, then each pair's gradient.
    gpu::ListedPairs& lp = *listed_;
    lp.similarities(w, zh, cand, cand, mem, M, D, inv_t, s);
    info_nce_listed_kernel<<<static_cast<unsigned>(M), gpu::row_threads, 0, s>>>(
        lp.values(), lp.device_pos_start(), lp.device_neg_start(), M, stats);
    CONTRA_CUDA_LAUNCHED(w, info_nce_listed_kernel);
    lp.gradient(w, zh, cand, cand, mem, M, D, inv_t, !keys, !keys, dzh, s);
  }

  // 3. Mean over the anchors, through the normalisation; the sums read back.
  out.grad.ensure(z.shape(), contra::DType::f32, contra::Device::cuda);
  gpu::normalize_backward(w, zh, nrm, dzh, static_cast<float>(1.0 / static_cast<double>(anchors)), M, D,
                          out.grad.data<float>(), s);
  double sums[stat_count];
  gpu::read_stats(w, stats, M, stat_count, sums_, sums_host_, sums, s);

  out.value = sums[0] / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", sums[2] > 0 ? sums[1] * temperature_ / sums[2] : 0.0);
  out.metrics.emplace_back("neg_sim", sums[4] > 0 ? sums[3] * temperature_ / sums[4] : 0.0);
}

InfoNceCuda::~InfoNceCuda() = default;

}  // namespace contra::plugins
