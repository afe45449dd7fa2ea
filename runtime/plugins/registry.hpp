#pragma once
// Plugin loader and registry: finds plugin libraries on the search path,
// checks each manifest before any of the library's code runs, and creates
// plugin objects that keep their library loaded while they live.

#include <contra/plugin.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace contra::runtime {

/// One plugin found in a library.
struct PluginRecord {
  PluginKind kind;
  std::string name;
  Schema schema;
  std::filesystem::path library;
  const PluginEntry* entry = nullptr;
  std::shared_ptr<boost::dll::shared_library> handle;
};

/// A library on the search path that could not be used, or a name clash.
struct LibraryProblem {
  std::filesystem::path library;
  std::string message;  ///< complete sentence naming the library
};

/// The plugin directory of an install or a build, found from the running
/// program's folder: `<bin>/../lib/contra/plugins` when it exists (an
/// installed contra, `cmake --install`), else `<bin>/../plugins` (a build tree).
std::filesystem::path default_plugin_dir();

/// Directories from CONTRA_PLUGIN_PATH (colon-separated); empty entries skipped.
std::vector<std::filesystem::path> env_plugin_dirs();

class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  /// Load every `*.so` in `dir` (not recursive), in name order. A library
  /// that fails is recorded in problems(), not thrown: it may be unrelated to
  /// the pipeline at hand. A directory already scanned is skipped.
  void scan_directory(const std::filesystem::path& dir);

  /// Load one library; throws PluginError with the reason when it cannot be
  /// used (missing, not loadable, no entry symbol, other SDK ABI, bad schema).
  void load_library(const std::filesystem::path& file);

  /// The plugin of this kind and name. Throws PluginError when two libraries
  /// provide it. Returns null when none does.
  const PluginRecord* find(PluginKind kind, std::string_view name) const;
  /// Kinds under which a name exists (for "is a loss, not a miner" messages).
  std::vector<PluginKind> kinds_of(std::string_view name) const;
  /// Names of the plugins of one kind, sorted.
  std::vector<std::string> names(PluginKind kind) const;
  /// Every plugin, sorted by kind then name (duplicates included).
  std::vector<const PluginRecord*> all() const;
  const std::vector<LibraryProblem>& problems() const noexcept { return problems_; }

  /// Create a plugin object. The returned pointer keeps the library loaded
  /// and destroys the object through the library's own destroy function.
  /// Exceptions from the plugin's constructor are rethrown as PluginError
  /// naming the plugin and its library.
  template <class Role> std::shared_ptr<Role> create(const PluginRecord& rec, const Params& p) const {
    return std::static_pointer_cast<Role>(create_plugin(rec, p));
  }

 private:
  std::shared_ptr<Plugin> create_plugin(const PluginRecord& rec, const Params& p) const;
  void add_library(const std::filesystem::path& file);

  std::vector<PluginRecord> records_;
  std::vector<LibraryProblem> problems_;
  std::vector<std::filesystem::path> scanned_;
  std::vector<std::filesystem::path> loaded_;
};

}  // namespace contra::runtime
