// libcontra_cuda: probe, device allocator, streams, events, handles, copies.
#include "caching_allocator.hpp"
#include "cuda_bridge.hpp"
#include "train_kernels.hpp"

#include <contra/cuda.hpp>
#include <contra/device.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#ifndef CONTRA_CUDA_MIN_ARCH
#define CONTRA_CUDA_MIN_ARCH 90
#endif

namespace contra::cuda {

namespace {

[[noreturn]] void fail(const char* call, cudaError_t e) {
  throw DeviceError(std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                    ")");
}

void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail(call, e);
}

void check_cublas(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(std::string(call) + ": " + cublasGetStatusName(s) + " (" +
                      cublasGetStatusString(s) + ")");
}

void check_cudnn(cudnnStatus_t s, const char* call) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw DeviceError(std::string(call) + ": " + cudnnGetErrorString(s));
}

// ---- probe ------------------------------------------------------------------

struct Probe {
  bool ok = false;
  std::string reason;
  std::string description;
};

const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      // cudaErrorNoDevice, and cudaErrorInsufficientDriver where no driver is
      // installed at all, are the usual answers of a machine without a GPU.
      p.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" +
                 cudaGetErrorString(e) + ")";
      cudaGetLastError();
      return p;
    }
    if (count == 0) {
      p.reason = "the CUDA driver reports no device";
      return p;
    }
    cudaDeviceProp prop{};
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
      p.reason = std::string("cudaGetDeviceProperties: ") + cudaGetErrorName(e) + " (" +
                 cudaGetErrorString(e) + ")";
      cudaGetLastError();
      return p;
    }
    int arch = prop.major * 10 + prop.minor;
    std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    if (arch < CONTRA_CUDA_MIN_ARCH) {
      p.reason = std::string("device 0 (") + prop.name + ") has compute capability " + cc +
                 ", this build needs " + std::to_string(CONTRA_CUDA_MIN_ARCH / 10) + "." +
                 std::to_string(CONTRA_CUDA_MIN_ARCH % 10) + " or newer (CMAKE_CUDA_ARCHITECTURES)";
      return p;
    }
    p.ok = true;
    p.description = std::string(prop.name) + " (compute capability " + cc + ", " +
                    std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
    return p;
  }();
  return result;
}

// ---- device allocator -------------------------------------------------------

struct CudaBackend final : detail::AllocatorBackend {
  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    check(e, "cudaMalloc");
    return p;
  }
  void free(void* p) noexcept override { cudaFree(p); }
  void synchronize() override { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
};

struct CudaDeviceAllocator final : DeviceAllocator {
  CudaBackend backend;
  detail::CachingAllocator cache{backend};

  void* allocate(std::size_t bytes) override { return cache.allocate(bytes, current_stream()); }
  void release(void* p, std::size_t) noexcept override { cache.release(p); }
  void zero(void* p, std::size_t bytes) override {
    check(cudaMemsetAsync(p, 0, bytes, static_cast<cudaStream_t>(current_stream())),
          "cudaMemsetAsync");
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                          static_cast<cudaStream_t>(current_stream())),
          "cudaMemcpyAsync(device to device)");
  }
};

// Never destroyed: tensors released during static destruction at exit still
// find it.
CudaDeviceAllocator& device_alloc() {
  static auto* a = new CudaDeviceAllocator;
  return *a;
}

// ---- pinned host pool -------------------------------------------------------

class PinnedPool {
 public:
  std::shared_ptr<void> get(std::size_t bytes, std::size_t& capacity) {
    capacity = detail::CachingAllocator::bin_size(bytes);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(capacity);
      if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
      }
    }
    if (!p) {
      check(cudaHostAlloc(&p, capacity, cudaHostAllocPortable), "cudaHostAlloc");
      total_.fetch_add(capacity);
    }
    std::size_t size = capacity;
    return std::shared_ptr<void>(p, [this, size](void* q) {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.emplace(size, q);
    });
  }
  std::size_t total() const { return total_.load(); }

 private:
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;
  std::atomic<std::size_t> total_{0};
};

PinnedPool& pinned_pool() {
  static auto* p = new PinnedPool;  // never destroyed, like the device allocator
  return *p;
}

// ---- per-thread state -------------------------------------------------------

std::atomic<int> global_math_mode{static_cast<int>(MathMode::strict_f32)};
thread_local void* thread_stream = nullptr;

// What a stream keeps for its serial work: library handles, and the NaN/Inf
// counter of the train step's checks (a device value and its page-locked
// landing slot), made once per stream, not once per thread the step lands on.
struct Handles {
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  unsigned long long* nonfinite_device = nullptr;
  unsigned long long* nonfinite_host = nullptr;
  Handles() = default;
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;
  ~Handles() {
    if (cublas) cublasDestroy(cublas);
    if (cudnn) cudnnDestroy(cudnn);
    if (nonfinite_device) cudaFree(nonfinite_device);
    if (nonfinite_host) cudaFreeHost(nonfinite_host);
  }
};

