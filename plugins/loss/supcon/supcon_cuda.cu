#include "supcon_cuda.hpp"

#include "../loss_cuda.cuh"
#include "../pairs_forms.hpp"

#include <contra/pairs_check.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace contra::plugins {

namespace {

constexpr const char* who = "supcon (cuda)";
constexpr int stat_count = 5;  // per row: loss_i, Σ s_ip, |P(i)|, Σ s_in, |N(i)|

// One block per anchor row of a chunk; S row ii (row i = r0 + ii) holds s_ij
// for the M rows. Each thread keeps its columns (j ≡ threadIdx.x mod
// blockDim.x) through the passes: 1. max over a ≠ i, |P(i)| and the sums;
// 2. e^{s − max} and their sum; 3. ∂loss_i/∂s_ia = softmax_a − [a ∈ P(i)]/|P(i)|
// in place (0 at a = i). A row without positive is no anchor.
__global__ void __launch_bounds__(gpu::row_threads)
    supcon_rows_kernel(float* __restrict__ S, std::int64_t ld, std::int64_t r0, std::int64_t M,
                       const std::int64_t* __restrict__ group, double* __restrict__ stats) {
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  const float neg_inf = -INFINITY;
  const std::int64_t i = r0 + blockIdx.x;
  float* row = S + static_cast<std::int64_t>(blockIdx.x) * ld;
  const std::int64_t gi = group[i];

  float mx = neg_inf;
  double pos_count = 0.0, pos_sum = 0.0, neg_sum = 0.0;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    if (j == i) continue;
    const float v = row[j];
    mx = fmaxf(mx, v);
    if (group[j] == gi) {
      pos_count += 1.0;
      pos_sum += v;
    } else {
      neg_sum += v;
    }
  }
  mx = gpu::block_reduce(mx, gpu::MaxOp{}, neg_inf, fscratch);
  pos_count = gpu::block_reduce(pos_count, gpu::SumOp{}, 0.0, dscratch);
  pos_sum = gpu::block_reduce(pos_sum, gpu::SumOp{}, 0.0, dscratch);
  neg_sum = gpu::block_reduce(neg_sum, gpu::SumOp{}, 0.0, dscratch);
  if (pos_count == 0.0) {  // the same in every thread
    for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) row[j] = 0.0f;
    if (threadIdx.x == 0)
      for (int s = 0; s < stat_count; ++s) stats[s * M + i] = 0.0;
    return;
  }

  double sum = 0.0;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    if (j == i) {
      row[j] = 0.0f;
      continue;
    }
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  sum = gpu::block_reduce(sum, gpu::SumOp{}, 0.0, dscratch);

  const double inv_p = 1.0 / pos_count, inv_sum = 1.0 / sum;
  for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x)
    if (j != i) row[j] = static_cast<float>(row[j] * inv_sum - (group[j] == gi ? inv_p : 0.0));
  if (threadIdx.x == 0) {
    stats[0 * M + i] = static_cast<double>(mx) + log(sum) - pos_sum * inv_p;
    stats[1 * M + i] = pos_sum;
    stats[2 * M + i] = pos_count;
    stats[3 * M + i] = neg_sum;
    stats[4 * M + i] = static_cast<double>(M - 1) - pos_count;
  }
}

}  // namespace

struct SupConCudaState {
  contra::Tensor zhat, norm, sim, dzhat, stats, sums, group;
  gpu::PinnedBuffer group_staging, sums_host;
};

SupConCuda::SupConCuda(const contra::Params& p)
    : temperature_(p.get<double>("temperature")),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<SupConCudaState>()) {}

SupConCuda::~SupConCuda() = default;

void SupConCuda::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  contra::check_pairs_form("supcon", pairs, pairs_forms::all_only());
  contra::EmbeddingsUse use;
  use.label = true;
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings("supcon", emb, contra::Device::cuda, use), D = z.dim(1);
  // Positives share the class, or the sample when the batch has no labels.
  const std::vector<std::int64_t>& group = emb.label ? *emb.label : *emb.sample;
  const std::int64_t anchors = gpu::rows_with_partner(group);
  if (anchors == 0)
    throw contra::UsageError("supcon: no row has a positive (another row of its " +
                             std::string(emb.label ? "class" : "sample") + ") among " + std::to_string(M) +
                             " rows");

  SupConCudaState& st = *state_;
  const cudaStream_t s = gpu::stream();
  cublasHandle_t h = gpu::blas(who, s);
  const float inv_t = static_cast<float>(1.0 / temperature_);
  float* zh = gpu::device_buffer<float>(st.zhat, M * D);
  float* nrm = gpu::device_buffer<float>(st.norm, M);
  gpu::normalize_rows(who, z.data<float>(), M, D, zh, nrm, s);
  const std::int64_t* group_d = gpu::upload(who, st.group, st.group_staging, group.data(), M, s);

  const std::int64_t B = std::min(chunk_, M);
  float* S = gpu::device_buffer<float>(st.sim, B * M);
  float* dzh = gpu::device_buffer<float>(st.dzhat, M * D);
  double* stats = gpu::device_buffer<double>(st.stats, stat_count * M);
  CONTRA_CUDA_CHECK(who, cudaMemsetAsync(dzh, 0, sizeof(float) * M * D, s));
  for (std::int64_t b0 = 0; b0 < M; b0 += B) {
    const std::int64_t nb = std::min(B, M - b0);
    const float* zb = zh + b0 * D;
    gpu::gemm(who, h, false, true, nb, M, D, inv_t, zb, D, zh, D, 0.0f, S, M);
    supcon_rows_kernel<<<static_cast<unsigned>(nb), gpu::row_threads, 0, s>>>(S, M, b0, M, group_d, stats);
    CONTRA_CUDA_LAUNCHED(who, supcon_rows_kernel);
    gpu::gemm(who, h, false, false, nb, D, M, inv_t, S, M, zh, D, 1.0f, dzh + b0 * D, D);
    gpu::gemm(who, h, true, false, M, D, nb, inv_t, S, M, zb, D, 1.0f, dzh, D);
  }

  out.grad.ensure(z.shape(), contra::DType::f32, contra::Device::cuda);
  gpu::normalize_backward(who, zh, nrm, dzh, 1.0f / static_cast<float>(anchors), M, D, out.grad.data<float>(), s);
  double t[stat_count];
  gpu::read_stats(who, stats, M, stat_count, st.sums, st.sums_host, t, s);

  out.value = t[0] / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", t[2] > 0 ? t[1] * temperature_ / t[2] : 0.0);
  out.metrics.emplace_back("neg_sim", t[4] > 0 ? t[3] * temperature_ / t[4] : 0.0);
  out.metrics.emplace_back("anchors", static_cast<double>(anchors) / static_cast<double>(M));
}

}  // namespace contra::plugins
