#include "semi_hard_cuda.hpp"

#include "../miner_cuda.cuh"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "semi_hard (cuda)";

// One block per anchor row a = a0 + blockIdx.x. For each positive pair (a, p)
// of the list (entries pos_start[a] ..), negative[q] becomes the nearest
// negative farther than d(a,p) when it is nearer than d(a,p) + margin
// (semi-hard); else, without skip, that nearest one (easy), or the farthest
// negative when none is farther (all hard); else −1.
__global__ void __launch_bounds__(gpu::row_threads)
    semi_hard_kernel(float* __restrict__ G, std::int64_t a0, std::int64_t m, const float* __restrict__ sq, bool cosine,
                     const std::int64_t* __restrict__ group, const std::int64_t* __restrict__ pos_start,
                     const std::int64_t* __restrict__ pos_col, double margin, bool skip,
                     std::int32_t* __restrict__ negative) {
  __shared__ miner_gpu::Pick scratch[32];
  const std::int64_t a = a0 + blockIdx.x;
  float* g = G + static_cast<std::int64_t>(blockIdx.x) * m;
  miner_gpu::gram_to_distances(g, a, m, sq, cosine);
  const std::int64_t ga = group[a];
  // NaN distances (from NaN embeddings) sort as +inf, as on the CPU.
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x)
    if (isnan(g[j])) g[j] = INFINITY;
  __syncthreads();
  miner_gpu::Pick far{0.0f, -1};
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x)
    if (group[j] != ga) far = miner_gpu::FartherOp{}(far, miner_gpu::Pick{g[j], static_cast<std::int32_t>(j)});
  far = miner_gpu::block_reduce_pick(far, miner_gpu::FartherOp{}, scratch);
  const std::int64_t q0 = pos_start[a], q1 = pos_start[a + 1];
  for (std::int64_t q = q0; q < q1; ++q) {
    const float dap = g[pos_col[q]];
    miner_gpu::Pick next{0.0f, -1};
    for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x)
      if (group[j] != ga && g[j] > dap)
        next = miner_gpu::NearerOp{}(next, miner_gpu::Pick{g[j], static_cast<std::int32_t>(j)});
    next = miner_gpu::block_reduce_pick(next, miner_gpu::NearerOp{}, scratch);
    if (threadIdx.x == 0) {
      std::int32_t n;
      if (far.row < 0) n = -1;  // no negative at all
      else if (next.row >= 0 && static_cast<double>(next.dist) < static_cast<double>(dap) + margin) n = next.row;
      else if (skip) n = -1;
      else if (next.row >= 0) n = next.row;
      else n = far.row;
      negative[q] = n;
    }
  }
}

}  // namespace

struct SemiHardCudaState {
  miner_gpu::PreparedRows rows;
  miner_gpu::PositiveLists positives;
  contra::Tensor gram, group, pos_start, pos_col, negative;
  gpu::PinnedBuffer group_staging, pos_start_staging, pos_col_staging, negative_host;
};

SemiHardCuda::SemiHardCuda(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      margin_(p.get<double>("margin")),
      skip_(p.get<std::string>("fallback") == "skip"),
      use_labels_(p.get<bool>("use_labels")),
      state_(std::make_unique<SemiHardCudaState>()) {}

SemiHardCuda::~SemiHardCuda() = default;

void SemiHardCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& groups =
      miner_detail::row_groups(e, use_labels_, "semi_hard", contra::Device::cuda);
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  SemiHardCudaState& st = *state_;
  st.positives.build(groups);
  const auto pairs = static_cast<std::int64_t>(st.positives.col.size());
  if (pairs == 0) return;  // no positive pair: nothing to mine (as on the CPU)
  const cudaStream_t s = gpu::stream();
  st.rows.compute(who, e.z.data<float>(), m, d, cosine_, s);
  const std::int64_t* group = gpu::upload(who, st.group, st.group_staging, groups.data(), m, s);
  const std::int64_t* pos_start =
      gpu::upload(who, st.pos_start, st.pos_start_staging, st.positives.start.data(), m + 1, s);
  const std::int64_t* pos_col = gpu::upload(who, st.pos_col, st.pos_col_staging, st.positives.col.data(), pairs, s);
  std::int32_t* negative = gpu::device_buffer<std::int32_t>(st.negative, pairs);
  miner_gpu::for_each_gram_block(who, st.rows, m, d, st.gram, s, [&](float* G, std::int64_t a0, std::int64_t b) {
    semi_hard_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(
        G, a0, m, st.rows.sq, cosine_, group, pos_start, pos_col, margin_, skip_, negative);
    CONTRA_CUDA_LAUNCHED(who, semi_hard_kernel);
  });
  const std::int32_t* host = miner_gpu::read_choices(who, negative, pairs, st.negative_host, s);
  for (std::int64_t a = 0; a < m; ++a)
    for (std::int64_t q = st.positives.start[a]; q < st.positives.start[a + 1]; ++q)
      if (host[q] >= 0)
        out.triplets.push_back({static_cast<std::int32_t>(a), static_cast<std::int32_t>(st.positives.col[q]), host[q]});
}

}  // namespace contra::plugins