// Handles are kept per stream: the work of one stream is serial (the train
// stage runs one step at a time), but a TBB stage may run on any worker, and
// per-thread handles would be created again on every worker it lands on, each
// cudnnCreate costing time and device memory mid-run. cuBLAS and cuDNN allow
// a handle to move between threads that do not use it at once. The null
// stream keeps per-thread handles: threads without a stream of their own may
// run at the same time. A stream's handles go when the stream is destroyed.
thread_local Handles null_stream_handles;
std::mutex stream_handles_mutex;
std::unordered_map<void*, std::unique_ptr<Handles>>& stream_handles() {
  static auto* m = new std::unordered_map<void*, std::unique_ptr<Handles>>;  // never destroyed, like the allocator
  return *m;
}

Handles& handles_for(void* stream) {
  if (!stream) return null_stream_handles;
  std::lock_guard<std::mutex> lock(stream_handles_mutex);
  std::unique_ptr<Handles>& h = stream_handles()[stream];
  if (!h) h = std::make_unique<Handles>();
  return *h;
}

// Before a stream is destroyed (its work finished): its handles go with it.
void forget_stream_handles(void* stream) noexcept {
  if (!stream) return;
  std::unique_ptr<Handles> gone;
  {
    std::lock_guard<std::mutex> lock(stream_handles_mutex);
    auto it = stream_handles().find(stream);
    if (it == stream_handles().end()) return;
    gone = std::move(it->second);
    stream_handles().erase(it);
  }
}

// Before a stream is destroyed (its work finished): its handles and the
// device memory cached for it go.
void forget_stream(void* stream) noexcept {
  if (!stream) return;
  forget_stream_handles(stream);
  device_alloc().cache.retire_stream(stream);
}

void require_available(const char* what) {
  if (!available()) throw DeviceError(std::string("no usable GPU: ") + unavailable_reason() +
                                      " (needed by " + what + ")");
}

void expect_device(const Tensor& t, Device d, const char* what) {
  if (t.device() != d)
    throw UsageError(std::string(what) + ": expected a tensor on " + device_name(d) + ", got one on " +
                     device_name(t.device()));
}

}  // namespace

// ---- public API -------------------------------------------------------------

bool available() noexcept {
  try {
    return probe().ok;
  } catch (...) {
    return false;
  }
}

const std::string& unavailable_reason() noexcept { return probe().reason; }

std::string device_description() { return probe().description; }

void require(const char* who) {
  require_available(who);
  static std::once_flag installed;
  std::call_once(installed, [] {
    check(cudaSetDevice(0), "cudaSetDevice(0)");
    set_device_allocator(Device::cuda, &device_alloc());
  });
}

void* current_stream() noexcept { return thread_stream; }
void set_current_stream(void* stream) noexcept { thread_stream = stream; }

void* cublas_handle() {
  Handles& h = handles_for(current_stream());
  if (!h.cublas) {
    require("cublas_handle");
    check_cublas(cublasCreate(&h.cublas), "cublasCreate");
  }
  check_cublas(cublasSetStream(h.cublas, static_cast<cudaStream_t>(current_stream())),
               "cublasSetStream");
  cublasMath_t mode = math_mode() == MathMode::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
  check_cublas(cublasSetMathMode(h.cublas, mode), "cublasSetMathMode");
  return h.cublas;
}

void* cudnn_handle() {
  Handles& h = handles_for(current_stream());
  if (!h.cudnn) {
    require("cudnn_handle");
    check_cudnn(cudnnCreate(&h.cudnn), "cudnnCreate");
  }
  check_cudnn(cudnnSetStream(h.cudnn, static_cast<cudaStream_t>(current_stream())), "cudnnSetStream");
  return h.cudnn;
}

void copy_to_device(Tensor& dst, const Tensor& host_src, void* stream) {
  expect_device(host_src, Device::cpu, "copy_to_device (source)");
  require("copy_to_device");
  dst.ensure(host_src.shape(), host_src.dtype(), Device::cuda);
  if (!host_src.nbytes()) return;
  check(cudaMemcpyAsync(dst.raw(), host_src.raw(), host_src.nbytes(), cudaMemcpyHostToDevice,
                        static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync(host to device)");
}

void copy_to_host(Tensor& host_dst, const Tensor& dev_src, void* stream) {
  expect_device(dev_src, Device::cuda, "copy_to_host (source)");
  host_dst.ensure(dev_src.shape(), dev_src.dtype(), Device::cpu);
  if (!dev_src.nbytes()) return;
  check(cudaMemcpyAsync(host_dst.raw(), dev_src.raw(), dev_src.nbytes(), cudaMemcpyDeviceToHost,
                        static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync(device to host)");
}

void copy_on_device(Tensor& dst, const Tensor& dev_src, void* stream) {
  expect_device(dev_src, Device::cuda, "copy_on_device (source)");
  dst.ensure(dev_src.shape(), dev_src.dtype(), Device::cuda);
  if (!dev_src.nbytes()) return;
  check(cudaMemcpyAsync(dst.raw(), dev_src.raw(), dev_src.nbytes(), cudaMemcpyDeviceToDevice,
                        static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync(device to device)");
}

void synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

void synchronize_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

MathMode math_mode() noexcept { return static_cast<MathMode>(global_math_mode.load()); }
void set_math_mode(MathMode m) noexcept { global_math_mode.store(static_cast<int>(m)); }
const char* math_mode_name(MathMode m) noexcept {
  switch (m) {
    case MathMode::strict_f32: return "strict_f32";
    case MathMode::tf32: return "tf32";
    case MathMode::bf16: return "bf16";
  }
  return "unknown";
}

Stream::Stream() {
  require_available("cuda::Stream");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  stream_ = s;
}

Stream::~Stream() {
  forget_stream(stream_);
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    forget_stream(stream_);
    if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    stream_ = o.stream_;
    o.stream_ = nullptr;
  }
  return *this;
}

Event::Event(bool timing) {
  require_available("cuda::Event");
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming),
        "cudaEventCreateWithFlags");
  event_ = e;
}

Event::~Event() {
  if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    event_ = o.event_;
    o.event_ = nullptr;
  }
  return *this;
}

void Event::record(void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event_), static_cast<cudaStream_t>(stream)),
        "cudaEventRecord");
}

