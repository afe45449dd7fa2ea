#pragma once
// The stages of a training run as objects, each holding what it needs and
// nothing more; run_pipeline() (pipeline_run.cpp) wires them into the flow
// graph (executor.hpp):
//
//   PlanStage   the sampler's next batch, as sample ids of the [data] view
//   LoadStage   decodes the batch's samples (skipping bad ones when asked)
//   AugmentStage (augment_stage.hpp), DeviceCopyStage (device_copy.hpp)
//   TrainStage  one train step, the sampler's feedback, and between steps
//               the evaluations and checkpoints the pipeline asks for
//   ReportSink  the step's figures to the summary, the record and the caller

#include "assembly/pipeline.hpp"
#include "device/cuda_streams.hpp"
#include "distributed/rank_collectives.hpp"
#include "graph/device_copy.hpp"
#include "graph/evaluation.hpp"
#include "graph/executor.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "graph/source_view.hpp"
#include "train/checkpoint.hpp"
#include "train/lr_schedule.hpp"
#include "train/trainer.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

/// This process's place among data-parallel ranks (one process: rank 0 of 1).
struct RankSlice {
  int rank = 0, ranks = 1;
};

class PlanStage {
 public:
  /// Plans steps `first` .. `total` - 1; stops early once `*stop` is true.
  /// The sampler plans the global batch, as one process would; rank r of R
  /// keeps its slice, samples [N·r/R, N·(r+1)/R) of the N planned.
  PlanStage(Sampler& sampler, std::string sampler_label, const SourceView& data, std::int64_t batches_per_epoch,
            std::int64_t first, std::int64_t total, const std::atomic<bool>* stop, RankSlice slice = {});
  bool operator()(BatchWork& w);

 private:
  Sampler& sampler_;
  std::string label_;
  const SourceView& data_;
  std::int64_t batches_per_epoch_, next_, total_;
  const std::atomic<bool>* stop_;
  RankSlice slice_;
};

class LoadStage {
 public:
  /// With `texts`, each sample's whole record is read (its texts for the
  /// text towers into BatchWork::texts).
  LoadStage(const SourceView& data, std::string source_label, bool texts = false);
  void operator()(BatchWork& w) const;

 private:
  const SourceView& data_;
  std::string label_;
  Shape image_shape_;  // what every decoded sample must be: u8 [H, W, C]
  bool texts_;
};

/// Writes checkpoints into the run folder, each step at most once.
class CheckpointWriter {
 public:
  /// `record` may be null (no run folder): nothing is written.
  /// Each checkpoint records `pipeline_toml` (the resolved pipeline) and must
  /// keep within `bounds`.
  /// `ranks`: the data-parallel ranks training it, kept in each checkpoint.
  CheckpointWriter(RunRecord* record, const TrainerParts& parts, std::string pipeline_name,
                   std::string pipeline_toml, std::int64_t batches_per_epoch, std::int64_t keep, StateBounds bounds,
                   int ranks = 1);
  /// Writes the state after `step` to its file, not yet named by `latest`;
  /// returns the file ("" when nothing was written: no run folder, or that
  /// step's file was written already). Throws DivergedState, naming the
  /// checkpoint `latest` keeps, for a state outside the bounds.
  std::string write(std::int64_t step);
  /// Points `latest` at `path` (written by write()): done once the step's
  /// metrics are recorded, so that a run killed in between resumes from a
  /// step whose records are all there.
  void promote(const std::string& path);
  /// The last checkpoint written ("" when none).
  const std::string& last() const { return last_path_; }

 private:
  RunRecord* record_;
  const TrainerParts& parts_;
  std::string name_, pipeline_toml_;
  std::int64_t batches_per_epoch_, keep_;
  StateBounds bounds_;
  int ranks_;
  std::int64_t last_step_ = -1;
  std::string last_path_;
};

class TrainStage {
 public:
  struct Parts {
    Trainer* trainer = nullptr;
    const TrainerParts* trainer_parts = nullptr;
    Sampler* sampler = nullptr;
    std::string sampler_label;
    const LrSchedule* schedule = nullptr;
    Evaluation* evaluation = nullptr;  ///< null: no [eval]
    CheckpointWriter* checkpoints = nullptr;
    RunRecord* record = nullptr;       ///< null: no run folder
    /// [train] device = "cuda": the step's stream and the copy stage; null on the CPU.
    const DeviceStream* stream = nullptr;
    DeviceCopyStage* to_device = nullptr;
    bool time_device_steps = false;
    std::function<void(std::int64_t step)> on_eval_start;
    /// Data-parallel ranks: the communicator and the step's collectives;
    /// `batch_stats` is installed during each step ([distributed]
    /// sync_batch_norm). Null for one process.
    Communicator* comm = nullptr;
    RankCollectives* collectives = nullptr;
    BatchStatsReducer* batch_stats = nullptr;
    /// Data-parallel ranks stop together: before each step they agree
    /// whether any was asked to stop (`*stop`, the CLI's Ctrl-C); once they
    /// have, `*stopped` is set, which the plan stage watches, and the
    /// batches already planned go through untrained.
    const std::atomic<bool>* stop = nullptr;
    std::atomic<bool>* stopped = nullptr;
  };
  TrainStage(Parts parts, const PipelineSettings& settings, std::int64_t batches_per_epoch, std::int64_t total);
  void operator()(BatchWork& w);
  /// With time_device_steps: per step, seconds on the GPU (waits for it).
  std::vector<double> device_step_seconds() const;

 private:
  // Evaluation after `step` (its checkpoint written first), when due.
  void evaluate_if_due(BatchWork& w);

  Parts p_;
  const PipelineSettings& settings_;
  std::int64_t batches_per_epoch_, total_;
  std::vector<std::pair<std::unique_ptr<DeviceEvent>, std::unique_ptr<DeviceEvent>>> step_events_;
};

class ReportSink {
 public:
  /// Promotes the checkpoint a step wrote (BatchWork::checkpoint) once the
  /// step is recorded.
  ReportSink(RunSummary& summary, RunRecord* record, CheckpointWriter& checkpoints, const RunOptions& options,
             std::int64_t total);
  void operator()(BatchWork& w);
  /// The clock steps are reported on.
  std::chrono::steady_clock::time_point start() const { return t0_; }

 private:
  RunSummary& summary_;
  RunRecord* record_;
  CheckpointWriter& checkpoints_;
  const RunOptions& options_;
  std::int64_t total_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace contra::runtime
