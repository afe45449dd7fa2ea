#include "debiased_cuda.hpp"

#include "../debiased_hcl_cuda.cuh"

namespace contra::plugins {

struct DebiasedCudaState : gpu::DebiasedCore {};

DebiasedCuda::DebiasedCuda(const contra::Params& p)
    : temperature_(p.get<double>("temperature")),
      tau_plus_(p.get<double>("tau_plus")),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<DebiasedCudaState>()) {}

DebiasedCuda::~DebiasedCuda() = default;

void DebiasedCuda::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  state_->compute("debiased", "debiased (cuda)", temperature_, tau_plus_, 0.0, chunk_, false, z, pairs, out);
}

}  // namespace contra::plugins
