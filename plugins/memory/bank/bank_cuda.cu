#include "bank_cuda.hpp"

#include "../../cuda_support.cuh"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "bank (cuda)";
// Norms below this are clamped, as torch.nn.functional.normalize does (and the CPU build).
constexpr double norm_eps = 1e-12;
constexpr unsigned warp_threads = 256, rows_per_block = warp_threads / 32;

__device__ double warp_sum(double x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// One warp per listed row j: i = index[j] (a row of view 0), slot id = index[count + j].
// w [count, views] is scratch for the views' weights 1 / (|x_v| V).
__global__ void move_slots_kernel(const float* __restrict__ src, const std::int64_t* __restrict__ index,
                                  std::int64_t count, std::int64_t n, std::int64_t views, std::int64_t dim,
                                  float* __restrict__ keys, double m, double* __restrict__ w) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (j >= count) return;
  const std::int64_t i = index[j];
  float* slot = keys + index[count + j] * dim;
  double* wj = w + j * views;
  for (std::int64_t v = 0; v < views; ++v) {
    const float* x = src + (v * n + i) * dim;
    double ss = 0.0;
    for (std::int64_t c = lane; c < dim; c += 32) ss += double(x[c]) * x[c];
    ss = warp_sum(ss);
    if (lane == 0) wj[v] = 1.0 / (fmax(sqrt(ss), norm_eps) * static_cast<double>(views));
  }
  __syncwarp();
  // y = m slot + (1 - m) z^, z^ = sum_v x_v w_v: its norm first, then the slot.
  double ss = 0.0;
  for (std::int64_t c = lane; c < dim; c += 32) {
    double z = 0.0;
    for (std::int64_t v = 0; v < views; ++v) z += src[(v * n + i) * dim + c] * wj[v];
    const double y = m * slot[c] + (1.0 - m) * z;
    ss += y * y;
  }
  const double inv = 1.0 / fmax(sqrt(warp_sum(ss)), norm_eps);
  for (std::int64_t c = lane; c < dim; c += 32) {
    double z = 0.0;
    for (std::int64_t v = 0; v < views; ++v) z += src[(v * n + i) * dim + c] * wj[v];
    const double y = m * slot[c] + (1.0 - m) * z;
    slot[c] = static_cast<float>(y * inv);
  }
}

// out[j] = keys[slots[j]], [k, dim].
__global__ void gather_kernel(const float* __restrict__ keys, const std::int64_t* __restrict__ slots, std::int64_t k,
                              std::int64_t dim, float* __restrict__ out) {
  const std::int64_t total = k * dim;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e / dim;
    out[e] = keys[slots[j] * dim + (e - j * dim)];
  }
}

// Pinned buffers for the small index uploads, used in turn. A buffer is
// rewritten only once the copy that read it has completed (an event): when
// the oldest is still being read another is added, up to max_buffers, and
// only then does the host wait.
class Staging {
 public:
  Staging() = default;
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ~Staging() {
    for (auto& b : buffers_)
      if (b->copied) {
        cudaEventSynchronize(b->copied);  // nothing to report from a destructor
        cudaEventDestroy(b->copied);
      }
  }

  // gpu::upload through the next free buffer.
  std::int64_t* upload(contra::Tensor& dst, const std::int64_t* src, std::int64_t n, cudaStream_t s) {
    Buffer& b = acquire();
    std::int64_t* d = gpu::upload(who, dst, b.pinned, src, n, s);
    CONTRA_CUDA_CHECK(who, cudaEventRecord(b.copied, s));
    return d;
  }

 private:
  static constexpr std::size_t max_buffers = 4;
  struct Buffer {
    gpu::PinnedBuffer pinned;
    cudaEvent_t copied = nullptr;
  };

