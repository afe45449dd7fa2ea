#include "clip_cuda.hpp"

#include "../pairs_forms.hpp"
#include "../two_tower_cuda.cuh"

#include <contra/cuda.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "clip (cuda)";

// Per-sample statistics, summed at the end: row i's and column i's
// cross-entropies, whether row i / column i retrieves its match, C_ii, and
// row i's part of dL/ds.
enum Stat : int { cross_entropies, row_hit, column_hit, matching_cosine, row_dl_ds, stat_count };
// After the sums, the finishing kernel writes s (as the CPU build reports it) here.
constexpr int scale_slot = stat_count;

using gpu::LogitScalars;

// s = min(exp(t), max_scale) as the CPU build takes it: clamped where
// t > log(max_scale) compared in the f32 that t is stored in.
__global__ void clip_scalars_kernel(const float* __restrict__ t, float log_max_scale, double max_scale,
                                    LogitScalars* __restrict__ out) {
  const float tv = *t;
  const bool clamped = tv > log_max_scale;
  const float s = static_cast<float>(clamped ? max_scale : exp(static_cast<double>(tv)));
  out->s = s;
  out->bias = 0.0f;
  out->scale = s;
  out->bias_value = 0.0;
  out->clamped = clamped ? 1 : 0;
}

// Pass 1, one block per row i = i0 + r of the block of cosines c: the row's
// largest cosine m_i, log Σ_j exp(s·(C_ij − m_i)), C_ii, and whether C_ii is
// strictly above the row's other entries (i2t).
__global__ void __launch_bounds__(gpu::row_threads)
    clip_rows_kernel(const float* __restrict__ c, std::int64_t n, std::int64_t i0,
                     const LogitScalars* __restrict__ scalars, float* __restrict__ row_max,
                     double* __restrict__ row_log_sum, float* __restrict__ matching, double* __restrict__ stats) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  const float neg_inf = -INFINITY;
  const std::int64_t r = blockIdx.x, i = i0 + r;
  const float* row = c + r * n;
  const float s = scalars->s;
  float largest = neg_inf, other = neg_inf;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float v = row[j];
    largest = fmaxf(largest, v);
    if (j != i) other = fmaxf(other, v);
  }
  largest = gpu::block_reduce(largest, gpu::MaxOp{}, neg_inf, fscratch);
  other = gpu::block_reduce(other, gpu::MaxOp{}, neg_inf, fscratch);
  double sum = 0.0;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(s * (row[j] - largest));
  sum = gpu::block_reduce(sum, gpu::SumOp{}, 0.0, dscratch);
  if (threadIdx.x == 0) {
    const float m = row[i];
    row_max[i] = largest;
    row_log_sum[i] = log(sum);
    matching[i] = m;
    stats[row_hit * n + i] = m > other ? 1.0 : 0.0;
  }
}

// Pass 1, one thread per column j, online across blocks of rows: the
// column's largest cosine so far and Σ exp(s·(C − that largest)), rescaled
// when a block brings a larger one (as the CPU build), and the largest
// entry of the column other than C_jj (t2i).
__global__ void clip_columns_kernel(const float* __restrict__ c, std::int64_t n, std::int64_t i0, std::int64_t b,
                                    const LogitScalars* __restrict__ scalars, float* __restrict__ column_max,
                                    double* __restrict__ column_sum, float* __restrict__ best_other) {
  const float neg_inf = -INFINITY;
  const float s = scalars->s;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float block_max = neg_inf, other = best_other[j];
    for (std::int64_t r = 0; r < b; ++r) {
      const float v = c[r * n + j];
      block_max = fmaxf(block_max, v);
      if (i0 + r != j) other = fmaxf(other, v);
    }
    const float before = column_max[j];
    const float largest = fmaxf(before, block_max);
    double sum = column_sum[j];
    if (before > neg_inf) sum *= exp(static_cast<double>(s) * (before - largest));
    for (std::int64_t r = 0; r < b; ++r) sum += expf(s * (c[r * n + j] - largest));
    column_max[j] = largest;
    column_sum[j] = sum;
    best_other[j] = other;
  }
}

