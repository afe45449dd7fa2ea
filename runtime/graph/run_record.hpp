#pragma once
// A run's record on disk, one folder per run:
//   pipeline.toml      the resolved pipeline (after --set overrides)
//   run.json           contra's git revision and build, SDK version, overrides, start time
//   metrics.jsonl      one JSON object per line: {"type": "step", ...}, {"type": "eval", ...}
//                      or {"type": "eval_error", ...}
//   summary.json       written at the end: steps, throughput, stage times, last figures;
//                      for a run that failed, its "error"
//   checkpoints/       step-<n>.safetensors and `latest` (the newest file's name)
//   embeddings/        test-step-<n>.npy (+ -labels.npy) when [eval] save_embeddings
// Steps are numbered as the console shows them: n is the number of steps
// trained (step-00000234 after the 234th step).
// docs/run-records.md describes every field.

#include "config/pipeline_spec.hpp"
#include "graph/pipeline_run.hpp"
#include "train/json_io.hpp"

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

class RunRecord {
 public:
  /// Create `dir` and write pipeline.toml and run.json; when `resuming`, keep
  /// what is there and append to metrics.jsonl. The folder is locked first
  /// (an advisory lock on RUN/.lock, held until the record is destroyed or
  /// the process ends): a second run on one folder is refused, naming the
  /// process that holds it.
  /// run.json names the data-parallel `backend` and its `ranks`.
  RunRecord(std::filesystem::path dir, const PipelineSpec& spec, const std::vector<std::string>& overrides,
            bool resuming, const std::string& backend = "none", int ranks = 1);
  ~RunRecord();
  RunRecord(const RunRecord&) = delete;
  RunRecord& operator=(const RunRecord&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  void step(const StepReport& r);
  /// Resuming: metrics.jsonl keeps the records of the first `steps` steps
  /// only (those the checkpoint holds); records of later steps, written
  /// before the run stopped, are dropped so that none appears twice.
  void keep_steps_through(std::int64_t steps);
  void eval(std::int64_t step, std::int64_t epoch, const std::vector<std::pair<std::string, double>>& figures);
  void eval_error(std::int64_t step, std::int64_t epoch, const std::string& message);
  std::string checkpoint_path(std::int64_t step) const;
  std::string embeddings_path(std::int64_t step) const;
  /// Point checkpoints/latest at `path` and delete all but the newest `keep`.
  void checkpoint_written(const std::string& path, std::int64_t keep);
  /// summary.json; with a non-empty `error`, of a run that failed with it.
  void summary(const RunSummary& s, const std::string& error = "");
  /// summary.json of a run stopped from outside its stages (the stage
  /// watchdog), which has no figures to give: only the error.
  void stopped(const std::string& error);

  /// `[record] dir`/<pipeline name>-<YYYYmmdd-HHMMSS>, created here (with a
  /// -2, -3, ... suffix when a run started in the same second has it), so
  /// that two runs never pick one folder.
  static std::filesystem::path default_dir(const PipelineSpec& spec);
  /// The newest checkpoint of a run folder; throws ConfigError naming the folder when there is none.
  static std::string latest_checkpoint(const std::filesystem::path& run_dir);

  /// What `contra eval`/`embed` and the Python module's Encoder.load() are
  /// given: a run folder (its latest checkpoint) or a checkpoint file, and
  /// the run folder it belongs to (RUN for RUN/checkpoints/..., a folder
  /// with run.json for itself; empty for a file elsewhere). Throws
  /// ConfigError for a path that is neither a folder nor a file.
  struct CheckpointLocation {
    std::string checkpoint;
    std::filesystem::path run_dir;
  };
  static CheckpointLocation locate_checkpoint(const std::string& path);

 private:
  std::filesystem::path dir_;
  void write_metrics(const json::Json& record);

  int lock_fd_ = -1;  // RUN/.lock, flock()ed for the record's life
  std::FILE* metrics_ = nullptr;
};

/// Appends one line to `run_dir`/evaluations.jsonl (`contra eval` on one of
/// the run's checkpoints): {"checkpoint", "step" (from 1), "pipeline",
/// "overrides", "figures", "time"}.
void append_evaluation(const std::filesystem::path& run_dir, const std::string& checkpoint, const std::string& pipeline,
                       const std::vector<std::string>& overrides, std::int64_t step,
                       const std::vector<std::pair<std::string, double>>& figures);

}  // namespace contra::runtime
