#pragma once
// contra new-plugin: scaffolds an out-of-tree plugin project.

#include "command_line.hpp"

namespace contra::cli {

/// `contra new-plugin --kind KIND --name NAME [DIR]`. 0 written, 1 the folder
/// is in the way or cannot be written, 2 the command line was wrong.
Command add_new_plugin_command(CLI::App& contra);

}  // namespace contra::cli
