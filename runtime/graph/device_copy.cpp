#include "graph/device_copy.hpp"

#include "device/device_ops.hpp"

#include <cstring>
#include <memory>

namespace contra::runtime {

struct DeviceCopyStage::Slot {
  DeviceEvent done;                     // end of the copy (ordering)
  DeviceEvent consumed;                 // the train stream is done with the device buffers
  bool consumed_recorded = false;
  std::unique_ptr<DeviceEvent> start, end;  // timing only
  std::vector<const void*> pinned;      // host address of each image tensor's pinned storage
};

DeviceCopyStage::DeviceCopyStage(bool timing) : timing_(timing) {}

DeviceCopyStage::Slot& DeviceCopyStage::slot(BatchWork& w) {
  if (!w.device_state) {
    auto s = std::make_shared<Slot>();
    if (timing_) {
      s->start = std::make_unique<DeviceEvent>(true);
      s->end = std::make_unique<DeviceEvent>(true);
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
    Tensor pinned = pinned_host_tensor(host.shape(), host.dtype());
    if (host.nbytes()) std::memcpy(pinned.raw(), host.raw(), host.nbytes());
    host = std::move(pinned);
    s.pinned[j] = host.raw();
    ++staged_;
  }
  device_ops::to_device_async(device, host);  // on the copy stream, current here
}

void DeviceCopyStage::operator()(BatchWork& w) {
  Slot& s = slot(w);
  // Allocations below are keyed by the copy stream in the caching
  // allocator; the thread's own current stream is restored after.
  const CurrentStream current(&stream_);
  // The previous batch of this slot may still be read by its step.
  if (s.consumed_recorded) s.consumed.make_wait(stream_.handle());
  Batch& d = w.device_batch;
  d.epoch = w.batch.epoch;
  d.step = w.batch.step;
  d.ids = w.batch.ids;
  d.labels = w.batch.labels;
  d.views = w.batch.views;
  // Token ids stay on the host: text encoders check them there, and their
  // cuda builds copy them over themselves.
  d.tower_inputs = w.batch.tower_inputs;
  if (timing_) s.start->record(stream_.handle());
  copy_tensor(s, 0, w.batch.images, d.images);
  d.more_images.resize(w.batch.more_images.size());
  for (std::size_t g = 0; g < w.batch.more_images.size(); ++g)
    copy_tensor(s, g + 1, w.batch.more_images[g], d.more_images[g]);
  if (timing_) s.end->record(stream_.handle());
  s.done.record(stream_.handle());
}

void DeviceCopyStage::wait(const BatchWork& w, void* stream) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (s) s->done.make_wait(stream);
}

void DeviceCopyStage::consumed(const BatchWork& w, void* stream) const {
  auto* s = static_cast<Slot*>(w.device_state.get());
  if (!s) return;
  s->consumed.record(stream);
  s->consumed_recorded = true;
}

void DeviceCopyStage::release(const BatchWork& w) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (s) s->done.synchronize();
}

std::pair<void*, void*> DeviceCopyStage::copy_window(const BatchWork& w) const {
  auto* s = static_cast<const Slot*>(w.device_state.get());
  if (!s) return {nullptr, nullptr};
  return {s->start ? s->start->handle() : nullptr, s->end ? s->end->handle() : nullptr};
}

}  // namespace contra::runtime
