#pragma once
/// \file
/// The CUDA runtime of contra, implemented in libcontra_cuda (built only when
/// CMake finds CUDA and cuDNN; every `*_cuda` plugin links it). No CUDA
/// header is included here: streams, events and library handles cross this
/// API as opaque `void*` (cudaStream_t, cudaEvent_t, cublasHandle_t,
/// cudnnHandle_t), so a `.cpp` file can include it without the toolkit.
///
/// Threads: everything here is thread-safe. The current stream is per thread;
/// the cuBLAS/cuDNN handles are per stream (per thread for the null stream).
/// One GPU is used: device 0 of those CUDA_VISIBLE_DEVICES shows.
///
/// Errors from CUDA calls are thrown as DeviceError naming the call, the
/// CUDA error name and its message.

#include <contra/errors.hpp>
#include <contra/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace contra::cuda {

/// Probes the driver once per process. False when no device can be used:
/// cudaErrorNoDevice, cudaErrorInsufficientDriver (no driver installed), no
/// device, or a device older than this build's architectures; then
/// unavailable_reason() says which, e.g. "cudaGetDeviceCount:
/// cudaErrorInsufficientDriver (CUDA driver version is insufficient for
/// CUDA runtime version)". Never throws.
bool available() noexcept;
/// Empty when available().
const std::string& unavailable_reason() noexcept;

/// Throws DeviceError("no usable GPU: <reason> (needed by <who>)") unless
/// available(); then selects the device and installs the caching allocator
/// for Device::cuda (contra/device.hpp), so that Tensor::empty(...,
/// Device::cuda) works. Idempotent; cheap after the first call.
void require(const char* who);

/// "NVIDIA H200 (compute capability 9.0, 139 GiB)"; empty when not available().
std::string device_description();

/// The stream this thread's GPU work is issued on (opaque cudaStream_t;
/// nullptr is CUDA's default stream). The runtime sets it on the thread that
/// runs the train step; plugins issue their kernels on it.
void* current_stream() noexcept;
void set_current_stream(void* stream) noexcept;

/// cublasHandle_t of current_stream() (one per stream, created lazily; one
/// per thread for the null stream), bound to that stream and to math_mode()
/// each time it is returned. A stream's work must come from one thread at a
/// time, as the train stage's does.
void* cublas_handle();
/// cudnnHandle_t of current_stream(), kept as cublas_handle()'s.
void* cudnn_handle();

/// Copies `host_src` (Device::cpu) into `dst`, which is ensured as a tensor of
/// the same shape and dtype on Device::cuda (its storage reused when large
/// enough). Asynchronous on `stream` when host_src is page-locked
/// (pinned_host_tensor); otherwise CUDA copies synchronously. host_src must
/// stay unchanged until the stream reaches the copy.
void copy_to_device(Tensor& dst, const Tensor& host_src, void* stream);
/// Copies `dev_src` (Device::cuda) into `host_dst`, ensured on Device::cpu.
/// Asynchronous on `stream`: synchronize(stream) before reading host_dst.
void copy_to_host(Tensor& host_dst, const Tensor& dev_src, void* stream);
/// Device-to-device copy into `dst` (ensured like copy_to_device), on `stream`.
void copy_on_device(Tensor& dst, const Tensor& dev_src, void* stream);
/// Blocks until `stream` has finished its work (nullptr: the default stream).
void synchronize(void* stream);
/// Blocks until the whole device is idle.
void synchronize_device();

/// How matrix products may trade precision for speed. strict_f32: IEEE f32
/// throughout (the default; matches the CPU oracle closely). tf32: cuBLAS may
/// use TF32 tensor cores (10-bit mantissa inputs, f32 accumulation). bf16:
/// kernels that support it may keep activations in bfloat16.
enum class MathMode { strict_f32, tf32, bf16 };
MathMode math_mode() noexcept;
void set_math_mode(MathMode m) noexcept;
const char* math_mode_name(MathMode m) noexcept;

/// A CUDA stream owned by this object (non-blocking with respect to the
/// default stream). Move-only.
class Stream {
 public:
  Stream();  ///< needs available(); throws DeviceError otherwise
  ~Stream();
  Stream(Stream&& o) noexcept : stream_(o.stream_) { o.stream_ = nullptr; }
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void* get() const noexcept { return stream_; }  ///< cudaStream_t

 private:
  void* stream_ = nullptr;
};

/// A CUDA event. With `timing`, elapsed_ms() measures between two of them.
class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(Event&& o) noexcept : event_(o.event_) { o.event_ = nullptr; }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  /// Marks the point `stream` has reached.
  void record(void* stream);
  /// Makes `stream` wait (on the device, not the host) until this event.
  void wait_on(void* stream) const;
  /// Blocks the host until the event has completed.
  void synchronize() const;
  /// True once the event has completed (never blocks).
  bool done() const;
  /// Milliseconds from `start` to this event (both recorded with timing).
  float elapsed_ms_since(const Event& start) const;
  void* get() const noexcept { return event_; }  ///< cudaEvent_t

 private:
  void* event_ = nullptr;
};

/// Statistics of the caching device allocator, in bytes.
struct MemoryStats {
  std::size_t in_use = 0;       ///< handed out to live tensors (rounded sizes)
  std::size_t cached = 0;       ///< freed by tensors, kept for reuse
  std::size_t peak_in_use = 0;  ///< highest in_use since start or reset_peak()
  std::size_t reserved = 0;     ///< in_use + cached: what the device has given
  std::uint64_t allocations = 0;  ///< allocate() calls
  std::uint64_t cache_hits = 0;   ///< of those, served from the cache
};
MemoryStats memory_stats();
void reset_peak_memory();
/// Gives every cached (unused) block back to the device. Synchronises the device.
void empty_cache();

/// Page-locked host memory from a pool reused across batches (cudaHostAlloc):
/// an owning tensor on Device::cpu, so host code fills it as any tensor; the
/// memory returns to the pool when the last tensor sharing it goes, so keep
/// the tensor until the copies reading it have completed (an Event). Copies
/// from it to the device are truly asynchronous.
Tensor pinned_host_tensor(const Shape& shape, DType dtype);
/// Bytes of page-locked memory the pool holds (in use and free).
std::size_t pinned_pool_bytes();

}  // namespace contra::cuda
