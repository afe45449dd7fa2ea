#include "graph/device_copy.hpp"

#include "cuda_bridge.hpp"

#include <cstring>

namespace contra::runtime {

struct DeviceCopyStage::Slot {
  const cuda::detail::CudaBridge* cuda = nullptr;
  void* done = nullptr;                 // end of the copy (ordering)
  void* consumed = nullptr;             // the train stream is done with the device buffers
  bool consumed_recorded = false;
  void* start = nullptr;                // timing only
  void* end = nullptr;                  // timing only
  std::vector<const void*> pinned;      // host address of each image tensor's pinned storage
  ~Slot() {
    for (void* e : {done, consumed, start, end}) cuda->event_destroy(e);
  }
};

DeviceCopyStage::DeviceCopyStage(const cuda::detail::CudaBridge& bridge, bool timing)
    : cuda_(bridge), timing_(timing) {
  stream_ = cuda_.stream_create();
}

DeviceCopyStage::~DeviceCopyStage() {
  try {
    cuda_.synchronize(stream_);
  } catch (...) {
    // A failed device is already reported by whoever saw it first.
  }
  cuda_.stream_destroy(stream_);
}

DeviceCopyStage::Slot& DeviceCopyStage::slot(BatchWork& w) {
  if (!w.device_state) {
    auto s = std::make_shared<Slot>();
    s->cuda = &cuda_;
    s->done = cuda_.event_create(false);
    s->consumed = cuda_.event_create(false);
    if (timing_) {
      s->start = cuda_.event_create(true);
      s->end = cuda_.event_create(true);
    }
    w.device_state = s;
  }
  return *static_cast<Slot*>(w.device_state.get());
}

void DeviceCopyStage::copy_tensor(Slot& s, std::size_t j, Tensor& host, Tensor& device) {
  if (s.pinned.size() <= j) s.pinned.resize(j + 1, nullptr);
  if (host.raw() != s.pinned[j]) {
    // Not (or no longer) in pinned memory: stage it there once; the batch
    // keeps the pinned tensor, which augment's ensure() reuses next time.
    Tensor pinned = cuda_.pinned_host_tensor(host.shape(), host.dtype());
    if (host.nbytes()) std::memcpy(pinned.raw(), host.raw(), host.nbytes());
    host = std::move(pinned);
    s.pinned[j] = host.raw();
    ++staged_;
  }
  cuda_.copy_to_device(device, host, stream_);
}

void DeviceCopyStage::operator()(BatchWork& w) {
  Slot& s = slot(w);
  // Allocations below are keyed by the copy stream in the caching
  // allocator; the thread's own current stream is restored after.
  struct CurrentStream {
    const cuda::detail::CudaBridge& cuda;
    void* saved;
    CurrentStream(const cuda::detail::CudaBridge& c, void* s) : cuda(c), saved(c.current_stream()) {
      cuda.set_current_stream(s);
    }
    ~CurrentStream() { cuda.set_current_stream(saved); }
  } current(cuda_, stream_);
  // The previous batch of this slot may still be read by its step.
  if (s.consumed_recorded) cuda_.stream_wait_event(stream_, s.consumed);
  Batch& d = w.device_batch;
  d.epoch = w.batch.epoch;
  d.step = w.batch.step;
  d.ids = w.batch.ids;
  d.labels = w.batch.labels;
  d.views = w.batch.views;
  if (timing_) cuda_.event_record(s.start, stream_);
  copy_tensor(s, 0, w.batch.images, d.images);
  d.more_images.resize(w.batch.more_images.size());
  for (std::size_t g = 0; g < w.batch.more_images.size(); ++g)
    copy_tensor(s, g + 1, w.batch.more_images[g], d.more_images[g]);
  if (timing_) cuda_.event_record(s.end, stream_);
  cuda_.event_record(s.done, stream_);
}

void DeviceCopyStage::wait(const BatchWork& w, void* stream) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (s) cuda_.stream_wait_event(stream, s->done);
}

void DeviceCopyStage::consumed(const BatchWork& w, void* stream) const {
  auto* s = static_cast<Slot*>(w.device_state.get());
  if (!s) return;
  cuda_.event_record(s->consumed, stream);
  s->consumed_recorded = true;
}

void DeviceCopyStage::release(const BatchWork& w) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (s) cuda_.event_synchronize(s->done);
}

std::pair<void*, void*> DeviceCopyStage::copy_window(const BatchWork& w) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (!s) return {nullptr, nullptr};
  return {s->start, s->end};
}

}  // namespace contra::runtime
