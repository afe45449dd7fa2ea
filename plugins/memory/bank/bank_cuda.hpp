#pragma once
/// \file
/// bank on the GPU: the same memory, parameters, state names and checks as
/// the CPU build (bank.hpp, README.md), its slots kept on Device::cuda.

#include "bank.hpp"

#include <contra/schema.hpp>

namespace contra::plugins {

/// The CPU build's memory bank with the slots [dataset_size, D] on the GPU.
/// The initial slots are drawn on the host (the same Rng streams) and copied
/// once at configure(); update() takes device rows and moves the batch's
/// slots with one kernel per round (one warp per sample, in double as on the
/// CPU); view() with `negatives` > 0 gathers the subset, drawn on the host,
/// with one kernel. Everything runs on contra::cuda::current_stream(); the
/// host waits only at configure() and when a pinned staging buffer of the
/// index uploads is still being read. The update count stays on the host.
class MemoryBankCuda final : public MemoryBank {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return MemoryBank::schema(); }
  explicit MemoryBankCuda(const contra::Params& p);
};

}  // namespace contra::plugins
