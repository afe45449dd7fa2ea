#include "triplet_cuda.hpp"

#include "../distance_cuda.cuh"
#include "../pairs_forms.hpp"

#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "triplet (cuda)";
// Per anchor row (all triplets) or per triplet: loss, active, triplets, Σ d(a,p), Σ d(a,n).
constexpr int stat_count = 5;

struct Form {
  double margin;
  bool cosine, squared, soft;

  // Distance from the compared rows (x: z or ẑ) directly, in double.
  __device__ double exact(const float* xi, const float* xj, std::int64_t d) const {
    if (cosine) {
      double s = 0.0;
      for (std::int64_t k = 0; k < d; ++k) s += static_cast<double>(xi[k]) * xj[k];
      return 1.0 - s;
    }
    const double s = gpu::exact_distance2(xi, xj, d);
    return squared ? s : sqrt(s);
  }
  // Coefficient c of the pair's gradient for dL/dd = g: Euclidean dd/dx_i =
  // c (x_i − x_j), cosine dd/dx_i = −c x_j.
  __device__ double coef(double dist, double g) const {
    if (cosine) return g;
    if (squared) return 2.0 * g;
    return dist > 0.0 ? g / dist : 0.0;
  }
  // One triplet: adds its loss and activity, returns dl/dd(a,p) (= −dl/dd(a,n)).
  __device__ double term(double dp, double dn, double& loss, double& active) const {
    if (soft) {  // softplus(u), derivative sigmoid(u)
      const double u = dp - dn;
      const double l = u > 0.0 ? u + log1p(exp(-u)) : log1p(exp(u));
      if (l > 0.0) active += 1.0;
      loss += l;
      return u > 0.0 ? 1.0 / (1.0 + exp(-u)) : exp(u) / (1.0 + exp(u));
    }
    const double u = dp - dn + margin;
    if (u <= 0.0) return 0.0;
    active += 1.0;
    loss += u;
    return 1.0;
  }
};

// Mined triplets, one warp each: exact distances (double, lanes then the
// warp), the term, and the gradient of both pairs added with atomics.
__global__ void triplets_kernel(const contra::Triplet* __restrict__ t, std::int64_t count, const float* __restrict__ x,
                                std::int64_t d, Form form, float* __restrict__ dx, double* __restrict__ stats) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (e >= count) return;
  const std::int64_t a = t[e].anchor, p = t[e].positive, n = t[e].negative;
  const float* xa = x + a * d;
  const float* xp = x + p * d;
  const float* xn = x + n * d;
  double sp = 0.0, sn = 0.0;
  for (std::int64_t k = lane; k < d; k += 32) {
    if (form.cosine) {
      sp += static_cast<double>(xa[k]) * xp[k];
      sn += static_cast<double>(xa[k]) * xn[k];
    } else {
      const double u = static_cast<double>(xa[k]) - xp[k], v = static_cast<double>(xa[k]) - xn[k];
      sp += u * u;
      sn += v * v;
    }
  }
  sp = gpu::warp_reduce(sp, gpu::SumOp{});
  sn = gpu::warp_reduce(sn, gpu::SumOp{});
  const double dp = form.cosine ? 1.0 - sp : form.squared ? sp : sqrt(sp);
  const double dn = form.cosine ? 1.0 - sn : form.squared ? sn : sqrt(sn);
  double loss = 0.0, active = 0.0;
  const double g = form.term(dp, dn, loss, active);
  if (lane == 0) {
    stats[0 * count + e] = loss;
    stats[1 * count + e] = active;
    stats[2 * count + e] = 1.0;
    stats[3 * count + e] = dp;
    stats[4 * count + e] = dn;
  }
  if (g == 0.0) return;
  const float cp = static_cast<float>(form.coef(dp, g)), cn = static_cast<float>(form.coef(dn, -g));
  float* ga = dx + a * d;
  float* gp = dx + p * d;
  float* gn = dx + n * d;
  for (std::int64_t k = lane; k < d; k += 32) {
    if (form.cosine) {  // dd/dx_a = −x_other, dd/dx_other = −x_a
      atomicAdd(ga + k, -cp * xp[k] - cn * xn[k]);
      atomicAdd(gp + k, -cp * xa[k]);
      atomicAdd(gn + k, -cn * xa[k]);
    } else {
      const float tp = cp * (xa[k] - xp[k]), tn = cn * (xa[k] - xn[k]);
      atomicAdd(ga + k, tp + tn);
      atomicAdd(gp + k, -tp);
      atomicAdd(gn + k, -tn);
    }
  }
}

