#pragma once
// The train step's meeting points (StepCollectives, train/trainer.hpp) for
// data-parallel ranks over a Communicator:
//
// - gather(): the ranks' embeddings (and momentum keys, ids, labels) joined
//   into the global batch in the order one process would have it (view v
//   of global sample s at row v * N + s, the ranks' samples one after the
//   other), so that the miner and the loss compute what one process with the
//   global batch computes, every rank the same;
// - local_gradient(): this rank's rows of the global dL/dz, the exact
//   gradient of the global loss with respect to its embeddings (every rank
//   holds the whole dL/dz, so no communication);
// - reduce_gradients(): the parameters' gradients summed over the ranks
//   (each rank differentiated the one global loss through its own rows;
//   the sum is the gradient of that loss), in buckets, last layers first;
//   without `gather`, each rank's loss is over its own slice and the
//   gradients are averaged (the mean of the ranks' losses, as DDP).
//   Buffers (batch-norm running statistics) are then made rank 0's, as
//   DDP's broadcast_buffers, so every rank holds the state rank 0 saves.
//   With `overlap`, a bucket's all-reduce starts during the backward pass
//   as soon as the layers have said its gradients are done
//   (contra/gradient_ready.hpp).

#include "distributed/communicator.hpp"
#include "train/trainer.hpp"

#include <contra/batch_stats.hpp>
#include <contra/gradient_ready.hpp>

#include <cstdint>
#include <vector>

namespace contra::runtime {

struct DataParallelOptions {
  bool gather = true;                 ///< [distributed] gather
  std::size_t bucket_bytes = 25 << 20;  ///< [distributed] bucket_mb
  bool overlap = true;                ///< [distributed] overlap: reduce buckets during the backward pass
};

class RankCollectives final : public StepCollectives, private GradientReadyHook {
 public:
  /// `buffers`: the encoders' and heads' buffers, made rank 0's every step.
  RankCollectives(Communicator& comm, DataParallelOptions options, std::vector<Tensor*> buffers);
  /// Always the global batch (the memory and the sampler need it); the
  /// miner and the loss see it only with `gather` (global_negatives()).
  const Embeddings& gather(const Embeddings& local) override;
  bool global_negatives() const override { return options_.gather; }
  Tensor local_gradient(const Tensor& global_grad) override;
  GradientReadyHook* backward_hook(const std::vector<Parameter*>& params) override;
  void reduce_gradients(const std::vector<Parameter*>& params) override;
  /// The loss a step reports: the global loss with `gather` (the same on
  /// every rank), else the mean of the ranks' losses.
  double step_loss(double local);
  /// Buckets reduced so far, and how many of them were started during a
  /// backward pass (overlapping it).
  std::int64_t buckets_reduced() const noexcept { return buckets_reduced_; }
  std::int64_t buckets_overlapped() const noexcept { return buckets_overlapped_; }

 private:
  // Buckets of whole parameters in reverse order (the order a backward pass
  // finishes them in), each a range of flat_; launched in bucket order, the
  // same on every rank, once all of its parameters are ready.
  struct Bucket {
    std::vector<Parameter*> params;
    std::size_t offset = 0, count = 0;
    std::size_t waiting = 0;  // parameters not ready yet this step
    std::size_t handle = 0;
    bool started = false;     // a started (host) all-reduce to wait for
  };
  void plan_buckets(const std::vector<Parameter*>& params);
  void ready(Parameter& p) override;
  void launch(Bucket& b);
  void launch_ready_buckets();

  Communicator& comm_;
  DataParallelOptions options_;
  std::vector<Tensor*> buffers_;
  // Per rank: samples, then the global offset of its first sample.
  std::vector<std::int64_t> samples_, offset_;
  std::int64_t views_ = 0, total_ = 0;  // view groups per sample; samples of the global batch
  Tensor staging_z_, staging_keys_;  // every rank's rows, rank after rank
  Tensor z_, keys_, local_grad_;
  std::vector<std::int64_t> sample_, label_, id_;
  Embeddings global_;
  std::vector<Parameter*> planned_for_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<Parameter*, std::size_t>> bucket_of_;  // sorted by parameter
  std::vector<char> is_ready_;                                 // per entry of bucket_of_
  Tensor flat_;         // the gradients of every bucket, where they live
  Tensor buffer_flat_;  // the buffers, broadcast from rank 0
  std::size_t launched_ = 0;  // buckets launched this step, in order
  std::int64_t buckets_reduced_ = 0, buckets_overlapped_ = 0;
};

/// Sums synchronised batch norm's statistics over the ranks (contra/batch_stats.hpp).
class CommBatchStatsReducer final : public BatchStatsReducer {
 public:
  explicit CommBatchStatsReducer(Communicator& comm) : comm_(comm) {}
  void sum(double* values, std::size_t n) override { comm_.all_reduce(values, n, CommType::f64, ReduceOp::sum); }

 private:
  Communicator& comm_;
};

}  // namespace contra::runtime
