#include "siglip_cuda.hpp"

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

constexpr const char* who = "siglip (cuda)";

// Per-sample statistics, summed at the end: row i's Σ_j −log σ(y·logit),
// whether row i / column i retrieves its match, C_ii, and row i's parts of
// dL/ds and dL/db.
enum Stat : int { row_loss, row_hit, column_hit, matching_cosine, row_dl_ds, row_dl_db, stat_count };
// After the sums, the finishing kernel writes exp(t) and b (as the CPU build reports them) here.
constexpr int scale_slot = stat_count, bias_slot = stat_count + 1;

using gpu::LogitScalars;

// exp(t) in double and its f32, and b, as the CPU build takes them.
__global__ void siglip_scalars_kernel(const float* __restrict__ t, const float* __restrict__ b,
                                      LogitScalars* __restrict__ out) {
  const double scale = exp(static_cast<double>(*t));
  const double bias = *b;
  out->s = static_cast<float>(scale);
  out->bias = static_cast<float>(bias);
  out->scale = scale;
  out->bias_value = bias;
  out->clamped = 0;
}

// One block per row i = i0 + r of the block of cosines c: whether C_ii is
// strictly above the row's other entries (i2t), then per pair, with
// logit = s·C + b, y = +1 for j = i and −1 otherwise, u = −y·logit:
// −log σ(y·logit) = max(u, 0) + log1p(e^{−|u|}) and dL/dlogit = −y·σ(u)/N,
// written over the cosines as s·dL/dlogit (= dL/dC). The sums of the row go
// to the statistics.
__global__ void __launch_bounds__(gpu::row_threads)
    siglip_rows_kernel(float* __restrict__ c, std::int64_t n, std::int64_t i0,
                       const LogitScalars* __restrict__ scalars, float* __restrict__ matching,
                       double* __restrict__ stats) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  const float neg_inf = -INFINITY;
  const std::int64_t r = blockIdx.x, i = i0 + r;
  float* row = c + r * n;
  const float m = row[i];  // read by every thread before the reduction's barriers, written after
  float other = neg_inf;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x)
    if (j != i) other = fmaxf(other, row[j]);
  other = gpu::block_reduce(other, gpu::MaxOp{}, neg_inf, fscratch);

  const float s = scalars->s, bias = scalars->bias;
  const float inv_n = 1.0f / static_cast<float>(n);
  double loss = 0.0, dl_ds = 0.0, dl_db = 0.0;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float cosine = row[j];
    const float y = j == i ? 1.0f : -1.0f;
    const float u = -y * (s * cosine + bias);
    const float e = expf(-fabsf(u));
    const float sigma_u = (u >= 0.0f ? 1.0f : e) / (1.0f + e);
    const float g = -y * sigma_u * inv_n;
    loss += fmaxf(u, 0.0f) + log1pf(e);
    dl_ds += static_cast<double>(g) * cosine;
    dl_db += g;
    row[j] = s * g;
  }
  loss = gpu::block_reduce(loss, gpu::SumOp{}, 0.0, dscratch);
  dl_ds = gpu::block_reduce(dl_ds, gpu::SumOp{}, 0.0, dscratch);
  dl_db = gpu::block_reduce(dl_db, gpu::SumOp{}, 0.0, dscratch);
  if (threadIdx.x == 0) {
    matching[i] = m;
    stats[row_loss * n + i] = loss;
    stats[row_hit * n + i] = m > other ? 1.0 : 0.0;
    stats[matching_cosine * n + i] = m;
    stats[row_dl_ds * n + i] = dl_ds;
    stats[row_dl_db * n + i] = dl_db;
  }
}

// After the blocks, one thread per sample: column i's tally (t2i).
__global__ void siglip_columns_kernel(std::int64_t n, const float* __restrict__ matching,
                                      const float* __restrict__ best_other, double* __restrict__ stats) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    stats[column_hit * n + i] = matching[i] > best_other[i] ? 1.0 : 0.0;
}

// One thread, after the sums: exp(t) and b for the metrics, dL/dt = exp(t)·dL/ds
// and dL/db added into the parameters' gradients (null: not learnt).
__global__ void siglip_finish_kernel(const LogitScalars* __restrict__ scalars, double* __restrict__ sums,
                                     float* __restrict__ grad_t, float* __restrict__ grad_b) {
  sums[scale_slot] = scalars->scale;
  sums[bias_slot] = scalars->bias_value;
  if (grad_t) grad_t[0] += static_cast<float>(scalars->scale * sums[row_dl_ds]);
  if (grad_b) grad_b[0] += static_cast<float>(sums[row_dl_db]);
}

}  // namespace

