// contra new-plugin: writes a ready-to-build plugin project for one plugin
// kind: CMakeLists.txt (find_package(contra), contra_add_plugin, a Catch2
// test), NAME.hpp / NAME.cpp with the schema declared and a working skeleton,
// test_NAME.cpp using contra/testing.hpp, and a README. The project builds and
// its test passes as generated.
//
// The files are templates read at run time (sdk/templates/, installed as
// <prefix>/share/contra/templates; their README.md describes them): a
// folder per kind, common/ for what all kinds share, and @KEY@ placeholders.
#include "new_plugin.hpp"

#include <contra/version.hpp>

#include <CLI/CLI.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

// The source tree's sdk/templates, for a contra run from its build tree.
#ifndef CONTRA_TEMPLATE_DIR
#error "CONTRA_TEMPLATE_DIR (the source tree's sdk/templates) is set by tools/contra/CMakeLists.txt"
#endif
// An installed contra's templates, relative to its bin folder
// (sdk/cmake/ContraInstall.cmake sets it from the install's layout).
#ifndef CONTRA_INSTALL_TEMPLATE_DIR_FROM_BIN
#define CONTRA_INSTALL_TEMPLATE_DIR_FROM_BIN "../share/contra/templates"
#endif

namespace contra::cli {
namespace {

namespace fs = std::filesystem;

// A template folder that is missing or wrong: said as "contra new-plugin: ...".
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The files of a generated project, in the order they are listed, by their
// template names: each is read from the kind's folder, else from common/.
const char* const project_files[] = {"CMakeLists.txt", "@NAME@.hpp", "@NAME@.cpp", "test_@NAME@.cpp", "README.md"};

// Where the templates may be, in the order searched: beside an installed
// contra, then in the source tree a build tree's contra was built from.
std::vector<fs::path> template_dir_candidates() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path program = boost::dll::program_location(ec);
  if (!ec) dirs.push_back((program.parent_path() / CONTRA_INSTALL_TEMPLATE_DIR_FROM_BIN).lexically_normal());
  dirs.emplace_back(CONTRA_TEMPLATE_DIR);
  return dirs;
}

// The first candidate that is a folder, or an empty path.
fs::path find_template_dir() {
  std::error_code ec;
  for (const fs::path& dir : template_dir_candidates())
    if (fs::is_directory(dir, ec)) return dir;
  return {};
}

// The kinds a template folder has: its subfolders holding a kind.toml, sorted.
std::vector<std::string> template_kinds(const fs::path& dir) {
  std::vector<std::string> kinds;
  std::error_code ec;
  if (dir.empty()) return kinds;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (fs::is_regular_file(it->path() / "kind.toml", ec)) kinds.push_back(it->path().filename().string());
  std::sort(kinds.begin(), kinds.end());
  return kinds;
}

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : ", ") + w;
  return s;
}

std::string read_text(const fs::path& file) {
  std::ifstream f(file, std::ios::binary);
  std::ostringstream text;
  text << f.rdbuf();
  if (!f) throw TemplateError("cannot read " + file.string());
  return text.str();
}

// Placeholder values by key: "NAME" -> "my_loss" fills @NAME@.
using Placeholders = std::map<std::string, std::string>;

bool is_key_start(char c) { return c >= 'A' && c <= 'Z'; }
bool is_key_char(char c) { return is_key_start(c) || (c >= '0' && c <= '9') || c == '_'; }

