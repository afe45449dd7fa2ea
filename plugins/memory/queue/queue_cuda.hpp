#pragma once
/// \file
/// queue on the GPU: the same memory, parameters, state names and checks as
/// the CPU build (queue.hpp, README.md), its keys kept on Device::cuda.

#include "queue.hpp"

#include <contra/schema.hpp>

namespace contra::plugins {

/// The CPU build's ring buffer with the keys [K, D] on the GPU: update()
/// takes device rows and writes them, normalised, into their slots with one
/// kernel on contra::cuda::current_stream() (no synchronisation); ids, labels
/// and the pointer stay on the host, where the miners and losses read them.
/// view().keys is the device tensor, which the cuda builds of the losses read
/// in place.
class QueueMemoryCuda final : public QueueMemory {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return QueueMemory::schema(); }
  explicit QueueMemoryCuda(const contra::Params& p);
};

}  // namespace contra::plugins
