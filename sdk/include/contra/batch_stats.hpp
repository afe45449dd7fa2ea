#pragma once
/// \file
/// Per-channel statistics summed across the data-parallel ranks of a run:
/// what synchronised batch normalisation (SimCLR's "global BN", PyTorch's
/// SyncBatchNorm) needs, so that a train-mode batch norm normalises with the
/// mean and variance of the global batch rather than of each rank's share.
///
/// The runtime installs a reducer on the thread that runs a train step when a
/// run has several ranks and `[distributed] sync_batch_norm` is on; layers
/// ask for it with batch_stats_reducer() (`nn::BatchNorm`,
/// `nn::BatchNormReLU`). With none installed they use their local batch, as
/// in a single process.
///
///   contra::ScopedBatchStatsReducer sync(&reducer);  // this thread, this scope
///   encoder.forward(batch, Mode::train);             // batch norms sum their statistics
///   encoder.backward(dz);                            // and their input gradients' terms

#include <cstddef>

namespace contra {

/// Sums per-channel statistics across the data-parallel ranks of a run, in
/// place: what a layer whose train-mode statistics span the global batch
/// (synchronised batch norm) calls. Every rank calls it the same number of
/// times, in the same order, with the same n; every rank gets the same
/// values back (bit for bit), so that the ranks' running statistics stay
/// equal.
class BatchStatsReducer {
 public:
  virtual ~BatchStatsReducer() = default;
  /// values[i] ← Σ over ranks of values[i], for i < n. Blocks until every
  /// rank has called it.
  virtual void sum(double* values, std::size_t n) = 0;
};

/// The reducer installed on this thread, or null (a single process, or
/// `[distributed] sync_batch_norm` off).
BatchStatsReducer* batch_stats_reducer() noexcept;

/// Installs a reducer on this thread (the train step's) while alive,
/// restoring the previous one after; null installs none.
class ScopedBatchStatsReducer {
 public:
  explicit ScopedBatchStatsReducer(BatchStatsReducer* reducer) noexcept;
  ~ScopedBatchStatsReducer();
  ScopedBatchStatsReducer(const ScopedBatchStatsReducer&) = delete;
  ScopedBatchStatsReducer& operator=(const ScopedBatchStatsReducer&) = delete;

 private:
  BatchStatsReducer* previous_;
};

}  // namespace contra
