#pragma once
// Running the built `contra` (or any shell command) from a test and reading
// what it printed and how it exited.

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace contra::test {

struct CommandResult {
  int status = -1;  ///< the exit status; -1 when killed by a signal
  std::string out;  ///< what it printed on the streams the command line sent to the pipe
};

/// Runs `command` through the shell; its standard output comes back (add
/// 2>&1 to have its errors too).
inline CommandResult run_shell(const std::string& command) {
  CommandResult r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

/// Runs the build tree's contra with `args`; `redirect` says where its
/// streams go ("2>&1": both in out).
inline CommandResult run_cli(const std::string& args, const std::string& redirect = "2>&1") {
  return run_shell(std::string(CONTRA_BINARY_DIR) + "/bin/contra " + args + " " + redirect);
}

}  // namespace contra::test
