#pragma once
// How the runtime reaches libcontra_cuda without linking it: it dlopens the
// library only for a pipeline with [train] device = "cuda" and calls through
// this table, exported as the C symbol `contra_cuda_bridge`. A CPU run thus
// never maps cuBLAS and cuDNN (about 0.4 s per process). Internal to contra:
// plugins use contra/cuda.hpp.

#include <contra/cuda.hpp>
#include <contra/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace contra::cuda::detail {

inline constexpr std::uint32_t bridge_version = 3;

struct CudaBridge {
  std::uint32_t version;  ///< bridge_version of the library
  bool (*available)() noexcept;
  const std::string& (*unavailable_reason)() noexcept;
  void (*require)(const char* who);
  std::string (*device_description)();
  void* (*current_stream)() noexcept;
  void (*set_current_stream)(void* stream) noexcept;
  void* (*stream_create)();
  void (*stream_destroy)(void* stream) noexcept;
  void* (*event_create)(bool timing);
  void (*event_destroy)(void* event) noexcept;
  void (*event_record)(void* event, void* stream);
  void (*stream_wait_event)(void* stream, void* event);
  void (*event_synchronize)(void* event);
  float (*event_elapsed_ms)(void* start, void* end);
  void (*copy_to_device)(Tensor& dst, const Tensor& host_src, void* stream);
  void (*copy_to_host)(Tensor& host_dst, const Tensor& dev_src, void* stream);
  void (*synchronize)(void* stream);
  Tensor (*pinned_host_tensor)(const Shape& shape, DType dtype);
  // Version 2: the train step on device tensors (train_kernels.hpp).
  void (*copy_on_device)(Tensor& dst, const Tensor& dev_src, void* stream);
  void (*copy_bytes)(void* dst, const void* src, std::size_t bytes, void* stream);
  std::int64_t (*count_nonfinite)(const void* data, std::int64_t n, void* stream);
  void (*momentum_update)(void* k, const void* q, std::int64_t n, float m, void* stream);
  void (*synchronize_device)();
  // Version 3: [train] precision chooses the process's math mode.
  void (*set_math_mode)(MathMode mode) noexcept;
};

}  // namespace contra::cuda::detail

#define CONTRA_CUDA_BRIDGE_SYMBOL "contra_cuda_bridge"
