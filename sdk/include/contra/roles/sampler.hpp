#pragma once
/// \file
/// Sampler: decides which samples form each batch, before anything is loaded.

#include <contra/roles/miner.hpp>
#include <contra/roles/plugin.hpp>

#include <cstdint>
#include <vector>

namespace contra {

struct SamplerContext {
  std::int64_t dataset_size = 0;
  const std::vector<std::int64_t>* labels = nullptr;  ///< null when the source has none
  std::uint64_t seed = 0;                             ///< the pipeline seed
  /// Steps between planning a batch and training it, at most: plan() for
  /// global step s may use what observe() saw of steps <= s - lag, and
  /// never more recent ones (they may not have run yet).
  std::int64_t lag = 1;
};

class Sampler : public Plugin {
 public:
  /// Called once before the first plan(). Throws ConfigError when the data set
  /// cannot satisfy the sampler (e.g. fewer samples than a batch).
  virtual void configure(const SamplerContext& ctx) = 0;
  /// Number of batches in each epoch.
  virtual std::int64_t batches_per_epoch() const = 0;
  /// Indices of batch `batch` (0-based within `epoch`). A pure function of
  /// (seed, epoch, batch), so that a resumed run sees the same batches.
  /// Called from one thread.
  virtual void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) = 0;

  /// The feedback edge: called from the train stage after each step (global
  /// step `step`, in order) with the batch's embeddings (`batch.ids` set) and
  /// the memory, if any. Runs concurrently with plan(): a sampler that uses it
  /// must lock, and must keep plan() a function of steps <= s - lag only, so
  /// that runs stay reproducible and plan() never waits for training.
  virtual void observe(std::int64_t step, const Embeddings& batch) { (void)step, (void)batch; }
};

}  // namespace contra
