#include "distance_weighted_cuda.hpp"

#include "../miner_cuda.cuh"

#include <cstdint>
#include <vector>

namespace contra::plugins {

namespace {
constexpr const char* who = "distance_weighted (cuda)";
}  // namespace

struct DistanceWeightedCudaState {
  miner_gpu::PreparedRows rows;
  contra::Tensor gram;
  gpu::PinnedBuffer block_host;
};

DistanceWeightedCuda::DistanceWeightedCuda(const contra::Params& p)
    : sampler_(p), use_labels_(p.get<bool>("use_labels")), state_(std::make_unique<DistanceWeightedCudaState>()) {}

DistanceWeightedCuda::~DistanceWeightedCuda() = default;

void DistanceWeightedCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group =
      miner_detail::row_groups(e, use_labels_, "distance_weighted", contra::Device::cuda);
  const std::uint64_t step = sampler_.next_call();
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  DistanceWeightedCudaState& st = *state_;
  const cudaStream_t s = gpu::stream();
  st.rows.compute(who, e.z.data<float>(), m, d, /*cosine=*/true, s);
  miner_gpu::for_each_host_block(who, st.rows, m, d, miner_gpu::BlockValues::similarities, true, st.gram,
                                 st.block_host, s, [&](const float* sim, std::int64_t a0, std::int64_t b) {
                                   sampler_.sample(sim, a0, a0 + b, m, d, group, step, out);
                                 });
}

}  // namespace contra::plugins
