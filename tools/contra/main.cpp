// contra: run, validate and inspect contrastive-learning pipelines.
#include "commands.hpp"
#include "new_plugin.hpp"
#include "report.hpp"
#include "sweep.hpp"

#include <contra/cpu.hpp>
#include <contra/version.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {
const char* usage =
    "usage: contra <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE [--set section.key=value ...]       train the pipeline in FILE\n"
    "  run --resume RUN_DIR                         continue a run from its latest checkpoint\n"
    "  eval RUN_DIR|CHECKPOINT [--pipeline FILE]    run the pipeline's [eval] on a saved encoder\n"
    "  embed RUN_DIR|CHECKPOINT [--images FILE]     write a source's embeddings as .npy\n"
    "  validate FILE [--set section.key=value ...]  check FILE and its plugins' parameters\n"
    "  plugins [--describe NAME] [--kind KIND]      list plugins, or describe one\n"
    "  sweep FILE --grid section.key=v1,v2,...      run a grid of overrides x seeds, a run folder each\n"
    "  report RUN_DIR... [--out report.html]        compare runs: one HTML page, a Markdown table\n"
    "  new-plugin --kind KIND --name NAME [DIR]     write a ready-to-build plugin project\n"
    "\n"
    "`contra <command> --help` describes a command. Plugins are searched in the\n"
    "build's or install's plugins folder, then CONTRA_PLUGIN_PATH (folders\n"
    "separated by ':'), then the pipeline's [plugins] paths.\n";
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(usage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::printf("contra %s (SDK ABI %u)\ncpu: %s\n", contra::sdk_version, contra::sdk_abi_version,
                contra::cpu_capabilities().summary().c_str());
    return 0;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "run") return contra::cli::run_command(args);
  if (cmd == "validate") return contra::cli::validate_command(args);
  if (cmd == "eval") return contra::cli::eval_command(args);
  if (cmd == "embed") return contra::cli::embed_command(args);
  if (cmd == "plugins") return contra::cli::plugins_command(args);
  if (cmd == "sweep") return contra::cli::sweep_command(args);
  if (cmd == "report") return contra::cli::report_command(args);
  if (cmd == "new-plugin") return contra::cli::new_plugin_command(args);
  std::fprintf(stderr, "contra: unknown command '%s'\n\n%s", cmd.c_str(), usage);
  return 2;
}
