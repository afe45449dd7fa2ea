#pragma once
// contra's command line, on CLI11: each command adds its subcommand (its
// options and its --help) to contra's CLI::App and says what it runs once
// the command line is parsed.

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace contra::cli {

struct Command {
  CLI::App* app = nullptr;  ///< the subcommand, owned by contra's App
  /// Runs the command: its exit code, 0 success, 1 the pipeline, a plugin or
  /// the data failed, 2 the command line was wrong.
  std::function<int()> run;
};

/// `--set section.key=value`, repeatable, one override each (its value is
/// TOML, so `--set a=1 FILE` leaves FILE to the positional).
CLI::Option* add_set_option(CLI::App& command, std::vector<std::string>& overrides);

/// Parse `argv` (contra and its arguments) against `contra` and run the
/// command it names: help and --version exit 0; a wrong command line is
/// said as "contra COMMAND: what is wrong" and exits 2.
int run_command_line(CLI::App& contra, const std::vector<Command>& commands, int argc, char** argv);

}  // namespace contra::cli
