#pragma once
/// \file
/// Where tensors on a device other than the CPU get their storage.
///
/// The SDK itself holds no GPU code: `Tensor::empty(shape, dtype,
/// Device::cuda)` asks the allocator installed for Device::cuda, which
/// libcontra_cuda installs when it initialises (`contra::cuda::require()`).
/// Without one, allocating on Device::cuda throws
/// DeviceError("no usable GPU: ...").

#include <contra/tensor.hpp>

#include <cstddef>

namespace contra {

/// Storage for one device. Implementations are thread-safe: tensors are made
/// and released on any thread.
struct DeviceAllocator {
  /// `bytes` of device memory (bytes may be 0); throws DeviceError when out of memory.
  virtual void* allocate(std::size_t bytes) = 0;
  /// Gives back what allocate(bytes) returned.
  virtual void release(void* p, std::size_t bytes) noexcept = 0;
  /// Sets `bytes` bytes at device address `p` to zero (Tensor::zero()),
  /// ordered on the calling thread's current stream.
  virtual void zero(void* p, std::size_t bytes) = 0;
  /// Device-to-device copy of `bytes` bytes (Tensor::clone()), ordered on
  /// the calling thread's current stream.
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual ~DeviceAllocator();
};

/// Installs `a` (not owned; it must outlive every tensor it allocates) as the
/// allocator of device `d`; nullptr uninstalls. Device::cpu always uses the
/// SDK's own aligned host allocator and cannot be replaced.
void set_device_allocator(Device d, DeviceAllocator* a) noexcept;
/// The allocator installed for `d`, or nullptr.
DeviceAllocator* device_allocator(Device d) noexcept;

/// Throws UsageError naming `what` unless `t` lives on the CPU: guards code
/// that reads or writes a tensor's bytes on the host.
void expect_host(const Tensor& t, const char* what);

}  // namespace contra
