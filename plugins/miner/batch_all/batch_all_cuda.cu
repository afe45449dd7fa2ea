#include "batch_all_cuda.hpp"

#include "../miner_cuda.cuh"

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {
constexpr const char* who = "batch_all (cuda)";
}  // namespace

struct BatchAllCudaState {
  miner_gpu::PreparedRows rows;
  contra::Tensor gram;
  gpu::PinnedBuffer block_host;
  TripletLister lister;
};

BatchAllCuda::BatchAllCuda(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      margin_(p.get<double>("margin")),
      only_violating_(p.get<bool>("only_violating")),
      use_labels_(p.get<bool>("use_labels")),
      state_(std::make_unique<BatchAllCudaState>()) {}

BatchAllCuda::~BatchAllCuda() = default;

void BatchAllCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group =
      miner_detail::row_groups(e, use_labels_, "batch_all", contra::Device::cuda);
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  BatchAllCudaState& st = *state_;
  if (!only_violating_) {
    st.lister.list(group, m, 0, m, nullptr, margin_, out);
    return;
  }
  const cudaStream_t s = gpu::stream();
  st.rows.compute(who, e.z.data<float>(), m, d, cosine_, s);
  miner_gpu::for_each_host_block(who, st.rows, m, d, miner_gpu::BlockValues::distances, cosine_, st.gram,
                                 st.block_host, s, [&](const float* dist, std::int64_t a0, std::int64_t b) {
                                   st.lister.list(group, m, a0, a0 + b, dist, margin_, out);
                                 });
}

}  // namespace contra::plugins