// `text` with every @KEY@ (KEY: A-Z, 0-9 and _, from a letter) replaced by
// its value; any other '@' is kept. A KEY without a value is an error naming
// `file` and the line: a misspelt placeholder would otherwise reach the
// generated project.
std::string fill(const std::string& text, const Placeholders& values, const fs::path& file) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find('@', at);
    if (open == std::string::npos) break;
    std::size_t close = open + 1;
    if (close < text.size() && is_key_start(text[close]))
      while (close < text.size() && is_key_char(text[close])) ++close;
    if (close == open + 1 || close >= text.size() || text[close] != '@') {
      out.append(text, at, open + 1 - at);  // not a placeholder: keep the '@'
      at = open + 1;
      continue;
    }
    const std::string key = text.substr(open + 1, close - open - 1);
    auto value = values.find(key);
    if (value == values.end()) {
      const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(open), '\n');
      std::string known;
      for (const auto& [k, v] : values) known += (known.empty() ? "@" : ", @") + k + "@";
      throw TemplateError(file.string() + ":" + std::to_string(line) + ": unknown placeholder @" + key +
                          "@; known here: " + known);
    }
    out.append(text, at, open - at);
    out += value->second;
    at = close + 1;
  }
  out.append(text, at, std::string::npos);
  return out;
}

// The kind's own placeholders, from its kind.toml: each string `key = "..."`
// fills @KEY@ in the templates; the values may use the `common` placeholders.
Placeholders kind_placeholders(const fs::path& file, const Placeholders& common) {
  toml::table table;
  try {
    table = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw TemplateError(file.string() + ":" + std::to_string(e.source().begin.line) + ":" +
                        std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  Placeholders values;
  for (const auto& [name, node] : table) {
    const std::string key(name.str());
    std::string upper;
    for (char c : key) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (key.empty() || !std::islower(static_cast<unsigned char>(key[0])) ||
        !std::all_of(upper.begin(), upper.end(), is_key_char))
      throw TemplateError(file.string() + ": '" + key + "' cannot name a placeholder (a-z, 0-9 and _, from a letter)");
    if (common.count(upper))
      throw TemplateError(file.string() + ": '" + key + "' would set @" + upper + "@, which contra new-plugin sets");
    const auto* text = node.as_string();
    if (!text) throw TemplateError(file.string() + ": '" + key + "' is not a string");
    values[upper] = fill(text->get(), common, file);
  }
  return values;
}

std::string class_name(const std::string& name) {
  std::string c;
  bool up = true;
  for (char ch : name) {
    if (ch == '_') {
      up = true;
      continue;
    }
    c += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    up = false;
  }
  return c;
}

// Why NAME cannot be a plugin name, or "".
std::string invalid_name(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (!std::islower(static_cast<unsigned char>(name[0]))) return "it must start with a lower-case letter";
  for (char c : name)
    if (!std::islower(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c)) && c != '_')
      return std::string("it may hold only a-z, 0-9 and _, not '") + c + "'";
  if (name.size() > 64) return "it is longer than 64 characters";
  // Target names CMake reserves, and names of the generated targets' helpers.
  for (const char* r : {"all", "clean", "help", "install", "test", "package", "package_source", "edit_cache",
                        "rebuild_cache", "list_install_components", "install_local", "install_strip", "contra"})
    if (name == r) return "'" + name + "' is a name CMake or contra reserves";
  return "";
}

// The project's files (name in the project, text), filled from the templates
// of `kind` in `template_dir`.
std::vector<std::pair<std::string, std::string>> project_from_templates(const fs::path& template_dir,
                                                                        const std::string& kind,
                                                                        const std::string& name) {
  Placeholders values = {
      {"NAME", name},
      {"CLASS", class_name(name)},
      {"KIND", kind},
      {"VERSION", std::to_string(CONTRA_SDK_VERSION_MAJOR) + "." + std::to_string(CONTRA_SDK_VERSION_MINOR)},
      {"ABI", std::to_string(CONTRA_SDK_ABI_VERSION)},
  };
  const fs::path kind_dir = template_dir / kind, common_dir = template_dir / "common";
  values.merge(kind_placeholders(kind_dir / "kind.toml", values));
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* file : project_files) {
    std::error_code ec;
    fs::path source = kind_dir / file;
    if (!fs::is_regular_file(source, ec)) source = common_dir / file;
    if (!fs::is_regular_file(source, ec))
      throw TemplateError("no template " + std::string(file) + " in " + kind_dir.string() + " nor in " +
                          common_dir.string());
    files.emplace_back(fill(file, values, source), fill(read_text(source), values, source));
  }
  return files;
}

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) == fs::directory_iterator();
}