// After pass 1, one thread per sample i: column i's sum to its logarithm (in
// place), the two cross-entropies row_log_sum_i + s·(m_i − C_ii) and the
// column's likewise, column i's tally and C_ii.
__global__ void clip_samples_kernel(std::int64_t n, const LogitScalars* __restrict__ scalars,
                                    const float* __restrict__ row_max, const double* __restrict__ row_log_sum,
                                    const float* __restrict__ matching, const float* __restrict__ column_max,
                                    double* __restrict__ column_log_sum, const float* __restrict__ best_other,
                                    double* __restrict__ stats) {
  const double scale = scalars->s;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double column = log(column_log_sum[i]);
    column_log_sum[i] = column;
    const float m = matching[i];
    stats[cross_entropies * n + i] = row_log_sum[i] + scale * (static_cast<double>(row_max[i]) - m) + column +
                                     scale * (static_cast<double>(column_max[i]) - m);
    stats[column_hit * n + i] = m > best_other[i] ? 1.0 : 0.0;
    stats[matching_cosine * n + i] = m;
  }
}

// Pass 2, one block per row i = i0 + r: dL/dlogit_ij = (softmax_j(row i) +
// softmax_i(column j) − 2·[i = j]) / 2N, the matching pair's from expm1 of
// its log-probabilities in double (as the CPU build); written over the
// cosines as s·dL/dlogit (= dL/dC), and Σ_j dL/dlogit_ij · C_ij (row i's part
// of dL/ds) into the statistics.
__global__ void __launch_bounds__(gpu::row_threads)
    clip_gradient_kernel(float* __restrict__ c, std::int64_t n, std::int64_t i0,
                         const LogitScalars* __restrict__ scalars, const float* __restrict__ row_max,
                         const double* __restrict__ row_log_sum, const float* __restrict__ column_max,
                         const double* __restrict__ column_log_sum, double* __restrict__ stats) {
  __shared__ double dscratch[32];
  const std::int64_t r = blockIdx.x, i = i0 + r;
  float* row = c + r * n;
  const float s = scalars->s;
  const double half_mean = 0.5 / static_cast<double>(n);
  const float half_mean_f = static_cast<float>(half_mean);
  const float m = row_max[i];
  const float log_sum = static_cast<float>(row_log_sum[i]);
  double dl_ds = 0.0;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float cosine = row[j];
    float g;
    if (j == i) {
      const double log_p_row = s * (static_cast<double>(cosine) - m) - row_log_sum[i];
      const double log_p_column = s * (static_cast<double>(cosine) - column_max[i]) - column_log_sum[i];
      const double g_matching = (expm1(log_p_row) + expm1(log_p_column)) * half_mean;
      dl_ds += g_matching * cosine;
      g = static_cast<float>(g_matching);
    } else {
      g = (expf(s * (cosine - m) - log_sum) +
           expf(s * (cosine - column_max[j]) - static_cast<float>(column_log_sum[j]))) *
          half_mean_f;
      dl_ds += static_cast<double>(g) * cosine;
    }
    row[j] = s * g;
  }
  dl_ds = gpu::block_reduce(dl_ds, gpu::SumOp{}, 0.0, dscratch);
  if (threadIdx.x == 0) stats[row_dl_ds * n + i] = dl_ds;
}

// One thread, after the sums: s for the metrics and, unless clamped,
// dL/dt = s·dL/ds added into the parameter's gradient (grad null: not learnt).
__global__ void clip_finish_kernel(const LogitScalars* __restrict__ scalars, double* __restrict__ sums,
                                   float* __restrict__ grad) {
  sums[scale_slot] = scalars->scale;
  if (grad && !scalars->clamped) grad[0] += static_cast<float>(scalars->scale * sums[row_dl_ds]);
}

}  // namespace

struct ClipCudaState {
  gpu::DeviceViews views;
  gpu::StatSums sums;
  contra::Tensor scalars, block, row_max, row_log_sum, matching, column_max, column_sum, best_other;
};

ClipCuda::ClipCuda(const contra::Params& p)
    : learn_temperature_(p.get<bool>("learn_temperature")),
      max_scale_(p.get<double>("max_scale")),
      chunk_(p.get<std::int64_t>("chunk")),
      initial_log_scale_(std::log(1.0 / p.get<double>("init_temperature"))),
      state_(std::make_unique<ClipCudaState>()) {
  const Clip checked(p);  // the CPU build's ConfigError
}

ClipCuda::~ClipCuda() = default;

void ClipCuda::to_device() {
  if (on_device_) return;
  contra::cuda::require(who);
  log_scale_ = gpu::device_scalar_parameter("logit_scale", initial_log_scale_);
  on_device_ = true;
}

