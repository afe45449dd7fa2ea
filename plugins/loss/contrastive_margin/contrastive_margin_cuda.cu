#include "contrastive_margin_cuda.hpp"

#include "../distance_cuda.cuh"
#include "../pairs_forms.hpp"

#include <contra/pairs_check.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "contrastive_margin (cuda)";
// Per row (all pairs) or per pair: loss, Σ d of positives, positives, Σ d of
// negatives, negatives, active negatives.
constexpr int stat_count = 6;

struct Sums {
  double loss = 0.0, pos_d = 0.0, n_pos = 0.0, neg_d = 0.0, n_neg = 0.0, active = 0.0;
};

// One pair's loss y d² + (1 − y) max(0, m − d)² into s; returns its gradient
// coefficient c: dl/dx_i = c (x_i − x_j) = −dl/dx_j.
__device__ inline double pair_term(double d2, bool positive, double m, Sums& s) {
  const double d = sqrt(d2);
  if (positive) {
    s.n_pos += 1.0;
    s.pos_d += d;
    s.loss += d2;
    return 2.0;
  }
  s.n_neg += 1.0;
  s.neg_d += d;
  if (d >= m) return 0.0;
  s.active += 1.0;
  const double h = m - d;
  s.loss += h * h;
  return d > 0.0 ? -2.0 * h / d : 0.0;
}

// Explicit pairs, one warp each: entries [0, npos) positive, the rest negative.
__global__ void pairs_kernel(const std::int64_t* __restrict__ first, const std::int64_t* __restrict__ second,
                             std::int64_t count, std::int64_t npos, const float* __restrict__ x, std::int64_t d,
                             double margin, float* __restrict__ dx, double* __restrict__ stats) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (e >= count) return;
  const std::int64_t i = first[e], j = second[e];
  const float* xi = x + i * d;
  const float* xj = x + j * d;
  double s2 = 0.0;
  for (std::int64_t k = lane; k < d; k += 32) {
    const double t = static_cast<double>(xi[k]) - xj[k];
    s2 += t * t;
  }
  s2 = gpu::warp_reduce(s2, gpu::SumOp{});
  Sums s;
  const double c = pair_term(s2, e < npos, margin, s);
  if (lane == 0) {
    stats[0 * count + e] = s.loss;
    stats[1 * count + e] = s.pos_d;
    stats[2 * count + e] = s.n_pos;
    stats[3 * count + e] = s.neg_d;
    stats[4 * count + e] = s.n_neg;
    stats[5 * count + e] = s.active;
  }
  if (c == 0.0) return;
  const float cf = static_cast<float>(c);
  for (std::int64_t k = lane; k < d; k += 32) {
    const float t = cf * (xi[k] - xj[k]);
    atomicAdd(dx + i * d + k, t);
    atomicAdd(dx + j * d + k, -t);
  }
}