struct SiglipCudaState {
  gpu::DeviceViews views;
  gpu::StatSums sums;
  contra::Tensor scalars, block, matching, best_other;
};

SiglipCuda::SiglipCuda(const contra::Params& p)
    : learn_scale_(p.get<bool>("learn_scale")),
      learn_bias_(p.get<bool>("learn_bias")),
      chunk_(p.get<std::int64_t>("chunk")),
      initial_log_scale_(std::log(p.get<double>("init_scale"))),
      initial_bias_(p.get<double>("init_bias")),
      state_(std::make_unique<SiglipCudaState>()) {}

SiglipCuda::~SiglipCuda() = default;

void SiglipCuda::to_device() {
  if (on_device_) return;
  contra::cuda::require(who);
  log_scale_ = gpu::device_scalar_parameter("logit_scale", initial_log_scale_);
  bias_ = gpu::device_scalar_parameter("logit_bias", initial_bias_);
  on_device_ = true;
}

std::vector<contra::Parameter*> SiglipCuda::parameters() {
  to_device();
  std::vector<contra::Parameter*> learnt;
  if (learn_scale_) learnt.push_back(&log_scale_);
  if (learn_bias_) learnt.push_back(&bias_);
  return learnt;
}

void SiglipCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  to_device();
  contra::check_pairs_form("siglip", pairs, pairs_forms::all_only());
  const two_tower::ViewPair views = gpu::pick_device_views("siglip", emb);
  const std::int64_t n = views.samples;

  // Every check is done: from here on work is queued on the stream.
  const cudaStream_t s = gpu::stream();
  const char* w = who;
  SiglipCudaState& st = *state_;
  cublasHandle_t h = gpu::blas(w, s);
  st.views.load(w, views, emb.z, s);

  LogitScalars* scalars = gpu::device_buffer<LogitScalars>(st.scalars, 1);
  siglip_scalars_kernel<<<1, 1, 0, s>>>(log_scale_.value.data<float>(), bias_.value.data<float>(), scalars);
  CONTRA_CUDA_LAUNCHED(w, siglip_scalars_kernel);

  const std::int64_t block_rows = std::min(chunk_, n);
  float* c = gpu::device_buffer<float>(st.block, block_rows * n);
  float* matching = gpu::device_buffer<float>(st.matching, n);
  float* best_other = gpu::device_buffer<float>(st.best_other, n);
  double* stats = st.sums.stats(n, stat_count);
  gpu::fill(w, best_other, n, -INFINITY, s);
  const unsigned column_blocks = gpu::blocks_for(n, gpu::column_threads);

  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    st.views.cosines(w, h, i0, b, c);
    // The columns' tally reads the cosines before the row pass overwrites them.
    gpu::column_best_other_kernel<<<column_blocks, gpu::column_threads, 0, s>>>(c, n, i0, b, best_other);
    CONTRA_CUDA_LAUNCHED(w, column_best_other_kernel);
    siglip_rows_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(c, n, i0, scalars, matching, stats);
    CONTRA_CUDA_LAUNCHED(w, siglip_rows_kernel);
    st.views.backprop(w, h, i0, b, c);
  }
  siglip_columns_kernel<<<column_blocks, gpu::column_threads, 0, s>>>(n, matching, best_other, stats);
  CONTRA_CUDA_LAUNCHED(w, siglip_columns_kernel);
  st.views.backward(w, out.grad, s);

  // The sums, dL/dt and dL/db into the parameters' gradients, and one read back.
  double* sums = st.sums.sum(w, 2, s);
  siglip_finish_kernel<<<1, 1, 0, s>>>(scalars, sums, learn_scale_ ? log_scale_.grad.data<float>() : nullptr,
                                       learn_bias_ ? bias_.grad.data<float>() : nullptr);
  CONTRA_CUDA_LAUNCHED(w, siglip_finish_kernel);
  double host[stat_count + 2];
  st.sums.read(w, host, s);

  const double count = static_cast<double>(n);
  out.value = host[row_loss] / count;
  out.metrics.emplace_back("logit_scale", host[scale_slot]);
  out.metrics.emplace_back("logit_bias", host[bias_slot]);
  out.metrics.emplace_back("i2t_accuracy", host[row_hit] / count);
  out.metrics.emplace_back("t2i_accuracy", host[column_hit] / count);
  out.metrics.emplace_back("positive_similarity", host[matching_cosine] / count);
}

}  // namespace contra::plugins
