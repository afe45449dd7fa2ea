#pragma once
// contra new-plugin: scaffolds an out-of-tree plugin project.

#include <string>
#include <vector>

namespace contra::cli {

/// `contra new-plugin --kind KIND --name NAME [DIR]`. 0 written, 1 the folder
/// is in the way or cannot be written, 2 the command line was wrong.
int new_plugin_command(const std::vector<std::string>& args);

}  // namespace contra::cli
