#pragma once
// The to_device stage of a [train] device = "cuda" run (executor.hpp): copies
// each batch's images to the GPU on a stream of its own, so that the copy of
// batch k+1 overlaps step k on the GPU.
//
// Per BatchWork slot it keeps device buffers (BatchWork::device_batch) and an
// event marking the end of the slot's copy. The first time, a batch's host
// images are copied into page-locked (pinned) memory, which then becomes the
// batch's image tensor: the augment stage's ensure() keeps reusing it, so from
// the second round on augmentation writes straight into pinned memory and the
// copy to the device is asynchronous with no extra host copy.
//
// Ordering, all by events:
//   - the train stage calls wait() before using device_batch: its stream
//     waits for the copy on the GPU (the host does not block);
//   - after the step is queued, consumed() marks the point of the train
//     stream after which the slot's device buffers are free: the slot's next
//     copy waits for it on the GPU (the step's backward pass may still read
//     the images when the host moves on);
//   - release(), also after the step, has the host wait for the copy
//     (normally long done) before the slot's pinned images are refilled.
// Device buffers are allocated with the copy stream current, so the caching
// allocator reuses them only in the copy stream's order.

#include "device/cuda_streams.hpp"
#include "graph/executor.hpp"

#include <cstdint>
#include <vector>

namespace contra::runtime {

class DeviceCopyStage {
 public:
  /// For a run that require()d a GPU. `timing`: also record timed events
  /// around each copy (copy_window()).
  explicit DeviceCopyStage(bool timing = false);
  /// The stream waits for copies in flight as it goes. The per-slot events
  /// go with the BatchWork slots (device_state).
  ~DeviceCopyStage() = default;
  DeviceCopyStage(const DeviceCopyStage&) = delete;
  DeviceCopyStage& operator=(const DeviceCopyStage&) = delete;

  /// The to_device stage: fills w.device_batch and starts its copy.
  void operator()(BatchWork& w);
  /// Makes `stream` (the train step's) wait for w's copy, on the device.
  void wait(const BatchWork& w, void* stream) const;
  /// After the step on `stream` that used w.device_batch was queued: the
  /// slot's next copy waits (on the GPU) until `stream` gets past this point.
  void consumed(const BatchWork& w, void* stream) const;
  /// Blocks until w's copy has finished.
  void release(const BatchWork& w) const;
  /// The copy stream (cudaStream_t).
  void* stream() const noexcept { return stream_.handle(); }

  /// With `timing`: the start and end events of w's last copy (cudaEvent_t),
  /// for cuda event timestamps; nullptrs otherwise.
  std::pair<void*, void*> copy_window(const BatchWork& w) const;
  /// Batches whose images were copied into pinned memory on the host first
  /// (the first use of each slot, or after the augment stage reallocated).
  std::int64_t staged_copies() const noexcept { return staged_; }

 private:
  struct Slot;
  Slot& slot(BatchWork& w);
  void copy_tensor(Slot& s, std::size_t j, Tensor& host, Tensor& device);

  bool timing_;
  DeviceStream stream_;
  std::int64_t staged_ = 0;
};

}  // namespace contra::runtime
