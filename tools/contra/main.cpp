// contra: run, validate and inspect contrastive-learning pipelines.
#include "command_line.hpp"
#include "commands.hpp"
#include "new_plugin.hpp"
#include "report.hpp"
#include "sweep.hpp"

#include <contra/cpu.hpp>
#include <contra/version.hpp>

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

int main(int argc, char** argv) {
  using namespace contra::cli;
  CLI::App contra{"contra: run, validate and inspect contrastive-learning pipelines", "contra"};
  contra.require_subcommand(1);
  contra.set_version_flag("--version", [] {
    return "contra " + std::string(contra::sdk_version) + " (SDK ABI " + std::to_string(contra::sdk_abi_version) +
           ")\ncpu: " + contra::cpu_capabilities().summary();
  });
  contra.footer(
      "`contra <command> --help` describes a command. Plugins are searched in the\n"
      "build's or install's plugins folder, then CONTRA_PLUGIN_PATH (folders\n"
      "separated by ':'), then the pipeline's [plugins] paths.");
  const std::vector<Command> commands = {
      add_run_command(contra),     add_eval_command(contra),    add_embed_command(contra),
      add_validate_command(contra), add_plugins_command(contra), add_sweep_command(contra),
      add_report_command(contra),  add_new_plugin_command(contra)};
  return run_command_line(contra, commands, argc, argv);
}
