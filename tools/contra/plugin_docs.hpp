#pragma once
// contra plugins --markdown DIR: the plugin reference from the schemas.

#include "loader/registry.hpp"

#include <string>
#include <vector>

namespace contra::cli {

/// Writes DIR/README.md (an index by kind) and DIR/<kind>/<name>.md for each
/// plugin (the first of a name provided twice). Output depends only on the
/// schemas and library file names, not on where the build is. Returns the
/// exit code.
int write_plugin_markdown(const std::vector<const runtime::PluginRecord*>& records, const std::string& dir);

}  // namespace contra::cli
