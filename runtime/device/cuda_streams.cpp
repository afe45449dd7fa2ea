#include "device/cuda_streams.hpp"

#include "cuda_bridge.hpp"
#include "device/cuda_library.hpp"

#include <contra/errors.hpp>

namespace contra::runtime {

namespace {
const cuda::detail::CudaBridge& cuda() { return require_cuda_bridge("CUDA streams"); }
}  // namespace

DeviceStream::DeviceStream() : stream_(cuda().stream_create()) {}

DeviceStream::~DeviceStream() {
  try {
    cuda().synchronize(stream_);
  } catch (...) {
    // A failed device is reported by whoever saw it first.
  }
  cuda().stream_destroy(stream_);
}

void DeviceStream::synchronize() const { cuda().synchronize(stream_); }

DeviceEvent::DeviceEvent(bool timing) : event_(cuda().event_create(timing)) {}

DeviceEvent::~DeviceEvent() { cuda().event_destroy(event_); }

void DeviceEvent::record(void* stream) { cuda().event_record(event_, stream); }

void DeviceEvent::make_wait(void* stream) const { cuda().stream_wait_event(stream, event_); }

void DeviceEvent::synchronize() const { cuda().event_synchronize(event_); }

double DeviceEvent::elapsed_ms(const DeviceEvent& start, const DeviceEvent& end) {
  return cuda().event_elapsed_ms(start.event_, end.event_);
}

CurrentStream::CurrentStream(const DeviceStream* stream) {
  if (!stream) return;
  const auto& c = cuda();
  saved_ = c.current_stream();
  c.set_current_stream(stream->handle());
  active_ = true;
}

CurrentStream::~CurrentStream() {
  if (active_) cuda().set_current_stream(saved_);
}

Tensor pinned_host_tensor(const Shape& shape, DType dtype) { return cuda().pinned_host_tensor(shape, dtype); }

}  // namespace contra::runtime