  Buffer& acquire() {
    if (!buffers_.empty()) {
      Buffer& oldest = *buffers_[next_];
      const cudaError_t e = cudaEventQuery(oldest.copied);
      if (e != cudaSuccess && e != cudaErrorNotReady) gpu::cuda_failed(who, "cudaEventQuery(copied)", e);
      if (e == cudaSuccess || buffers_.size() == max_buffers) {
        if (e != cudaSuccess) CONTRA_CUDA_CHECK(who, cudaEventSynchronize(oldest.copied));
        next_ = (next_ + 1) % buffers_.size();
        return oldest;
      }
    }
    // A new buffer, placed just before the oldest: the newest in turn.
    auto b = std::make_unique<Buffer>();
    CONTRA_CUDA_CHECK(who, cudaEventCreateWithFlags(&b->copied, cudaEventDisableTiming));
    const auto at = static_cast<std::ptrdiff_t>(next_);
    buffers_.insert(buffers_.begin() + at, std::move(b));
    Buffer& fresh = *buffers_[next_];
    next_ = (next_ + 1) % buffers_.size();
    return fresh;
  }

  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::size_t next_ = 0;  // the oldest buffer
};

class CudaBankKernels final : public BankKernels {
 public:
  void place(const contra::Tensor& host_slots, contra::Tensor& keys) override {
    const cudaStream_t s = gpu::stream();
    keys = contra::Tensor::empty(host_slots.shape(), contra::DType::f32, contra::Device::cuda);
    const auto bytes = static_cast<std::size_t>(host_slots.numel()) * sizeof(float);
    if (bytes == 0) return;
    gpu::PinnedBuffer staging;
    std::memcpy(staging.ensure(who, bytes), host_slots.raw(), bytes);
    CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(keys.raw(), staging.as<void>(), bytes, cudaMemcpyHostToDevice, s));
    // Once, at configure(): the staging copy is freed on return.
    CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
  }

  void move_slots(const contra::Tensor& src, const std::vector<std::int64_t>& rows, std::int64_t n,
                  std::int64_t views, const std::vector<std::int64_t>& ids, contra::Tensor& keys,
                  double momentum) override {
    const auto count = static_cast<std::int64_t>(rows.size());
    if (count == 0) return;
    const cudaStream_t s = gpu::stream();
    index_host_.assign(rows.begin(), rows.end());
    index_host_.insert(index_host_.end(), ids.begin(), ids.end());
    const std::int64_t* index = staging_.upload(index_, index_host_.data(), 2 * count, s);
    double* w = gpu::device_buffer<double>(weights_, count * views);
    move_slots_kernel<<<gpu::blocks_for(count, rows_per_block, 0x7fffffff), warp_threads, 0, s>>>(
        src.data<float>(), index, count, n, views, keys.dim(1), keys.data<float>(), momentum, w);
    CONTRA_CUDA_LAUNCHED(who, move_slots_kernel);
  }

  void gather(const contra::Tensor& keys, const std::vector<std::int64_t>& slots, contra::Tensor& out) override {
    const auto k = static_cast<std::int64_t>(slots.size());
    const std::int64_t dim = keys.dim(1);
    out.ensure({k, dim}, contra::DType::f32, contra::Device::cuda);
    if (k == 0) return;
    const cudaStream_t s = gpu::stream();
    // The subset changes only at update(): its indices are uploaded once.
    if (slots != slots_uploaded_) {
      staging_.upload(slots_, slots.data(), k, s);
      slots_uploaded_ = slots;
    }
    constexpr unsigned threads = 256;
    gather_kernel<<<gpu::blocks_for(k * dim, threads), threads, 0, s>>>(keys.data<float>(),
                                                                       slots_.data<std::int64_t>(), k, dim,
                                                                       out.data<float>());
    CONTRA_CUDA_LAUNCHED(who, gather_kernel);
  }

 private:
  Staging staging_;
  std::vector<std::int64_t> index_host_;      // a round's rows, then its ids
  contra::Tensor index_, weights_, slots_;    // on the device
  std::vector<std::int64_t> slots_uploaded_;  // what slots_ holds
};

}  // namespace

MemoryBankCuda::MemoryBankCuda(const contra::Params& p)
    : MemoryBank(p, contra::Device::cuda, std::make_unique<CudaBankKernels>()) {}

}  // namespace contra::plugins
