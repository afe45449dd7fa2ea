#pragma once
// What the GPU layers (contra/cuda/nn.hpp) share: status checks that throw
// DeviceError naming the layer, the call and its status; RAII cuDNN
// descriptors; the current stream and handles; input checks; host-drawn
// parameters copied to the device. Internal to libcontra_cuda.
//
// The layers use cuDNN's legacy (descriptor) API, which cuDNN 9 marks
// deprecated but still ships and supports; the graph API would buy nothing
// for these fixed, standard layers.

#include <contra/cuda.hpp>
#include <contra/errors.hpp>
#include <contra/tensor.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <limits>
#include <string>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace contra::cuda::nn::detail {

[[noreturn]] inline void cuda_failed(const std::string& who, const char* call, cudaError_t e) {
  throw DeviceError(who + ": " + call + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
[[noreturn]] inline void cudnn_failed(const std::string& who, const char* call, cudnnStatus_t s) {
  throw DeviceError(who + ": " + call + " failed: " + cudnnGetErrorString(s));
}
[[noreturn]] inline void cublas_failed(const std::string& who, const char* call, cublasStatus_t s) {
  throw DeviceError(who + ": " + call + " failed: " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
}

}  // namespace contra::cuda::nn::detail

#define NN_CUDA(who, call)                                                     \
  do {                                                                         \
    const cudaError_t nn_status_ = (call);                                     \
    if (nn_status_ != cudaSuccess) ::contra::cuda::nn::detail::cuda_failed(who, #call, nn_status_); \
  } while (0)
#define NN_CUDNN(who, call)                                                    \
  do {                                                                         \
    const cudnnStatus_t nn_status_ = (call);                                   \
    if (nn_status_ != CUDNN_STATUS_SUCCESS) ::contra::cuda::nn::detail::cudnn_failed(who, #call, nn_status_); \
  } while (0)
#define NN_CUBLAS(who, call)                                                   \
  do {                                                                         \
    const cublasStatus_t nn_status_ = (call);                                  \
    if (nn_status_ != CUBLAS_STATUS_SUCCESS) ::contra::cuda::nn::detail::cublas_failed(who, #call, nn_status_); \
  } while (0)

namespace contra::cuda::nn::detail {

inline cudaStream_t stream() { return static_cast<cudaStream_t>(contra::cuda::current_stream()); }
/// This thread's cuDNN handle, bound to the current stream.
inline cudnnHandle_t dnn() { return static_cast<cudnnHandle_t>(contra::cuda::cudnn_handle()); }
/// This thread's cuBLAS handle, bound to the current stream and math mode,
/// with alpha and beta read from host memory.
inline cublasHandle_t blas(const std::string& who) {
  auto h = static_cast<cublasHandle_t>(contra::cuda::cublas_handle());
  NN_CUBLAS(who, cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  return h;
}

/// cuDNN and cuBLAS take int sizes.
inline int as_int(const std::string& who, std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    throw UsageError(who + ": " + what + " = " + std::to_string(v) + " exceeds what cuDNN/cuBLAS take (int)");
  return static_cast<int>(v);
}

/// Throws UsageError unless t is a defined f32 tensor on cuda.
inline void expect_device_f32(const std::string& who, const Tensor& t, const char* what) {
  if (!t.defined() || t.dtype() != DType::f32 || t.device() != Device::cuda)
    throw UsageError(who + ": expected " + what + " as an f32 cuda tensor, got " +
                     (t.defined() ? std::string(dtype_name(t.dtype())) + " " + device_name(t.device()) + " " +
                                        t.shape().str()
                                  : std::string("an undefined tensor")));
}

/// A non-owning view of a device tensor (what backward() needs later): it does
/// not keep the producer's storage shared, so the producer reuses it.
inline Tensor view_of(const Tensor& t) {
  return Tensor::wrap(const_cast<void*>(t.raw()), t.shape(), t.dtype(), t.device());
}

/// Copies a host tensor into a new device tensor (synchronous for pageable
/// host memory, so `host` may go right after).
inline Tensor upload(const Tensor& host) {
  Tensor d;
  contra::cuda::copy_to_device(d, host, contra::cuda::current_stream());
  return d;
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  explicit TensorDesc(const std::string& who) { NN_CUDNN(who, cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  /// n, c, h, w in `format` (CUDNN_TENSOR_NHWC: memory [n, h, w, c]).
  void set(const std::string& who, cudnnTensorFormat_t format, std::int64_t n, std::int64_t c, std::int64_t h,
           std::int64_t w) {
    NN_CUDNN(who, cudnnSetTensor4dDescriptor(d, format, CUDNN_DATA_FLOAT, as_int(who, n, "N"), as_int(who, c, "C"),
                                             as_int(who, h, "H"), as_int(who, w, "W")));
  }
  operator cudnnTensorDescriptor_t() const { return d; }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  explicit FilterDesc(const std::string& who) { NN_CUDNN(who, cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  operator cudnnFilterDescriptor_t() const { return d; }
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  explicit ConvDesc(const std::string& who) { NN_CUDNN(who, cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  operator cudnnConvolutionDescriptor_t() const { return d; }
};

struct PoolDesc {
  cudnnPoolingDescriptor_t d = nullptr;
  explicit PoolDesc(const std::string& who) { NN_CUDNN(who, cudnnCreatePoolingDescriptor(&d)); }
  ~PoolDesc() { cudnnDestroyPoolingDescriptor(d); }
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;
  operator cudnnPoolingDescriptor_t() const { return d; }
};

struct ActDesc {
  cudnnActivationDescriptor_t d = nullptr;
  explicit ActDesc(const std::string& who) { NN_CUDNN(who, cudnnCreateActivationDescriptor(&d)); }
  ~ActDesc() { cudnnDestroyActivationDescriptor(d); }
  ActDesc(const ActDesc&) = delete;
  ActDesc& operator=(const ActDesc&) = delete;
  operator cudnnActivationDescriptor_t() const { return d; }
};

// Kernels of this library (kernels.cu), queued on `s`; counts in elements.
void launch_add(const float* a, const float* b, float* out, std::int64_t n, cudaStream_t s);
/// dx = dy where y > 0, else 0 (ReLU's backward from its output). dx must not alias y or dy.
void launch_relu_backward(const float* y, const float* dy, float* dx, std::int64_t n, cudaStream_t s);
/// Frozen batch norm backward over rows × channels (NHWC or [N, C]):
/// dx = dy·γ/sqrt(var+eps) (when dx), dγ += Σ dy·(x−mean)/sqrt(var+eps), dβ += Σ dy.
void launch_bn_frozen_backward(const float* x, const float* dy, const float* gamma, const float* mean,
                               const float* var, float eps, std::int64_t rows, std::int64_t channels, float* dx,
                               float* dgamma, float* dbeta, cudaStream_t s);
/// Synchronised batch norm's local statistics: sums[c] = Σ x, sums[C + c] = Σ x², in double.
void launch_bn_sums(const float* x, std::int64_t rows, std::int64_t channels, double* sums, cudaStream_t s);
/// dx -= γ/sqrt(var+eps) / count · (Σdy + x̂·Σdy·x̂) with the global batch's sums and count.
void launch_bn_global_terms(const float* x, const float* gamma, const float* mean, const float* var, float eps,
                            const float* sum_dy_xhat, const float* sum_dy, double count, std::int64_t rows,
                            std::int64_t channels, float* dx, cudaStream_t s);

}  // namespace contra::cuda::nn::detail
