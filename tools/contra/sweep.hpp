#pragma once
// contra sweep: run a pipeline over a grid of --set overrides and seeds, one
// run folder per combination (see docs/experiments.md).

#include "command_line.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::cli {

/// One --grid option: a dotted key and the values it takes, each TOML text as
/// --set reads it ("0.1", "true", "\"x\"", "[0.5, 1.0]").
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

/// One combination of a sweep.
struct SweepRun {
  /// key=value for each axis, in axis order, then pipeline.seed=<base + seed_index>
  /// when the sweep has a seed axis.
  std::vector<std::string> overrides;
  std::vector<std::pair<std::string, std::string>> point;  ///< (key, value) per axis
  std::int64_t seed_index = -1;  ///< 0..seeds-1, or -1 without a seed axis
  std::int64_t seed = -1;        ///< the pipeline.seed it runs with, or -1 without a seed axis
};

/// Split a --grid value list at the commas that are outside [], {} and
/// quotes, so that "[0.5,1.0],[0.2,1.0]" is two values. Elements are trimmed.
std::vector<std::string> split_grid_values(const std::string& text);

/// Parse "section.key=v1,v2,..."; throws contra::UsageError saying what is wrong.
GridAxis parse_grid_axis(const std::string& text);

/// The cartesian product of the axes (the first axis varies slowest), times
/// `seeds` seeds innermost (pipeline.seed = base_seed + i for i in 0..seeds-1);
/// seeds = 0 means no seed axis (the pipeline's own seed). No axes and
/// seeds <= 1 gives one run.
std::vector<SweepRun> expand_grid(const std::vector<GridAxis>& grid, std::int64_t seeds, std::int64_t base_seed = 0);

/// A folder-name-safe form of `text`: quotes dropped, anything but letters,
/// digits and . _ + - = replaced by '_'.
std::string sanitize_name(const std::string& text);

/// "<pipeline>-<key1>=<v1>-...-seed<i>", sanitised (the -seed<i> part only
/// with a seed axis; i is the seed index, not the seed).
std::string run_folder_name(const std::string& pipeline, const SweepRun& run);

/// run_folder_name() for each run, with "-2", "-3", ... added where two
/// names would otherwise be equal after sanitising.
std::vector<std::string> run_folder_names(const std::string& pipeline, const std::vector<SweepRun>& runs);

/// `contra sweep FILE --grid k=v1,v2 [--grid ...] [--seeds N] [--set k=v ...]
/// [--jobs J] [--out DIR] [--dry-run] [--continue]`. Exit code 0 when every
/// run succeeded, 1 when one failed or a combination is invalid, 2 for a wrong
/// command line.
Command add_sweep_command(CLI::App& contra);

}  // namespace contra::cli
