#pragma once
// The CLI's subcommands. Each returns the process exit code: 0 success,
// 1 the pipeline, a plugin or the data failed, 2 the command line was wrong.

#include <string>
#include <vector>

namespace contra::cli {

int run_command(const std::vector<std::string>& args);
int eval_command(const std::vector<std::string>& args);
int embed_command(const std::vector<std::string>& args);
int validate_command(const std::vector<std::string>& args);
int plugins_command(const std::vector<std::string>& args);

}  // namespace contra::cli