// Pairs::all, one block per row i of a chunk (G row ii = i − r0, stride M,
// the Gram entries of the centred rows xc with squared norms sq): every pair
// (i, j > i) once, positive when both are views of one sample. Each thread
// turns its columns into the coefficients in place (0 for j ≤ i); then dx_i +=
// rowsum · xc_i. A pair near enough for the Gram form to lose its digits
// (near_share) gets its exact distance and, as on the CPU, its gradient
// c (x_i − x_j) added directly (its coefficient left out of G): through
// rowsum · xc_i − C xc it would cancel just as badly. Those additions reach
// other blocks' rows, so every addition to dx here is atomic.
__global__ void __launch_bounds__(gpu::row_threads)
    margin_rows_kernel(float* __restrict__ G, std::int64_t r0, std::int64_t M, std::int64_t D,
                       const float* __restrict__ xc, const float* __restrict__ sq, const float* __restrict__ x,
                       const std::int64_t* __restrict__ sample, double margin, float* __restrict__ dx,
                       double* __restrict__ stats) {
  __shared__ double scratch[32];
  const std::int64_t i = r0 + blockIdx.x;
  float* g = G + static_cast<std::int64_t>(blockIdx.x) * M;
  const std::int64_t si = sample[i];
  Sums s;
  double rowsum = 0.0;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    if (j <= i) {
      g[j] = 0.0f;
      continue;
    }
    const float scale = sq[i] + sq[j];
    const float d2f = scale - 2.0f * g[j];
    const bool near = d2f < gpu::near_share * scale;
    const double d2 = near ? gpu::exact_distance2(x + i * D, x + j * D, D)
                           : static_cast<double>(d2f < 0.0f ? 0.0f : d2f);  // NaN stays NaN, as on the CPU
    const double c = pair_term(d2, sample[j] == si, margin, s);
    if (near) {
      gpu::add_pair_gradient(x + i * D, x + j * D, D, static_cast<float>(c), dx + i * D, dx + j * D);
      g[j] = 0.0f;
    } else {
      g[j] = static_cast<float>(c);
      rowsum += c;
    }
  }
  rowsum = gpu::block_reduce(rowsum, gpu::SumOp{}, 0.0, scratch);
  s.loss = gpu::block_reduce(s.loss, gpu::SumOp{}, 0.0, scratch);
  s.pos_d = gpu::block_reduce(s.pos_d, gpu::SumOp{}, 0.0, scratch);
  s.n_pos = gpu::block_reduce(s.n_pos, gpu::SumOp{}, 0.0, scratch);
  s.neg_d = gpu::block_reduce(s.neg_d, gpu::SumOp{}, 0.0, scratch);
  s.n_neg = gpu::block_reduce(s.n_neg, gpu::SumOp{}, 0.0, scratch);
  s.active = gpu::block_reduce(s.active, gpu::SumOp{}, 0.0, scratch);
  const float rs = static_cast<float>(rowsum);
  for (std::int64_t k = threadIdx.x; k < D; k += blockDim.x) atomicAdd(dx + i * D + k, rs * xc[i * D + k]);
  if (threadIdx.x == 0) {
    stats[0 * M + i] = s.loss;
    stats[1 * M + i] = s.pos_d;
    stats[2 * M + i] = s.n_pos;
    stats[3 * M + i] = s.neg_d;
    stats[4 * M + i] = s.n_neg;
    stats[5 * M + i] = s.active;
  }
}

}  // namespace

struct ContrastiveMarginCudaState {
  contra::Tensor zhat, norm, gram, dx, colsum, stats, sums, sample, first, second;
  gpu::CenteredRows centred;
  gpu::PinnedBuffer sample_staging, first_staging, second_staging, sums_host;
  std::vector<std::int64_t> first_h, second_h;
};

ContrastiveMarginCuda::ContrastiveMarginCuda(const contra::Params& p)
    : margin_(p.get<double>("margin")),
      normalize_(p.get<bool>("normalize")),
      sum_(p.get<std::string>("reduction") == "sum"),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<ContrastiveMarginCudaState>()) {
  (void)ContrastiveMargin(p);  // the CPU build's checks of the parameters, with its messages
}

ContrastiveMarginCuda::~ContrastiveMarginCuda() = default;

void ContrastiveMarginCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs,
                                    contra::LossResult& out) {
  const bool all =
      contra::check_pairs_form("contrastive_margin", pairs, pairs_forms::all_or_listed_pairs()) ==
      contra::PairsSelection::all;
  const contra::Tensor& z = emb.z;
  contra::EmbeddingsUse use;
  use.sample = all;  // the pairs of Pairs::all come from the grouping by sample
  const std::int64_t M = contra::check_embeddings("contrastive_margin", emb, contra::Device::cuda, use),
                     D = z.dim(1);
  if (all && M < 2)
    throw contra::UsageError("contrastive_margin: a batch of " + std::to_string(M) + " row has no pair");
  contra::check_pair_indices("contrastive_margin", pairs, emb);
  ContrastiveMarginCudaState& st = *state_;
  if (!all) {
    st.first_h.clear();
    st.second_h.clear();
    for (const auto* list : {&pairs.positive, &pairs.negative})
      for (const auto& [i, j] : *list) {
        st.first_h.push_back(i);
        st.second_h.push_back(j);
      }
  }

  // Every check is done: from here on work is queued on the stream.
  const cudaStream_t s = gpu::stream();
  const float* x = z.data<float>();
  float* zh = nullptr;
  float* nrm = nullptr;
  if (normalize_) {
    zh = gpu::device_buffer<float>(st.zhat, M * D);
    nrm = gpu::device_buffer<float>(st.norm, M);
    gpu::normalize_rows(who, x, M, D, zh, nrm, s);
    x = zh;
  }
  float* dx = gpu::device_buffer<float>(st.dx, M * D);
  CONTRA_CUDA_CHECK(who, cudaMemsetAsync(dx, 0, sizeof(float) * M * D, s));
  std::int64_t rows = 0, count = 0;
  double* stats = nullptr;
  if (all) {
    cublasHandle_t h = gpu::blas(who, s);
    const std::int64_t* sample = gpu::upload(who, st.sample, st.sample_staging, emb.sample->data(), M, s);
    st.centred.compute(who, x, M, D, s);
    const float* xc = st.centred.rows();
    double* colsum = gpu::device_buffer<double>(st.colsum, M);
    CONTRA_CUDA_CHECK(who, cudaMemsetAsync(colsum, 0, sizeof(double) * M, s));
    rows = M;
    count = M * (M - 1) / 2;
    stats = gpu::device_buffer<double>(st.stats, stat_count * M);
    const std::int64_t B = std::min(chunk_, M);
    float* G = gpu::device_buffer<float>(st.gram, B * M);
    for (std::int64_t r0 = 0; r0 < M; r0 += B) {
      const std::int64_t b = std::min(B, M - r0);
      const float* xb = xc + r0 * D;
      gpu::gemm(who, h, false, true, b, M, D, 1.0f, xb, D, xc, D, 0.0f, G, M);
      margin_rows_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(G, r0, M, D, xc,
                                                                              st.centred.norms2(), x, sample,
                                                                              margin_, dx, stats);
      CONTRA_CUDA_LAUNCHED(who, margin_rows_kernel);
      // rowsum(C)∘xc_block (in the kernel) − C xc for the block; colsum(C)∘xc − Cᵀ xc_block for every row.
      gpu::gemm(who, h, false, false, b, D, M, -1.0f, G, M, xc, D, 1.0f, dx + r0 * D, D);
      gpu::gemm(who, h, true, false, M, D, b, -1.0f, G, M, xb, D, 1.0f, dx, D);
      gpu::column_sums(who, G, b, M, colsum, s);
    }
    gpu::add_scaled_rows(who, colsum, xc, M, D, dx, s);
  } else {
    count = static_cast<std::int64_t>(st.first_h.size());
    rows = count;
    const std::int64_t* first = gpu::upload(who, st.first, st.first_staging, st.first_h.data(), count, s);
    const std::int64_t* second = gpu::upload(who, st.second, st.second_staging, st.second_h.data(), count, s);
    stats = gpu::device_buffer<double>(st.stats, stat_count * count);
    pairs_kernel<<<gpu::blocks_for(count, 8, 0x7fffffff), 256, 0, s>>>(
        first, second, count, static_cast<std::int64_t>(pairs.positive.size()), x, D, margin_, dx, stats);
    CONTRA_CUDA_LAUNCHED(who, pairs_kernel);
  }

  double t[stat_count];
  gpu::read_stats(who, stats, rows, stat_count, st.sums, st.sums_host, t, s);
  const float scale = sum_ ? 1.0f : 1.0f / static_cast<float>(count);
  out.grad.ensure(z.shape(), contra::DType::f32, contra::Device::cuda);
  gpu::distance_loss_gradient(who, dx, zh, nrm, scale, M, D, out.grad.data<float>(), s);

  out.value = sum_ ? t[0] : t[0] / static_cast<double>(count);
  out.metrics.clear();
  out.metrics.emplace_back("pos_dist", t[2] > 0 ? t[1] / t[2] : 0.0);
  out.metrics.emplace_back("neg_dist", t[4] > 0 ? t[3] / t[4] : 0.0);
  out.metrics.emplace_back("active_negatives", t[4] > 0 ? t[5] / t[4] : 0.0);
}

}  // namespace contra::plugins
