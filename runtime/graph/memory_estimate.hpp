#pragma once
// What a pipeline will have allocated by its first step, estimated from its
// plugins as created and built, before the graph allocates any batch: the
// batches in flight (from the executor's slot pool and the augmentation
// chains' formats), the encoder's, head's and momentum copies' weights and
// gradients, the optimizer's state and the memory's (counted from their
// tensors), the first step's activations (measured on fresh instances) and
// a lower bound for its similarities. check_pipeline() and run_pipeline() refuse a pipeline whose
// estimate exceeds what the machine has (contra::available_memory()), naming
// the largest part, its keys and the figure; `contra validate` prints it.

#include "assembly/pipeline.hpp"

#include <contra/memory_budget.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::runtime {

/// One part of the estimate.
struct MemoryItem {
  std::string what;          ///< "batches in flight", "encoder", "optimizer state", ...
  std::uint64_t bytes = 0;   ///< host memory
  std::string how;           ///< how the figure is made, naming the keys that set it
  bool held = false;         ///< allocated already when estimated (counted from the plugins' tensors)
  bool lower_bound = false;  ///< at least this: the plugins do not report the rest
};

struct MemoryEstimate {
  std::vector<MemoryItem> items;
  /// What the figure leaves out, said after it (a cuda pipeline's device
  /// memory); empty when nothing.
  std::string left_out;

  std::uint64_t total() const;
  /// Of total(), what is allocated already (MemoryItem::held).
  std::uint64_t held() const;
  /// The largest item; null when there is none.
  const MemoryItem* largest() const;
  /// One line: "about 24.3 MiB by the first step: batches in flight
  /// 15.1 MiB, encoder activations ≥ 3.2 MiB, ..." (largest first).
  std::string summary() const;
};

/// The batches in flight, on the host: each of the executor's batch slots
/// ([runtime] prefetch + 2, executor.hpp) holds `batch_samples` decoded
/// source images, two augmentation buffers per sample and view
/// (AugmentChain::scratch_bytes()) and the batch's f32 views.
MemoryEstimate estimate_batches(const Pipeline& p, std::int64_t batch_samples);

/// Adds what the trainer, built (its constructor ran: the encoder and head
/// built, the memory and optimizer configured), holds on the host, counted
/// from the plugins' tensors, and its first step's:
/// - the encoder's (and head's) activations, which the Encoder role does not
///   report: measured on fresh instances made from `registry` (a train-mode
///   forward and backward of 2 and 4 rows, counted by malloc, extrapolated
///   to the batch's rows; the momentum encoder's, forward only, alike);
///   where that cannot be done, a lower bound (the input copy, the outputs
///   and their gradients) that says why;
/// - a lower bound for the miner's and loss's: one M × (M + memory keys)
///   f32 matrix of similarities.
/// A cuda pipeline's device tensors are left out (MemoryEstimate::left_out
/// says so).
void add_trainer_memory(MemoryEstimate& estimate, const Pipeline& p, const PluginRegistry& registry,
                        std::int64_t batch_samples);

/// What the pipeline has to allocate into: available_memory() now, plus what
/// the estimate counts as held already (those tensors are out of
/// MemAvailable by now).
AvailableMemory pipeline_memory_budget(const MemoryEstimate& estimate);

/// Throws ConfigError when the estimate exceeds pipeline_memory_budget():
/// "FILE: the pipeline needs about 1.2 TiB by its first step (batches in
/// flight 1.1 TiB: 6 batch slots ([runtime] prefetch = 4, plus 2) × ...);
/// this machine has 22.4 GiB available (MemAvailable)". Returns the budget.
AvailableMemory require_pipeline_memory(const MemoryEstimate& estimate, const PipelineSpec& spec);

}  // namespace contra::runtime
