#include "batch_hard_cuda.hpp"

#include "../miner_cuda.cuh"

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "batch_hard (cuda)";

// One block per anchor row a = a0 + blockIdx.x: its distances from the Gram
// row, then the farthest row of its group and the nearest of another group.
// choice[a] = (positive, negative), −1 where there is none.
__global__ void __launch_bounds__(gpu::row_threads)
    batch_hard_kernel(float* __restrict__ G, std::int64_t a0, std::int64_t m, const float* __restrict__ sq, bool cosine,
                      const std::int64_t* __restrict__ group, std::int32_t* __restrict__ choice) {
  __shared__ miner_gpu::Pick scratch[32];
  const std::int64_t a = a0 + blockIdx.x;
  float* g = G + static_cast<std::int64_t>(blockIdx.x) * m;
  miner_gpu::gram_to_distances(g, a, m, sq, cosine);
  const std::int64_t ga = group[a];
  miner_gpu::Pick pos{0.0f, -1}, neg{0.0f, -1};
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    if (j == a) continue;
    const miner_gpu::Pick c{g[j], static_cast<std::int32_t>(j)};
    if (group[j] == ga) pos = miner_gpu::FartherOp{}(pos, c);
    else neg = miner_gpu::NearerOp{}(neg, c);
  }
  pos = miner_gpu::block_reduce_pick(pos, miner_gpu::FartherOp{}, scratch);
  neg = miner_gpu::block_reduce_pick(neg, miner_gpu::NearerOp{}, scratch);
  if (threadIdx.x == 0) {
    choice[2 * a] = pos.row;
    choice[2 * a + 1] = neg.row;
  }
}

}  // namespace

struct BatchHardCudaState {
  miner_gpu::PreparedRows rows;
  contra::Tensor gram, group, choice;
  gpu::PinnedBuffer group_staging, choice_host;
};

BatchHardCuda::BatchHardCuda(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      use_labels_(p.get<bool>("use_labels")),
      state_(std::make_unique<BatchHardCudaState>()) {}

BatchHardCuda::~BatchHardCuda() = default;

void BatchHardCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& groups =
      miner_detail::row_groups(e, use_labels_, "batch_hard", contra::Device::cuda);
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  BatchHardCudaState& st = *state_;
  const cudaStream_t s = gpu::stream();
  st.rows.compute(who, e.z.data<float>(), m, d, cosine_, s);
  const std::int64_t* group = gpu::upload(who, st.group, st.group_staging, groups.data(), m, s);
  std::int32_t* choice = gpu::device_buffer<std::int32_t>(st.choice, 2 * m);
  miner_gpu::for_each_gram_block(who, st.rows, m, d, st.gram, s, [&](float* G, std::int64_t a0, std::int64_t b) {
    batch_hard_kernel<<<static_cast<unsigned>(b), gpu::row_threads, 0, s>>>(G, a0, m, st.rows.sq, cosine_, group,
                                                                            choice);
    CONTRA_CUDA_LAUNCHED(who, batch_hard_kernel);
  });
  const std::int32_t* host = miner_gpu::read_choices(who, choice, 2 * m, st.choice_host, s);
  for (std::int64_t a = 0; a < m; ++a)
    if (host[2 * a] >= 0 && host[2 * a + 1] >= 0)
      out.triplets.push_back({static_cast<std::int32_t>(a), host[2 * a], host[2 * a + 1]});
}

}  // namespace contra::plugins
