#include "hcl_cuda.hpp"

#include "../debiased_hcl_cuda.cuh"

namespace contra::plugins {

struct HclCudaState : gpu::DebiasedCore {};

HclCuda::HclCuda(const contra::Params& p)
    : temperature_(p.get<double>("temperature")),
      tau_plus_(p.get<double>("tau_plus")),
      beta_(p.get<double>("beta")),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<HclCudaState>()) {}

HclCuda::~HclCuda() = default;

void HclCuda::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  state_->compute("hcl", "hcl (cuda)", temperature_, tau_plus_, beta_, chunk_, true, z, pairs, out);
}

}  // namespace contra::plugins
