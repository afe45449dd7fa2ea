#pragma once
// The Adam kernel of the cuda builds of adam and adamw (included by their
// `*_cuda.cu`): adam_update.hpp's element update, one element per thread
// iteration of a grid-stride loop, on the current stream.

#include "adam_update.hpp"
#include "optimizer_cuda.cuh"

#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::plugins::gpu {
namespace {

template <adam::Decay kind>
__global__ void adam_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, std::int64_t n, adam::StepScalars s, float decay) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    adam::update<kind>(w, g, m, v, k, s, decay);
}

/// One Adam step of a parameter (value w, gradient g, moments m and v, all on
/// cuda) on stream st.
template <adam::Decay kind>
void adam_step(const char* who, contra::Tensor& w, const contra::Tensor& g, contra::Tensor& m, contra::Tensor& v,
               const adam::StepScalars& s, float decay, cudaStream_t st) {
  const std::int64_t n = w.numel();
  if (n == 0) return;
  adam_kernel<kind><<<update_blocks(n), update_threads, 0, st>>>(w.data<float>(), g.data<float>(), m.data<float>(),
                                                                   v.data<float>(), n, s, decay);
  CONTRA_CUDA_LAUNCHED(who, adam_kernel);
}

}  // namespace
}  // namespace contra::plugins::gpu
