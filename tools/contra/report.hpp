#pragma once
// contra report: read run folders, group the runs that differ only by seed,
// and write one self-contained HTML page (inline SVG and CSS, no script, no
// network) plus a Markdown table of final figures (see docs/experiments.md).

#include "command_line.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace contra::cli {

/// A figure over steps: one value per step, steps increasing.
struct Curve {
  std::vector<double> step, value;
};

struct StageTime {
  std::string name;
  double calls = NAN, busy_s = NAN, idle_s = NAN;
};

/// What a run folder holds, as far as the report needs it.
struct RunData {
  std::filesystem::path dir;
  std::string pipeline;                ///< run.json "pipeline", or the pipeline file's stem when empty
  std::vector<std::string> overrides;  ///< run.json "overrides"
  std::int64_t seed = -1;              ///< run.json "seed"
  std::string git_revision;
  std::string plugins;                 ///< "encoder mlp, miner all_pairs, ..." from pipeline.toml
  /// pipeline.toml flattened: "loss.temperature" = "0.5", "augment.chain[0].size"
  /// = "28", values as TOML writes them; empty when it cannot be read.
  std::vector<std::pair<std::string, std::string>> resolved;
  bool finished = false;               ///< summary.json exists and names no error
  std::string error;                   ///< summary.json's "error": why the run failed
  std::int64_t steps = 0;
  double final_loss = NAN, images_per_s = NAN, wall_s = NAN;
  std::vector<std::pair<std::string, double>> eval;  ///< summary.json "eval", in file order
  std::vector<StageTime> stages;                     ///< summary.json "stages"
  /// From metrics.jsonl: "loss", "lr" and every key of "metrics" per step;
  /// each eval figure per evaluation. In order of first appearance.
  std::vector<std::pair<std::string, Curve>> step_curves, eval_curves;
  /// From metrics.jsonl's step lines: the epoch and the seconds since the
  /// run started at each step (for charts over epochs or wall time).
  Curve epoch_at, time_at;
  const Curve* step_curve(const std::string& name) const;
  const Curve* eval_curve(const std::string& name) const;
};

/// Read one run folder. Throws contra::DataError naming the file (and line)
/// when run.json is missing or a file is malformed; a missing summary.json
/// or metrics.jsonl only leaves the run unfinished or without curves.
RunData read_run(const std::filesystem::path& dir);

/// The run folders named by the arguments: a run folder (it has run.json)
/// stands for itself; a sweep folder for the runs its sweep.json lists, or
/// else its sub-folders that have a run.json, sorted by name.
std::vector<std::filesystem::path> expand_run_dirs(const std::vector<std::string>& args);

/// Runs that differ only by seed: the same pipeline name and the same
/// overrides once pipeline.seed, runtime.* and record.* (which do not change
/// what is trained) are left out.
struct RunGroup {
  std::string pipeline;
  std::vector<std::string> settings;  ///< the overrides that define the group, in the first run's order
  std::vector<RunData> runs;          ///< in the order given
  std::string label() const;          ///< "<pipeline> key=value ...", every override
  /// What legends and tables call it: the settings that differ between the
  /// groups (differing_settings()), "key=value, ...", values that are paths
  /// cut to their file name; "G<n>" when that is longer than 48 characters;
  /// the pipeline's name when nothing differs. Set by group_runs().
  std::string name;
};
/// Groups the runs, then names the groups (RunGroup::name).
std::vector<RunGroup> group_runs(std::vector<RunData> runs);

/// The resolved settings whose values differ between the groups (each
/// group's first run; absent counts as a value), leaving out what does not
/// change what is trained (pipeline.seed and name, runtime.*, record.*,
/// plugins.*, train.log_every): in pipeline.toml order, with each group's
/// value ("—" where absent).
struct DifferingSetting {
  std::string key;
  std::vector<std::string> values;  ///< per group
};
std::vector<DifferingSetting> differing_settings(const std::vector<RunGroup>& groups);

/// An evaluation figure that describes how it was computed rather than how
/// good the encoder is (linear_probe.iterations and .loss, zero_shot.classes):
/// tabled apart, not charted with the results.
bool is_bookkeeping_figure(const std::string& name);

/// Mean and sample standard deviation (n - 1) of the finite values.
struct Stat {
  double mean = NAN, std = NAN;
  std::size_t n = 0;
};
Stat stat_of(const std::vector<double>& values);
/// "0.5123 ± 0.0100" (n >= 2), "0.5123" (n = 1), "—" (n = 0), with `decimals`.
std::string format_stat(const Stat& s, int decimals = 4);

/// The eval figure names of all groups' finished runs, in order of first appearance.
std::vector<std::string> eval_figure_names(const std::vector<RunGroup>& groups);

/// The table of final figures: a row per group; runs, final loss and each
/// eval figure as mean ± std over the group's finished runs.
std::string markdown_table(const std::vector<RunGroup>& groups);

/// A curve averaged over a group's runs step by step: mean and sample std
/// (0 where fewer than two runs have the step), at most `max_points` points
/// (consecutive steps averaged in equal buckets beyond that).
struct Band {
  std::vector<double> step, mean, std;
};
Band average_curves(const std::vector<const Curve*>& curves, std::size_t max_points = 500);

/// How the page draws per-step curves.
struct ReportOptions {
  /// Curves of per-step figures (loss, mining diagnostics) smoothed by a
  /// centred moving average over this many points; 1 = as recorded.
  int smooth = 1;
  /// The training loss on a logarithmic axis.
  bool log_loss = false;
  /// What the curves are drawn over: "step", "epoch" (fractional: steps
  /// done / steps of the first epoch) or "time" (seconds since the run
  /// started, evaluations included), each run's own mapped from its steps.
  std::string x = "step";
};

/// `step` of `run` on the axis `x` ("step", "epoch", "time"); NaN where the
/// run's records cannot say (no such step lines).
double x_of(const RunData& run, double step, const std::string& x);

/// The whole HTML page.
std::string html_report(const std::vector<RunGroup>& groups, const std::string& title,
                        const ReportOptions& options = {});

/// `contra report RUN_DIR... [--out report.html] [--markdown report.md] [--title TEXT]`.
Command add_report_command(CLI::App& contra);

}  // namespace contra::cli