// Pairs::all, one block per anchor row i of a chunk (G and Cf rows ii = i − r0,
// stride M). G holds the Gram entries of i (of the centred rows xg for
// Euclidean distances, with squared norms sq; of ẑ for cosine); x are the
// compared rows for exact distances. Each thread keeps the columns j ≡
// threadIdx.x (mod blockDim.x):
//   1. G_j ← d(i, j) (recomputed exactly when the Gram form lost too many
//      digits), Cf_j ← 0;
//   2. for each positive p of i (pos_col[pos_start[i] ..)): every negative
//      j's term with d(i, p); Cf_j accumulates −dl/dd, and the block's sum
//      gives Cf_p = coef(d(i,p), Σ_j dl/dd);
//   3. Cf_j ← coef(d(i,j), Cf_j) for the negatives; dx_i += rowsum(Cf) xg_i
//      (Euclidean).
// A pair near enough for the Gram form to lose its digits (near_share,
// marked in `near` [b, M]) gets its exact distance in 1 and, in 3, its
// gradient Cf_j (x_i − x_j) added directly with Cf_j left out, as on the
// CPU: through rowsum · xg_i − Cf xg it would cancel just as badly. Those
// additions reach other blocks' rows, so every addition to dx here is atomic.
__global__ void __launch_bounds__(gpu::row_threads)
    triplet_rows_kernel(float* __restrict__ G, float* __restrict__ Cf, std::int64_t r0, std::int64_t M,
                        std::int64_t D, const float* __restrict__ xg, const float* __restrict__ sq,
                        const float* __restrict__ x, const std::int64_t* __restrict__ sample,
                        const std::int64_t* __restrict__ pos_start, const std::int64_t* __restrict__ pos_col, Form form,
                        std::uint8_t* __restrict__ near_rows, float* __restrict__ dx, double* __restrict__ stats) {
  __shared__ double scratch[32];
  const std::int64_t i = r0 + blockIdx.x;
  float* g = G + static_cast<std::int64_t>(blockIdx.x) * M;
  float* c = Cf + static_cast<std::int64_t>(blockIdx.x) * M;
  std::uint8_t* near = near_rows + static_cast<std::int64_t>(blockIdx.x) * M;
  const std::int64_t si = sample[i];

  double neg_count = 0.0, neg_dist = 0.0;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    c[j] = 0.0f;
    near[j] = 0;
    if (j == i) continue;
    double dist;
    if (form.cosine) {
      dist = 1.0 - static_cast<double>(g[j]);
    } else {
      const float scale = sq[i] + sq[j];
      const float d2 = scale - 2.0f * g[j];
      near[j] = d2 < gpu::near_share * scale;
      dist = near[j] ? form.exact(x + i * D, x + j * D, D)
                     : (form.squared ? static_cast<double>(d2) : sqrt(static_cast<double>(d2)));
    }
    g[j] = static_cast<float>(dist);
    if (sample[j] != si) {
      neg_count += 1.0;
      neg_dist += dist;
    }
  }
  neg_count = gpu::block_reduce(neg_count, gpu::SumOp{}, 0.0, scratch);  // also the barrier after pass 1
  neg_dist = gpu::block_reduce(neg_dist, gpu::SumOp{}, 0.0, scratch);

  const std::int64_t p0 = pos_start[i], P = pos_start[i + 1] - p0;
  double loss = 0.0, active = 0.0, pos_dist = 0.0;
  for (std::int64_t q = 0; q < P; ++q) {
    const std::int64_t p = pos_col[p0 + q];
    const double dp = g[p];
    double gp = 0.0;
    for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      if (sample[j] == si) continue;
      const double t = form.term(dp, g[j], loss, active);
      gp += t;
      c[j] -= static_cast<float>(t);
    }
    gp = gpu::block_reduce(gp, gpu::SumOp{}, 0.0, scratch);
    if (threadIdx.x == 0) {
      c[p] = static_cast<float>(form.coef(dp, gp));
      pos_dist += dp;
    }
  }
  __syncthreads();  // the positives' coefficients, written by thread 0, are read below

  double rowsum = 0.0;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    if (j != i && sample[j] != si) c[j] = static_cast<float>(form.coef(g[j], c[j]));
    if (near[j]) {
      gpu::add_pair_gradient(x + i * D, x + j * D, D, c[j], dx + i * D, dx + j * D);
      c[j] = 0.0f;
    }
    rowsum += c[j];
  }
  rowsum = gpu::block_reduce(rowsum, gpu::SumOp{}, 0.0, scratch);
  loss = gpu::block_reduce(loss, gpu::SumOp{}, 0.0, scratch);
  active = gpu::block_reduce(active, gpu::SumOp{}, 0.0, scratch);
  if (!form.cosine) {
    const float rs = static_cast<float>(rowsum);
    for (std::int64_t k = threadIdx.x; k < D; k += blockDim.x) atomicAdd(dx + i * D + k, rs * xg[i * D + k]);
  }
  if (threadIdx.x == 0) {
    stats[0 * M + i] = loss;
    stats[1 * M + i] = active;
    stats[2 * M + i] = static_cast<double>(P) * neg_count;
    stats[3 * M + i] = pos_dist * neg_count;
    stats[4 * M + i] = neg_dist * static_cast<double>(P);
  }
}

}  // namespace

