#include "command_line.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <new>

namespace contra::cli {

CLI::Option* add_set_option(CLI::App& command, std::vector<std::string>& overrides) {
  return command
      .add_option("--set", overrides,
                  "override one key, e.g. loss.temperature=0.2; the value is TOML (numbers, booleans, [lists], "
                  "\"strings\"; anything else a string); repeatable")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

namespace {

// "contra run: unknown option '--frob' (see contra run --help)", and the
// like, for what CLI11 refused.
int usage_error(const CLI::App& contra, const CLI::ParseError& e) {
  const std::vector<CLI::App*> chosen = contra.get_subcommands();
  const CLI::App& where = chosen.empty() ? contra : *chosen.front();
  const std::string who = chosen.empty() ? "contra" : "contra " + where.get_name();
  const std::vector<std::string> extra = where.remaining();
  if (chosen.empty() && !extra.empty() && extra.front().rfind("-", 0) != 0) {
    std::fprintf(stderr, "contra: unknown command '%s'\n\n%s", extra.front().c_str(), contra.help().c_str());
  } else if (dynamic_cast<const CLI::ExtrasError*>(&e) && !extra.empty()) {
    const bool option = extra.front().rfind("-", 0) == 0;
    std::fprintf(stderr, "%s: %s '%s' (see %s --help)\n", who.c_str(),
                 option ? "unknown option" : "unexpected argument", extra.front().c_str(), who.c_str());
  } else {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", who.c_str(), e.what(), who.c_str());
  }
  return 2;
}

}  // namespace

int run_command_line(CLI::App& contra, const std::vector<Command>& commands, int argc, char** argv) {
  if (argc < 2) {
    std::fputs(contra.help().c_str(), stderr);
    return 2;
  }
  if (argc == 2 && std::string(argv[1]) == "help") {
    std::fputs(contra.help().c_str(), stdout);
    return 0;
  }
  try {
    contra.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(contra.help().c_str(), stdout);  // the chosen command's help, if one was named
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::printf("%s\n", e.what());
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage_error(contra, e);
  }
  for (const Command& c : commands) {
    if (!c.app->parsed()) continue;
    // Every command ends alike on what its own handling let through: a
    // message and exit 1, never an abort.
    try {
      return c.run();
    } catch (const contra::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "contra %s: out of memory\n", c.app->get_name().c_str());
    } catch (...) {
      std::fprintf(stderr, "internal error: %s\n", contra::current_exception_message().c_str());
    }
    return 1;
  }
  return usage_error(contra, CLI::RequiredError("a command"));
}

}  // namespace contra::cli
