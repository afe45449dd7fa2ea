#include "multi_similarity_cuda.hpp"

#include "../miner_cuda.cuh"

#include <cstdint>
#include <vector>

namespace contra::plugins {

namespace {
constexpr const char* who = "multi_similarity (cuda)";
}  // namespace

struct MultiSimilarityCudaState {
  miner_gpu::PreparedRows rows;
  contra::Tensor gram;
  gpu::PinnedBuffer block_host;
};

MultiSimilarityCuda::MultiSimilarityCuda(const contra::Params& p)
    : epsilon_(p.get<double>("epsilon")),
      use_labels_(p.get<bool>("use_labels")),
      state_(std::make_unique<MultiSimilarityCudaState>()) {}

MultiSimilarityCuda::~MultiSimilarityCuda() = default;

void MultiSimilarityCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group =
      miner_detail::row_groups(e, use_labels_, "multi_similarity", contra::Device::cuda);
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  MultiSimilarityCudaState& st = *state_;
  const cudaStream_t s = gpu::stream();
  st.rows.compute(who, e.z.data<float>(), m, d, /*cosine=*/true, s);
  miner_gpu::for_each_host_block(who, st.rows, m, d, miner_gpu::BlockValues::similarities, true, st.gram,
                                 st.block_host, s, [&](const float* sim, std::int64_t a0, std::int64_t b) {
                                   multi_similarity_pairs(sim, a0, a0 + b, m, group, epsilon_, out);
                                 });
}

}  // namespace contra::plugins