std::vector<contra::Parameter*> ClipCuda::parameters() {
  to_device();
  if (!learn_temperature_) return {};
  return {&log_scale_};
}

void ClipCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  to_device();
  contra::check_pairs_form("clip", pairs, pairs_forms::all_only());
  const two_tower::ViewPair views = gpu::pick_device_views("clip", emb);
  const std::int64_t n = views.samples;

  // Every check is done: from here on work is queued on the stream.
  const cudaStream_t s = gpu::stream();
  const char* w = who;
  ClipCudaState& st = *state_;
  cublasHandle_t h = gpu::blas(w, s);
  st.views.load(w, views, emb.z, s);

  LogitScalars* scalars = gpu::device_buffer<LogitScalars>(st.scalars, 1);
  clip_scalars_kernel<<<1, 1, 0, s>>>(log_scale_.value.data<float>(), static_cast<float>(std::log(max_scale_)),
                                      max_scale_, scalars);
  CONTRA_CUDA_LAUNCHED(w, clip_scalars_kernel);

  const std::int64_t block_rows = std::min(chunk_, n);
  const bool one_block = block_rows == n;  // pass 2 reuses pass 1's cosines
  float* c = gpu::device_buffer<float>(st.block, block_rows * n);
  float* row_max = gpu::device_buffer<float>(st.row_max, n);
  double* row_log_sum = gpu::device_buffer<double>(st.row_log_sum, n);
  float* matching = gpu::device_buffer<float>(st.matching, n);
  float* column_max = gpu::device_buffer<float>(st.column_max, n);
  double* column_sum = gpu::device_buffer<double>(st.column_sum, n);
  float* best_other = gpu::device_buffer<float>(st.best_other, n);
  double* stats = st.sums.stats(n, stat_count);
  gpu::fill(w, column_max, n, -INFINITY, s);
  gpu::fill(w, best_other, n, -INFINITY, s);
  gpu::fill(w, column_sum, n, 0.0, s);
  const unsigned column_blocks = gpu::blocks_for(n, gpu::column_threads);

  // Pass 1: the log-sum-exp of every row and every column of the logits.
  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    st.views.cosines(w, h, i0, b, c);
    clip_rows_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(c, n, i0, scalars, row_max, row_log_sum,
                                                                            matching, stats);
    CONTRA_CUDA_LAUNCHED(w, clip_rows_kernel);
    clip_columns_kernel<<<column_blocks, gpu::column_threads, 0, s>>>(c, n, i0, b, scalars, column_max, column_sum,
                                                                      best_other);
    CONTRA_CUDA_LAUNCHED(w, clip_columns_kernel);
  }
  clip_samples_kernel<<<column_blocks, gpu::column_threads, 0, s>>>(n, scalars, row_max, row_log_sum, matching,
                                                                    column_max, column_sum, best_other, stats);
  CONTRA_CUDA_LAUNCHED(w, clip_samples_kernel);

  // Pass 2: dL/dlogits block by block, into dL/dẑ and dL/ds.
  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    if (!one_block) st.views.cosines(w, h, i0, b, c);
    clip_gradient_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(c, n, i0, scalars, row_max,
                                                                                row_log_sum, column_max, column_sum,
                                                                                stats);
    CONTRA_CUDA_LAUNCHED(w, clip_gradient_kernel);
    st.views.backprop(w, h, i0, b, c);
  }
  st.views.backward(w, out.grad, s);

  // The sums, dL/dt into the parameter's gradient, and one read back.
  double* sums = st.sums.sum(w, 1, s);
  clip_finish_kernel<<<1, 1, 0, s>>>(scalars, sums, learn_temperature_ ? log_scale_.grad.data<float>() : nullptr);
  CONTRA_CUDA_LAUNCHED(w, clip_finish_kernel);
  double host[stat_count + 1];
  st.sums.read(w, host, s);

  const double count = static_cast<double>(n);
  out.value = host[cross_entropies] / (2.0 * count);
  out.metrics.emplace_back("logit_scale", host[scale_slot]);
  out.metrics.emplace_back("i2t_accuracy", host[row_hit] / count);
  out.metrics.emplace_back("t2i_accuracy", host[column_hit] / count);
  out.metrics.emplace_back("positive_similarity", host[matching_cosine] / count);
}

}  // namespace contra::plugins