// What `contra new-plugin` takes on its command line.
struct NewPluginArgs {
  std::string kind, name, dir;
};

int new_plugin_command(const NewPluginArgs& args) {
  const std::string& kind = args.kind;
  const std::string& name = args.name;
  const std::string& dir = args.dir;
  const fs::path template_dir = find_template_dir();
  if (template_dir.empty()) {
    std::string looked;
    for (const fs::path& d : template_dir_candidates()) looked += "\n  " + d.string();
    std::fprintf(stderr, "contra new-plugin: no plugin templates found; looked in:%s\n", looked.c_str());
    return 1;
  }
  const std::vector<std::string> kinds = template_kinds(template_dir);
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
    std::fprintf(stderr, "contra new-plugin: unknown kind '%s'; one of: %s\n", kind.c_str(), joined(kinds).c_str());
    return 2;
  }
  if (std::string why = invalid_name(name); !why.empty()) {
    std::fprintf(stderr, "contra new-plugin: '%s' cannot name a plugin: %s\n", name.c_str(), why.c_str());
    return 2;
  }
  // Every template is read and filled before anything is written, so that a
  // broken template leaves no half-written project.
  std::vector<std::pair<std::string, std::string>> files;
  try {
    files = project_from_templates(template_dir, kind, name);
  } catch (const TemplateError& e) {
    std::fprintf(stderr, "contra new-plugin: %s\n", e.what());
    return 1;
  }
  const fs::path out = dir.empty() ? fs::path(name) : fs::path(dir);
  std::error_code ec;
  if (fs::exists(out, ec) && !is_empty_dir(out)) {
    std::fprintf(stderr, "contra new-plugin: %s exists and is not an empty folder; refusing to overwrite it\n",
                 out.string().c_str());
    return 1;
  }
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "contra new-plugin: cannot create %s: %s\n", out.string().c_str(), ec.message().c_str());
    return 1;
  }
  for (const auto& [file, text] : files) {
    std::ofstream f(out / file, std::ios::binary);
    f << text;
    if (!f) {
      std::fprintf(stderr, "contra new-plugin: cannot write %s\n", (out / file).string().c_str());
      return 1;
    }
  }
  std::printf("wrote %s plugin '%s' to %s:\n", kind.c_str(), name.c_str(), out.string().c_str());
  for (const auto& [file, text] : files) std::printf("  %s\n", (out / file).string().c_str());
  std::printf(
      "\nbuild and test it against an installed contra:\n"
      "  cmake -S %s -B %s/build -DCMAKE_PREFIX_PATH=<contra's install prefix>\n"
      "  cmake --build %s/build\n"
      "  ctest --test-dir %s/build --output-on-failure\n"
      "then run a pipeline naming plugin = \"%s\" with CONTRA_PLUGIN_PATH=%s/build/plugins\n",
      out.string().c_str(), out.string().c_str(), out.string().c_str(), out.string().c_str(), name.c_str(),
      out.string().c_str());
  return 0;
}

}  // namespace

Command add_new_plugin_command(CLI::App& contra) {
  auto args = std::make_shared<NewPluginArgs>();
  CLI::App* command = contra.add_subcommand("new-plugin", "write a ready-to-build plugin project");
  const std::string kinds = joined(template_kinds(find_template_dir()));
  command->add_option("--kind", args->kind, kinds.empty() ? "a plugin kind (no templates found)" : "one of: " + kinds)
      ->type_name("KIND")
      ->required();
  command->add_option("--name", args->name, "a-z, 0-9 and _, starting with a letter")->type_name("NAME")->required();
  command->add_option("DIR", args->dir, "where to write it (default: ./NAME); must not exist or be empty");
  command->footer(
      "Write a ready-to-build plugin project into DIR: CMakeLists.txt\n"
      "(find_package(contra), contra_add_plugin, a Catch2 test), NAME.hpp and NAME.cpp\n"
      "with the schema declared and a working skeleton, test_NAME.cpp, README.md.");
  return {command, [args] { return new_plugin_command(*args); }};
}

}  // namespace contra::cli