void Event::wait_on(void* stream) const {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event_), 0),
        "cudaStreamWaitEvent");
}

void Event::synchronize() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "cudaEventSynchronize");
}

bool Event::done() const {
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event_));
  if (e == cudaErrorNotReady) return false;
  check(e, "cudaEventQuery");
  return true;
}

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.event_),
                             static_cast<cudaEvent_t>(event_)),
        "cudaEventElapsedTime");
  return ms;
}

MemoryStats memory_stats() { return device_alloc().cache.stats(); }
void reset_peak_memory() { device_alloc().cache.reset_peak(); }
void empty_cache() {
  if (available()) device_alloc().cache.empty_cache();
}

Tensor pinned_host_tensor(const Shape& shape, DType dtype) {
  require_available("pinned_host_tensor");
  std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  std::size_t capacity = 0;
  auto storage = pinned_pool().get(bytes, capacity);
  return Tensor::adopt(std::move(storage), capacity, shape, dtype, Device::cpu);
}

std::size_t pinned_pool_bytes() { return pinned_pool().total(); }

}  // namespace contra::cuda

// ---- the runtime's entry (cuda_bridge.hpp) ------------------------------------

namespace contra::cuda {
namespace {

void* bridge_stream_create() {
  require_available("cuda stream");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return s;
}
void bridge_stream_destroy(void* s) noexcept {
  forget_stream(s);
  if (s) cudaStreamDestroy(static_cast<cudaStream_t>(s));
}
void* bridge_event_create(bool timing) {
  require_available("cuda event");
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming),
        "cudaEventCreateWithFlags");
  return e;
}
void bridge_event_destroy(void* e) noexcept {
  if (e) cudaEventDestroy(static_cast<cudaEvent_t>(e));
}
void bridge_event_record(void* e, void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(stream)), "cudaEventRecord");
}
void bridge_stream_wait_event(void* stream, void* e) {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(e), 0),
        "cudaStreamWaitEvent");
}
void bridge_event_synchronize(void* e) {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(e)), "cudaEventSynchronize");
}
float bridge_event_elapsed_ms(void* start, void* end) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
        "cudaEventElapsedTime");
  return ms;
}

std::int64_t count_nonfinite(const void* data, std::int64_t n, void* stream) {
  if (n <= 0) return 0;
  Handles& h = handles_for(stream);
  if (!h.nonfinite_device)
    check(cudaMalloc(reinterpret_cast<void**>(&h.nonfinite_device), sizeof(unsigned long long)),
          "cudaMalloc(count_nonfinite)");
  if (!h.nonfinite_host)
    check(cudaHostAlloc(reinterpret_cast<void**>(&h.nonfinite_host), sizeof(unsigned long long), cudaHostAllocDefault),
          "cudaHostAlloc(count_nonfinite)");
  return detail::count_nonfinite(data, n, h.nonfinite_device, h.nonfinite_host, stream);
}

const detail::CudaBridge bridge = {
    detail::bridge_version,   &available,           &unavailable_reason,       &require,
    &device_description,      &current_stream,      &set_current_stream,       &bridge_stream_create,
    &bridge_stream_destroy,   &bridge_event_create, &bridge_event_destroy,     &bridge_event_record,
    &bridge_stream_wait_event, &bridge_event_synchronize, &bridge_event_elapsed_ms, &copy_to_device,
    &copy_to_host,            &synchronize,         &pinned_host_tensor,
    &copy_on_device,          &detail::copy_bytes,  &count_nonfinite,         &detail::momentum_update,
    &synchronize_device,      &set_math_mode,
};

}  // namespace
}  // namespace contra::cuda

extern "C" __attribute__((visibility("default"))) const contra::cuda::detail::CudaBridge* contra_cuda_bridge() {
  return &contra::cuda::bridge;
}
