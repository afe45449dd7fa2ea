#pragma once
// From a pipeline file to a PipelineSpec whose plugins are bound: the plugin
// search path scanned into a registry (libraries loaded), each plugin table
// checked against its plugin's schema. runtime/config only reads; this is
// where loading starts.

#include "config/pipeline_spec.hpp"

#include <optional>
#include <string>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

/// Check each plugin table against the registry: the plugin exists with the
/// right kind (built for the pipeline's device where the kind needs it), and
/// its parameters fit its schema. Fills PluginSpec::params, library, device.
void bind_plugins(PipelineSpec& spec, const PluginRegistry& registry, Diagnostics& out);

/// Everything together: read, scan the plugin search path (the default
/// plugin dir, CONTRA_PLUGIN_PATH, then [plugins] paths) into `registry`, and
/// bind. Throws ConfigError with every diagnostic, one per line.
PipelineSpec load_pipeline(const std::string& file, const std::vector<std::string>& overrides,
                           PluginRegistry& registry);
/// load_pipeline() that hands the diagnostics over instead of throwing them:
/// the spec when there are none, else nothing and `out` filled, in file
/// order (those without a line last). Other errors still throw.
std::optional<PipelineSpec> try_load_pipeline(const std::string& file, const std::vector<std::string>& overrides,
                                              PluginRegistry& registry, Diagnostics& out);

/// Scan the plugin search path for `spec` into `registry` (with the GPU
/// builds, `*_cuda.so`, when the pipeline's device is cuda).
void scan_plugin_path(const PipelineSpec& spec, PluginRegistry& registry);

}  // namespace contra::runtime
