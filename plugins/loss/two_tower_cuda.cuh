#pragma once
/// \file
/// What the cuda builds of the two-tower losses (clip, siglip) share
/// (included by their `*_cuda.cu`): the CPU build's checks of the batch
/// (two_tower::pick_views) for embeddings on cuda, their learnt scalars on the
/// GPU, the two views' normalised rows with the products of a block of
/// cosines and the gradient back through them, the column half of the
/// retrieval tallies, and the per-sample statistics summed and read back once.
///
/// The index bookkeeping is the CPU build's, on the host: pick_views() says
/// which rows are the first view (the image tower's) and which the second;
/// the GPU work addresses them as two contiguous N × D blocks of ẑ.

#include "loss_cuda.cuh"

#include "two_tower.hpp"

#include <contra/cuda.hpp>
#include <contra/pairs_check.hpp>
#include <contra/roles/loss.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

namespace contra::plugins::gpu {
namespace {

/// The CPU build's checks of a two-tower batch (pick_views(), its messages
/// "<who>: ..."), for embeddings that must be an f32 [2N, D] cuda tensor.
/// Nothing on the device is read: pick_views() looks at z's shape and at the
/// host-side fields (sample, views, view_tower, keys, memory) only.
inline two_tower::ViewPair pick_device_views(const char* who, const contra::Embeddings& emb) {
  contra::check_embeddings(who, emb, contra::Device::cuda);
  contra::Embeddings shape_only = emb;
  shape_only.z = contra::Tensor::wrap(const_cast<void*>(emb.z.raw()), emb.z.shape(), emb.z.dtype(), contra::Device::cpu);
  return two_tower::pick_views(who, shape_only);
}

/// A learnable scalar as the CPU build makes it (two_tower::scalar_parameter:
/// [1] f32, grad zero, no decay), its value and grad on cuda. Needs the GPU
/// (contra::cuda::require()); synchronises the current stream once.
inline contra::Parameter device_scalar_parameter(std::string name, double value) {
  const contra::Parameter host = two_tower::scalar_parameter(std::move(name), value);
  contra::Parameter p;
  p.name = host.name;
  p.decay = host.decay;
  void* s = contra::cuda::current_stream();
  contra::cuda::copy_to_device(p.value, host.value, s);
  contra::cuda::copy_to_device(p.grad, host.grad, s);
  contra::cuda::synchronize(s);
  return p;
}

/// The scalars of a step's logits, worked out on the device from the learnt
/// parameters (which the optimizer updates on the stream): nothing is read
/// back before the loss's one synchronisation.
struct LogitScalars {
  float s;       ///< the scale the logits use (f32, as the CPU build's products)
  float bias;    ///< siglip's b (0 for clip)
  double scale;  ///< the scale as the CPU build reports it and differentiates with
  double bias_value;
  int clamped;   ///< clip: exp(t) above max_scale (dL/dt = 0)
};

/// One thread per column j of a block of cosines c (b × n, row-major, rows
/// i0 + r): best[j] = max(best[j], c_rj over the rows other than j's own
/// sample). The column half of two_tower::RetrievalTally.
__global__ void column_best_other_kernel(const float* __restrict__ c, std::int64_t n, std::int64_t i0, std::int64_t b,
                                         float* __restrict__ best) {
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float other = best[j];
    for (std::int64_t r = 0; r < b; ++r)
      if (i0 + r != j) other = fmaxf(other, c[r * n + j]);
    best[j] = other;
  }
}

/// a[k] = value for k < n.
template <class T>
__global__ void fill_kernel(T* __restrict__ a, std::int64_t n, T value) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    a[k] = value;
}

/// Threads per block of the one-thread-per-column (or per-sample) kernels.
constexpr unsigned column_threads = 256;

template <class T>
inline void fill(const char* who, T* a, std::int64_t n, T value, cudaStream_t s) {
  if (n == 0) return;
  fill_kernel<T><<<blocks_for(n, column_threads), column_threads, 0, s>>>(a, n, value);
  CONTRA_CUDA_LAUNCHED(who, fill_kernel);
}

