#pragma once
// The CLI's pipeline commands (run, eval, embed, validate) and plugins: each
// adds its subcommand to contra's CLI::App (see command_line.hpp).

#include "command_line.hpp"

namespace contra::cli {

Command add_run_command(CLI::App& contra);
Command add_eval_command(CLI::App& contra);
Command add_embed_command(CLI::App& contra);
Command add_validate_command(CLI::App& contra);
Command add_plugins_command(CLI::App& contra);

}  // namespace contra::cli