struct TripletCudaState {
  contra::Tensor zhat, norm, gram, coef, near, dx, colsum, stats, sums, sample, pos_start, pos_col, triplets;
  gpu::CenteredRows centred;
  gpu::PinnedBuffer sample_staging, pos_start_staging, pos_col_staging, triplets_staging, sums_host;
  std::vector<std::int64_t> pos_start_h, pos_col_h, order;
};

TripletCuda::TripletCuda(const contra::Params& p)
    : margin_(p.get<double>("margin")),
      cosine_(p.get<std::string>("distance") == "cosine"),
      squared_(p.get<bool>("squared")),
      soft_(p.get<bool>("soft_margin")),
      mean_nonzero_(p.get<std::string>("reduction") == "mean_nonzero"),
      normalize_(p.get<bool>("normalize")),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<TripletCudaState>()) {
  (void)Triplet(p);  // the CPU build's checks of the parameters, with its messages
}

TripletCuda::~TripletCuda() = default;

void TripletCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  const contra::PairsSelection selection = contra::check_pairs_form("triplet", pairs, pairs_forms::all_or_triplets());
  const bool all = selection == contra::PairsSelection::all;
  TripletCudaState& st = *state_;
  contra::EmbeddingsUse use;
  use.sample = all;  // the triplets of Pairs::all come from the grouping by sample
  if (selection == contra::PairsSelection::none) {
    // A miner may find nothing in a batch: no loss, no gradient, the run goes on.
    contra::check_embeddings("triplet", emb, contra::Device::cuda, use);
    const cudaStream_t s = gpu::stream();
    out.value = 0.0;
    out.grad.ensure(emb.z.shape(), contra::DType::f32, contra::Device::cuda);
    CONTRA_CUDA_CHECK(who, cudaMemsetAsync(out.grad.raw(), 0, out.grad.nbytes(), s));
    out.metrics.clear();
    out.metrics.emplace_back("triplets", 0.0);
    out.metrics.emplace_back("active_triplets", 0.0);
    return;
  }
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings("triplet", emb, contra::Device::cuda, use), D = z.dim(1);
  contra::check_pair_indices("triplet", pairs, emb);
  if (all) {
    // Positives per row (other rows of its sample, ascending), and whether any triplet exists.
    const std::vector<std::int64_t>& sample = *emb.sample;
    st.order.resize(static_cast<std::size_t>(M));
    for (std::int64_t i = 0; i < M; ++i) st.order[i] = i;
    std::stable_sort(st.order.begin(), st.order.end(),
                     [&](std::int64_t a, std::int64_t b) { return sample[a] < sample[b]; });
    st.pos_start_h.assign(static_cast<std::size_t>(M + 1), 0);
    std::int64_t total = 0;
    std::vector<std::int64_t> group_end(static_cast<std::size_t>(M));
    for (std::int64_t g0 = 0; g0 < M;) {
      std::int64_t g1 = g0 + 1;
      while (g1 < M && sample[st.order[g1]] == sample[st.order[g0]]) ++g1;
      for (std::int64_t q = g0; q < g1; ++q) {
        st.pos_start_h[st.order[q] + 1] = g1 - g0 - 1;
        group_end[q] = g1;
      }
      total += (g1 - g0) * (g1 - g0 - 1) * (M - (g1 - g0));
      g0 = g1;
    }
    if (total == 0)
      throw contra::UsageError("triplet: the batch of " + std::to_string(M) +
                               " rows has no (anchor, positive, negative) triplet; it needs at least 2 views per "
                               "sample and 2 samples");
    for (std::int64_t i = 0; i < M; ++i) st.pos_start_h[i + 1] += st.pos_start_h[i];
    st.pos_col_h.resize(static_cast<std::size_t>(st.pos_start_h[M]));
    std::vector<std::int64_t> fill(st.pos_start_h.begin(), st.pos_start_h.end() - 1);
    for (std::int64_t g0 = 0; g0 < M; g0 = group_end[g0])
      for (std::int64_t a = g0; a < group_end[g0]; ++a)
        for (std::int64_t b = g0; b < group_end[g0]; ++b)
          if (a != b) st.pos_col_h[fill[st.order[a]]++] = st.order[b];
  }

  // Every check is done: from here on work is queued on the stream.
  const cudaStream_t s = gpu::stream();
  const Form form{margin_, cosine_, squared_, soft_};
  const bool normalized = cosine_ || normalize_;
  const float* x = z.data<float>();
  float* zh = nullptr;
  float* nrm = nullptr;
  if (normalized) {
    zh = gpu::device_buffer<float>(st.zhat, M * D);
    nrm = gpu::device_buffer<float>(st.norm, M);
    gpu::normalize_rows(who, x, M, D, zh, nrm, s);
    x = zh;
  }
  float* dx = gpu::device_buffer<float>(st.dx, M * D);
  CONTRA_CUDA_CHECK(who, cudaMemsetAsync(dx, 0, sizeof(float) * M * D, s));
  std::int64_t stat_rows = 0;
  double* stats = nullptr;

  if (all) {
    cublasHandle_t h = gpu::blas(who, s);
    const std::int64_t* sample = gpu::upload(who, st.sample, st.sample_staging, emb.sample->data(), M, s);
    const std::int64_t* pos_start = gpu::upload(who, st.pos_start, st.pos_start_staging, st.pos_start_h.data(), M + 1, s);
    const std::int64_t* pos_col = gpu::upload(who, st.pos_col, st.pos_col_staging, st.pos_col_h.data(),
                                              static_cast<std::int64_t>(st.pos_col_h.size()), s);
    const float* xg = x;  // rows of the Gram block
    const float* sq = nullptr;
    double* colsum = nullptr;
    if (!cosine_) {
      st.centred.compute(who, x, M, D, s);
      xg = st.centred.rows();
      sq = st.centred.norms2();
      colsum = gpu::device_buffer<double>(st.colsum, M);
      CONTRA_CUDA_CHECK(who, cudaMemsetAsync(colsum, 0, sizeof(double) * M, s));
    }
    stat_rows = M;
    stats = gpu::device_buffer<double>(st.stats, stat_count * M);
    const std::int64_t B = std::min(chunk_, M);
    float* G = gpu::device_buffer<float>(st.gram, B * M);
    float* Cf = gpu::device_buffer<float>(st.coef, B * M);
    std::uint8_t* near = gpu::device_buffer<std::uint8_t>(st.near, B * M);
    for (std::int64_t r0 = 0; r0 < M; r0 += B) {
      const std::int64_t b = std::min(B, M - r0);
      const float* gb = xg + r0 * D;
      gpu::gemm(who, h, false, true, b, M, D, 1.0f, gb, D, xg, D, 0.0f, G, M);
      triplet_rows_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(
          G, Cf, r0, M, D, xg, sq, x, sample, pos_start, pos_col, form, near, dx, stats);
      CONTRA_CUDA_LAUNCHED(who, triplet_rows_kernel);
      // Euclidean: − Cf xg and − Cfᵀ xg_block (with the row and column sums);
      // cosine: the same two products are the whole gradient.
      gpu::gemm(who, h, false, false, b, D, M, -1.0f, Cf, M, xg, D, 1.0f, dx + r0 * D, D);
      gpu::gemm(who, h, true, false, M, D, b, -1.0f, Cf, M, gb, D, 1.0f, dx, D);
      if (!cosine_) gpu::column_sums(who, Cf, b, M, colsum, s);
    }
    if (!cosine_) gpu::add_scaled_rows(who, colsum, xg, M, D, dx, s);
  } else {
    const std::int64_t T = static_cast<std::int64_t>(pairs.triplets.size());
    const contra::Triplet* t = gpu::upload(who, st.triplets, st.triplets_staging, pairs.triplets.data(), T, s);
    stat_rows = T;
    stats = gpu::device_buffer<double>(st.stats, stat_count * T);
    triplets_kernel<<<gpu::blocks_for(T, 8, 0x7fffffff), 256, 0, s>>>(t, T, x, D, form, dx, stats);
    CONTRA_CUDA_LAUNCHED(who, triplets_kernel);
  }

  double sums[stat_count];
  gpu::read_stats(who, stats, stat_rows, stat_count, st.sums, st.sums_host, sums, s);
  const double loss = sums[0], active = sums[1], total = sums[2];
  const double divisor = mean_nonzero_ ? active : total;
  const float scale = divisor > 0.0 ? static_cast<float>(1.0 / divisor) : 0.0f;
  out.grad.ensure(z.shape(), contra::DType::f32, contra::Device::cuda);
  gpu::distance_loss_gradient(who, dx, zh, nrm, scale, M, D, out.grad.data<float>(), s);

  out.value = divisor > 0.0 ? loss / divisor : 0.0;
  out.metrics.clear();
  out.metrics.emplace_back("active_triplets", total > 0 ? active / total : 0.0);
  out.metrics.emplace_back("pos_dist", total > 0 ? sums[3] / total : 0.0);
  out.metrics.emplace_back("neg_dist", total > 0 ? sums[4] / total : 0.0);
  out.metrics.emplace_back("triplets", total);
}

}  // namespace contra::plugins