/// The two views' rows at unit length (ẑ, [2N, D] on cuda), dL/dẑ as a loss
/// accumulates it block by block, and dL/dz back through the normalisation:
/// two_tower::NormalisedViews on the GPU. Buffers grow and are reused.
class DeviceViews {
 public:
  /// Normalises every row of z (checked by pick_device_views()) and zeroes dL/dẑ, on stream s.
  void load(const char* who, const two_tower::ViewPair& views, const contra::Tensor& z, cudaStream_t s) {
    views_ = views;
    rows_ = z.dim(0);
    dim_ = z.dim(1);
    zh_ = device_buffer<float>(zhat_, rows_ * dim_);
    nrm_ = device_buffer<float>(norms_, rows_);
    dzh_ = device_buffer<float>(grad_zhat_, rows_ * dim_);
    CONTRA_CUDA_CHECK(who, cudaMemsetAsync(dzh_, 0, sizeof(float) * rows_ * dim_, s));
    normalize_rows(who, z.data<float>(), rows_, dim_, zh_, nrm_, s);
  }

  std::int64_t samples() const noexcept { return views_.samples; }
  const float* first() const noexcept { return zh_ + views_.first * views_.samples * dim_; }
  const float* second() const noexcept { return zh_ + views_.second * views_.samples * dim_; }

  /// c = Â[i0, i0 + b) · B̂ᵀ: b × N, row-major.
  void cosines(const char* who, cublasHandle_t h, std::int64_t i0, std::int64_t b, float* c) const {
    const std::int64_t n = views_.samples;
    gemm(who, h, false, true, b, n, dim_, 1.0f, first() + i0 * dim_, dim_, second(), dim_, 0.0f, c, n);
  }

  /// From g = dL/dC of that block (b × N; the scale of the logits already
  /// applied): dL/dÂ_block += g·B̂ and dL/dB̂ += gᵀ·Â_block.
  void backprop(const char* who, cublasHandle_t h, std::int64_t i0, std::int64_t b, const float* g) {
    const std::int64_t n = views_.samples;
    float* grad_first = dzh_ + views_.first * n * dim_;
    float* grad_second = dzh_ + views_.second * n * dim_;
    gemm(who, h, false, false, b, dim_, n, 1.0f, g, n, second(), dim_, 1.0f, grad_first + i0 * dim_, dim_);
    gemm(who, h, true, false, n, dim_, b, 1.0f, g, n, first() + i0 * dim_, dim_, 1.0f, grad_second, dim_);
  }

  /// dL/dz ([2N, D] f32 on cuda, written over `grad`) from the dL/dẑ added up.
  void backward(const char* who, contra::Tensor& grad, cudaStream_t s) const {
    grad.ensure({rows_, dim_}, contra::DType::f32, contra::Device::cuda);
    normalize_backward(who, zh_, nrm_, dzh_, 1.0f, rows_, dim_, grad.data<float>(), s);
  }

 private:
  two_tower::ViewPair views_;
  std::int64_t rows_ = 0, dim_ = 0;
  contra::Tensor zhat_, norms_, grad_zhat_;
  float* zh_ = nullptr;
  float* nrm_ = nullptr;
  float* dzh_ = nullptr;
};

/// Per-sample statistics [count, N] (doubles on cuda) summed into
/// `count` + `extra` device doubles (the extra ones for the loss's finishing
/// kernel to fill), then, by read_sums(), copied back with one synchronisation.
class StatSums {
 public:
  double* stats(std::int64_t samples, int count) {
    samples_ = samples;
    count_ = count;
    stats_ptr_ = device_buffer<double>(stats_, samples * count);
    return stats_ptr_;
  }
  /// Queues the sums (in a fixed order: reproducible); returns them on the device.
  double* sum(const char* who, int extra, cudaStream_t s) {
    total_ = count_ + extra;
    sums_ptr_ = device_buffer<double>(sums_, total_);
    sum_stats_kernel<<<count_, row_threads, 0, s>>>(stats_ptr_, samples_, sums_ptr_);
    CONTRA_CUDA_LAUNCHED(who, sum_stats_kernel);
    return sums_ptr_;
  }
  /// Copies the `count` + `extra` sums into out and synchronises stream s.
  void read(const char* who, double* out, cudaStream_t s) {
    double* h = static_cast<double*>(host_.ensure(who, sizeof(double) * total_));
    CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(h, sums_ptr_, sizeof(double) * total_, cudaMemcpyDeviceToHost, s));
    CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
    std::copy(h, h + total_, out);
  }

 private:
  std::int64_t samples_ = 0;
  int count_ = 0, total_ = 0;
  contra::Tensor stats_, sums_;
  double* stats_ptr_ = nullptr;
  double* sums_ptr_ = nullptr;
  PinnedBuffer host_;
};

}  // namespace
}  // namespace contra::plugins::gpu
