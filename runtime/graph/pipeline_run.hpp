#pragma once
// PipelineSpec -> plugins -> flow graph -> a training run.

#include "config/pipeline_spec.hpp"
#include "distributed/communicator.hpp"
#include "graph/data_parallel.hpp"
#include "graph/executor.hpp"
#include "graph/memory_estimate.hpp"

#include <contra/roles/encoder.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

struct StepReport {
  std::int64_t epoch = 0;
  std::int64_t step = 0;          ///< 0-based global step
  std::int64_t first_step = 0;    ///< the first step this run trained (after a checkpoint when resumed)
  std::int64_t total_steps = 0;
  double loss = 0.0;
  double lr = 0.0;
  double images_per_s = 0.0;      ///< encoder inputs (samples × views) per second of training so far
  double elapsed_s = 0.0;         ///< since the run started, evaluations included
  double eval_s = 0.0;            ///< of elapsed_s, spent evaluating
  const std::vector<std::pair<std::string, double>>* metrics = nullptr;
};

struct RunOptions {
  std::function<void(const StepReport&)> on_step;  ///< called from the sink, in step order
  /// Record the run in this folder (see run_record.hpp); empty = no record.
  std::string run_dir;
  std::vector<std::string> overrides;  ///< the --set overrides, for the record
  /// Continue from this checkpoint (its run folder is `run_dir`).
  std::string resume_from;
  /// Continue from `run_dir`'s checkpoints/latest, read once the folder is
  /// locked (instead of naming resume_from).
  bool resume_latest = false;
  /// When it becomes true, no new batch is planned; the run ends after the
  /// batches in flight, with a final checkpoint (Ctrl-C in the CLI).
  const std::atomic<bool>* stop = nullptr;
  /// Called after each evaluation with its figures.
  std::function<void(std::int64_t step, const std::vector<std::pair<std::string, double>>&)> on_eval;
  /// Called from the train stage when an evaluation starts.
  std::function<void(std::int64_t step)> on_eval_start;
  /// Called when an evaluation failed (the run goes on without evaluating).
  std::function<void(std::int64_t step, const std::string& message)> on_eval_error;
  /// [train] device = "cuda": record timed CUDA events around each step on
  /// the train stream (RunSummary::device_step_s). Off by default.
  bool time_device_steps = false;
  /// This process as one of several data-parallel ranks
  /// (open_run_communicator()); null = one process. Rank 0 alone records
  /// the run (run_dir) and evaluates; with resume_latest every rank gets the
  /// same run_dir, and rank 0 says which checkpoint they all load.
  Communicator* communicator = nullptr;
};

struct RunSummary {
  std::vector<double> losses;     ///< per step
  std::int64_t steps = 0;
  std::int64_t images = 0;        ///< encoder inputs processed
  double images_per_s = 0.0;      ///< per second of wall time not spent evaluating
  double eval_s = 0.0;            ///< seconds spent evaluating (inside the train stage)
  ExecutorReport telemetry;       ///< the train stage's busy time excludes evaluation
  int data_threads = 0, compute_threads = 0;
  std::int64_t skipped_samples = 0;  ///< samples that failed to load, with [data] on_error = "skip"
  std::int64_t skipped_distinct = 0; ///< distinct samples among them (one failing every epoch counts once)
  std::int64_t first_step = 0;       ///< 0, or the step after the checkpoint resumed from
  std::vector<std::pair<std::string, double>> eval;  ///< the last evaluation's figures
  std::string checkpoint;            ///< the last checkpoint written, if any
  std::string eval_error;            ///< why an evaluation failed, if one did
  /// --resume of a run that had trained all its planned steps: nothing ran
  /// and its records were left as they were.
  bool already_finished = false;
  /// With RunOptions::time_device_steps: per step, seconds from the train
  /// stream reaching the step's first work to it finishing the step's last
  /// (the GPU's span of the step, idle gaps inside it included).
  std::vector<double> device_step_s;
  /// With RunOptions::time_device_steps: seconds from the run's start (the
  /// clock of StepReport::elapsed_s) to the GPU finishing the last step.
  double device_done_s = 0.0;
  /// Data-parallel runs: the backend, the ranks, and (on rank 0) every
  /// rank's figures in rank order.
  std::string backend = "none";
  int ranks = 1;
  std::vector<RankFigures> rank_figures;
  /// Whether every rank ended holding the same state (RankFigures::state_digest).
  bool ranks_agree = true;
};

/// Number of steps the pipeline will run.
std::int64_t planned_steps(std::int64_t batches_per_epoch, std::int64_t epochs, std::int64_t max_steps);

/// What `contra validate` runs: the pipeline assembled (every plugin
/// created), its [data] view made, the sampler configured, the trainer built
/// (encoder and head for the views' images, memory, optimizer; on the CPU),
/// [eval] checked: the steps a run takes before its first batch. Throws
/// what run_pipeline() would, a pipeline whose memory estimate exceeds what
/// the machine has (memory_estimate.hpp) included. Returns the estimate.
MemoryEstimate check_pipeline(const PipelineSpec& spec, const PluginRegistry& registry);

/// Run a validated pipeline to the end. Throws contra::Error subclasses with
/// the stage, plugin and pipeline location of whatever failed.
RunSummary run_pipeline(const PipelineSpec& spec, const PluginRegistry& registry, const RunOptions& options);

/// The pipeline's encoder, built for its input and loaded with `encoder.*`
/// of `checkpoint`; `step` is the 0-based index of the step it follows.
struct CheckpointEncoder {
  std::shared_ptr<Encoder> encoder;
  std::int64_t step = 0;
  Shape input;  ///< what it was built for: one sample's input
};
CheckpointEncoder load_checkpoint_encoder(const PipelineSpec& spec, const PluginRegistry& registry,
                                          const std::string& checkpoint);

/// [eval] run on the encoder saved in `checkpoint`; with a non-empty
/// `embeddings_path`, the test split's features are written there too.
struct CheckpointEvaluation {
  std::int64_t step = 0;  ///< of the checkpoint, 0-based
  std::vector<std::pair<std::string, double>> figures;
};
CheckpointEvaluation evaluate_checkpoint(const PipelineSpec& spec, const PluginRegistry& registry,
                                         const std::string& checkpoint, const std::string& embeddings_path = "");

/// The per-stage table printed at the end of a run.
std::string format_stage_table(const RunSummary& summary);

}  // namespace contra::runtime
