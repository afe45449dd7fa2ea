#pragma once
/// \file
/// What the cuda builds of the plugins share (included by `*_cuda.cu` only):
/// error checks that throw contra::DeviceError, the current stream and its
/// cuBLAS handle, a row-major GEMM honouring contra::cuda::math_mode(),
/// device scratch tensors, and pinned host staging.
///
/// Every kernel and copy runs on contra::cuda::current_stream(), never on the
/// default stream implicitly.

#include <contra/cuda.hpp>
#include <contra/errors.hpp>
#include <contra/tensor.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

namespace contra::plugins::gpu {

[[noreturn]] inline void cuda_failed(const char* who, const char* call, cudaError_t e) {
  throw contra::DeviceError(std::string(who) + ": " + call + " failed: " + cudaGetErrorName(e) + " (" +
                            cudaGetErrorString(e) + ")");
}

[[noreturn]] inline void cublas_failed(const char* who, const char* call, cublasStatus_t s) {
  throw contra::DeviceError(std::string(who) + ": " + call + " failed: " + cublasGetStatusName(s) + " (" +
                            cublasGetStatusString(s) + ")");
}

}  // namespace contra::plugins::gpu

/// Checks a CUDA runtime call; `who` names the plugin in the message.
#define CONTRA_CUDA_CHECK(who, call)                                                  \
  do {                                                                                \
    const cudaError_t contra_cuda_status_ = (call);                                   \
    if (contra_cuda_status_ != cudaSuccess)                                           \
      ::contra::plugins::gpu::cuda_failed(who, #call, contra_cuda_status_);           \
  } while (0)

/// Checks a cuBLAS call.
#define CONTRA_CUBLAS_CHECK(who, call)                                                \
  do {                                                                                \
    const cublasStatus_t contra_cublas_status_ = (call);                              \
    if (contra_cublas_status_ != CUBLAS_STATUS_SUCCESS)                               \
      ::contra::plugins::gpu::cublas_failed(who, #call, contra_cublas_status_);       \
  } while (0)

/// Checks the launch of the kernel just queued (configuration errors; faults
/// inside the kernel surface at the next synchronising call).
#define CONTRA_CUDA_LAUNCHED(who, kernel) \
  ::contra::plugins::gpu::check_launch(who, #kernel)

namespace contra::plugins::gpu {

inline void check_launch(const char* who, const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) cuda_failed(who, (std::string("launch of ") + kernel).c_str(), e);
}

/// The stream the train step runs on.
inline cudaStream_t stream() { return static_cast<cudaStream_t>(contra::cuda::current_stream()); }

/// The calling thread's cuBLAS handle, bound to stream `s`, with alpha and
/// beta read from host memory (the handle is shared with other plugins).
inline cublasHandle_t blas(const char* who, cudaStream_t s) {
  auto h = static_cast<cublasHandle_t>(contra::cuda::cublas_handle());
  CONTRA_CUBLAS_CHECK(who, cublasSetStream(h, s));
  CONTRA_CUBLAS_CHECK(who, cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  return h;
}

/// Compute type of a loss's f32 products for the current math mode: exact
/// f32, or TF32 tensor cores (inputs rounded to 11-bit mantissas, f32
/// accumulation) in the tf32 and bf16 modes. Not bf16: at temperature 0.1 a
/// similarity rounded to bf16's 8 bits (relative 4e-3) moves its logit by up
/// to 0.04, TF32's by 0.005; bf16 precision is for the encoders' products.
/// Inputs and outputs stay f32 in every mode.
inline cublasComputeType_t compute_type() {
  return contra::cuda::math_mode() == contra::cuda::MathMode::strict_f32 ? CUBLAS_COMPUTE_32F
                                                                         : CUBLAS_COMPUTE_32F_FAST_TF32;
}

/// Compute type of a miner's similarities: exact f32 in every math mode.
/// Mining decides by comparing similarities (the hardest negative, the
/// semi-hard band), which rounded inputs reorder; a Gram block (B × B × D) is
/// a small share of a step, and the CPU build decides in f32 too.
inline constexpr cublasComputeType_t selection_compute_type = CUBLAS_COMPUTE_32F;

/// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ, lda/ldb/ldc
/// row strides in elements (as contra::sgemm). cuBLAS is column-major: the
/// row-major C is the column-major Cᵀ = op(B)ᵀ · op(A)ᵀ, so the operands swap.
/// `compute`: compute_type() unless given (miners give selection_compute_type).
inline void gemm(const char* who, cublasHandle_t h, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                 std::int64_t k, float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                 float beta, float* c, std::int64_t ldc, cublasComputeType_t compute = compute_type()) {
  if (m == 0 || n == 0) return;
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  if (m > int_max || n > int_max || k > int_max || lda > int_max || ldb > int_max || ldc > int_max)
    throw contra::UsageError(std::string(who) + ": a matrix product of " + std::to_string(m) + " x " +
                             std::to_string(n) + " x " + std::to_string(k) + " exceeds cuBLAS's int sizes");
  if (k == 0) {  // an empty sum: C = beta · C (cuBLAS refuses leading dimensions of 0)
    cudaStream_t s = nullptr;
    CONTRA_CUBLAS_CHECK(who, cublasGetStream(h, &s));
    if (beta == 0.0f) {  // C is not read, as cuBLAS does not read it with beta = 0
      CONTRA_CUDA_CHECK(who, cudaMemset2DAsync(c, sizeof(float) * ldc, 0, sizeof(float) * n, m, s));
      return;
    }
    const float zero = 0.0f;
    CONTRA_CUBLAS_CHECK(who, cublasSgeam(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), &beta,
                                         c, static_cast<int>(ldc), &zero, c, static_cast<int>(ldc), c,
                                         static_cast<int>(ldc)));
    return;
  }
  CONTRA_CUBLAS_CHECK(who, cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
                                        CUDA_R_32F, static_cast<int>(ldb), a, CUDA_R_32F, static_cast<int>(lda),
                                        &beta, c, CUDA_R_32F, static_cast<int>(ldc), compute, CUBLAS_GEMM_DEFAULT));
}

/// Grows `t` to `n` elements of T on the GPU (storage reused when large
/// enough) and returns its data. Types Tensor has no dtype for (double
/// accumulators, small structs) are stored as bytes.
template <class T>
T* device_buffer(contra::Tensor& t, std::int64_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t> ||
                std::is_same_v<T, std::uint8_t>) {
    t.ensure({n > 0 ? n : 1}, contra::dtype_of<T>(), contra::Device::cuda);
    return t.data<T>();
  } else {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::int64_t bytes = (n > 0 ? n : 1) * static_cast<std::int64_t>(sizeof(T));
    t.ensure({bytes}, contra::DType::u8, contra::Device::cuda);
    return static_cast<T*>(t.raw());
  }
}

/// Pinned host memory, grown on demand, for asynchronous copies. One buffer
/// serves one copy at a time: its owner synchronises the stream before it
/// writes the buffer again (the losses do at the end of every call, when they
/// read the value back).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (data_) cudaFreeHost(data_);  // nothing to report from a destructor
  }
  void* ensure(const char* who, std::size_t bytes) {
    if (bytes <= capacity_) return data_;
    if (data_) CONTRA_CUDA_CHECK(who, cudaFreeHost(data_));
    data_ = nullptr;
    capacity_ = 0;
    CONTRA_CUDA_CHECK(who, cudaMallocHost(&data_, bytes));
    capacity_ = bytes;
    return data_;
  }
  template <class T> T* as() { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

/// Copies `n` host values to the device buffer `dst` (grown as needed) through
/// the pinned `staging` buffer (its own, see PinnedBuffer), on stream `s`.
template <class T>
T* upload(const char* who, contra::Tensor& dst, PinnedBuffer& staging, const T* src, std::int64_t n, cudaStream_t s) {
  T* d = device_buffer<T>(dst, n);
  if (n == 0) return d;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
  void* h = staging.ensure(who, bytes);
  std::memcpy(h, src, bytes);
  CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, s));
  return d;
}

/// Blocks of `threads` covering `n` items, at most `cap` (grid-stride loops cover the rest).
inline unsigned blocks_for(std::int64_t n, unsigned threads, std::int64_t cap = 65535) {
  std::int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

}  // namespace contra::plugins::gpu
