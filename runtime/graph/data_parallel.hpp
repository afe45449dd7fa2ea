#pragma once
// A run as one of several data-parallel ranks (docs/distributed.md): which
// communicator the pipeline needs in this process, and the figures of every
// rank that rank 0 records.

#include "config/pipeline_spec.hpp"
#include "distributed/communicator.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace contra::runtime {

/// [distributed] backend resolved for this process: "none", "mpi" or
/// "nccl". "auto" is none unless a launcher started several ranks, then
/// nccl for a cuda pipeline, else mpi.
std::string resolved_backend(const PipelineSpec& spec);

/// What `validate` says of [distributed] on this machine: a backend this
/// build lacks, or several ranks launched with backend "none". ConfigError
/// at the key.
void check_distributed(const PipelineSpec& spec);

/// The communicator a run of `spec` needs in this process: null for one
/// process; else the backend opened (its library loaded, MPI initialised),
/// with [distributed] timeout_s. Throws what check_distributed() does, and
/// DistributedError when the backend cannot start.
Communicator* open_run_communicator(const PipelineSpec& spec);

/// One rank's figures of a run, for the slowest-rank summary.
struct RankFigures {
  std::int64_t rank = 0;
  std::int64_t steps = 0;
  double wall_s = 0, train_busy_s = 0, train_idle_s = 0, load_busy_s = 0, augment_busy_s = 0;
  double collective_s = 0;  ///< inside collectives, waiting for the other ranks included
  /// state_digest() of the rank's training state after its last step: the
  /// same on every rank, or the ranks diverged.
  std::uint64_t state_digest = 0;
  /// Gradient buckets all-reduced, and those started during a backward pass.
  std::int64_t buckets = 0, buckets_overlapped = 0;
};

/// Every rank's figures, in rank order, on every rank (a collective).
std::vector<RankFigures> gather_rank_figures(Communicator& comm, const RankFigures& mine);

}  // namespace contra::runtime
