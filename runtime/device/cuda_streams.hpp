#pragma once
// Streams and events of a [train] device = "cuda" run, as objects that clean
// up after themselves, and the thread's current stream as a scope. The graph
// orders its stages with these; only runtime/device reaches libcontra_cuda's
// bridge. Each constructor loads libcontra_cuda (cuda_bridge()) and throws
// DeviceError saying why when it cannot; the caller has require()d a GPU.

#include <contra/tensor.hpp>

namespace contra::runtime {

/// A CUDA stream of its own (non-blocking). Destruction waits for the work
/// queued on it, then frees it.
class DeviceStream {
 public:
  DeviceStream();
  ~DeviceStream();
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;
  /// cudaStream_t.
  void* handle() const noexcept { return stream_; }
  /// Blocks until the work queued so far has finished.
  void synchronize() const;

 private:
  void* stream_ = nullptr;
};

/// A CUDA event; with `timing`, one whose timestamps can be compared.
class DeviceEvent {
 public:
  explicit DeviceEvent(bool timing = false);
  ~DeviceEvent();
  DeviceEvent(const DeviceEvent&) = delete;
  DeviceEvent& operator=(const DeviceEvent&) = delete;
  /// cudaEvent_t.
  void* handle() const noexcept { return event_; }
  /// Marks the current end of `stream`'s work.
  void record(void* stream);
  /// Makes `stream` wait (on the device) until this event has happened.
  void make_wait(void* stream) const;
  /// Blocks the host until this event has happened.
  void synchronize() const;
  /// Milliseconds from `start` to `end`, both recorded with timing.
  static double elapsed_ms(const DeviceEvent& start, const DeviceEvent& end);

 private:
  void* event_ = nullptr;
};

/// Makes `stream` the calling thread's current stream (on which device
/// tensors are allocated and device work is queued) for the scope's life,
/// then puts the previous one back. A null stream (a CPU run) does nothing
/// and loads nothing.
class CurrentStream {
 public:
  explicit CurrentStream(const DeviceStream* stream);
  ~CurrentStream();
  CurrentStream(const CurrentStream&) = delete;
  CurrentStream& operator=(const CurrentStream&) = delete;

 private:
  bool active_ = false;
  void* saved_ = nullptr;
};

/// A host tensor in page-locked memory, which the GPU copies from and to
/// asynchronously.
Tensor pinned_host_tensor(const Shape& shape, DType dtype);

}  // namespace contra::runtime
