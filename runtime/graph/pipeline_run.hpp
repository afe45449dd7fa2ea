#pragma once
// PipelineSpec -> plugins -> flow graph -> a training run.

#include "config/pipeline_spec.hpp"
#include "graph/executor.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

struct StepReport {
  std::int64_t epoch = 0;
  std::int64_t step = 0;          ///< 0-based global step
  std::int64_t total_steps = 0;
  double loss = 0.0;
  double lr = 0.0;
  double images_per_s = 0.0;      ///< encoder inputs (samples × views) per second, whole run so far
  double elapsed_s = 0.0;
  const std::vector<std::pair<std::string, double>>* metrics = nullptr;
};

struct RunOptions {
  std::function<void(const StepReport&)> on_step;  ///< called from the sink, in step order
};

struct RunSummary {
  std::vector<double> losses;     ///< per step
  std::int64_t steps = 0;
  std::int64_t images = 0;        ///< encoder inputs processed
  double images_per_s = 0.0;
  ExecutorReport telemetry;
  int data_threads = 0, compute_threads = 0;
  std::int64_t skipped_samples = 0;  ///< samples that failed to load, with [data] on_error = "skip"
};

/// Number of steps the pipeline will run.
std::int64_t planned_steps(std::int64_t batches_per_epoch, std::int64_t epochs, std::int64_t max_steps);

/// Run a validated pipeline to the end. Throws contra::Error subclasses with
/// the stage, plugin and pipeline location of whatever failed.
RunSummary run_pipeline(const PipelineSpec& spec, const PluginRegistry& registry, const RunOptions& options);

/// The per-stage table printed at the end of a run.
std::string format_stage_table(const RunSummary& summary);

}  // namespace contra::runtime
